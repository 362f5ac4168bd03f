"""The `assay` command line: serve, worker, seed, migrate, token, schema, operations."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from graphql import GraphQLError

from graph.protection.persisted import TrustedDocument, trusted_documents
from persistence import migrate
from persistence.database import create_engine
from persistence.embedded import EmbeddedKeeper, EmbeddedPostgres
from persistence.operations import SqlPersistedOperations
from server.bootstrap import DEMO_EMAIL, local_issuer, register_models
from server.http_protocol import BoundedHttpToolsProtocol
from server.logging import configure_logging
from server.seed import seed
from server.settings import Settings, SettingsError, export_for_workers, load_settings
from server.tracing import check_tracing_available
from server.worker import run_worker


@contextmanager
def database(settings: Settings, *, keep_running: bool = False) -> Iterator[str]:
    """The configured database URL, or the embedded PostgreSQL of the data directory.

    The embedded server is started here, or joined when another `assay` process runs it;
    it is stopped on the way out only if it was started here. `keep_running`: start it
    again whenever it stops meanwhile (the server must not live on answering errors)."""
    url = settings.resolved_database_url()
    if url is not None:
        yield url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    keeper: EmbeddedKeeper | None = None
    try:
        url = embedded.start()
        if keep_running:
            keeper = EmbeddedKeeper(embedded, url, on_failure=_stop_serving)
            keeper.start()
        yield url
    finally:
        if keeper is not None:
            keeper.stop()
        embedded.stop()


def _stop_serving(reason: str) -> None:
    """Exit rather than live on without a database: uvicorn shuts down on SIGTERM."""
    print(f"assay: {reason}; stopping the server", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


def _exit_on_sigterm() -> None:
    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets
    # the `database` context stop the embedded PostgreSQL instead of dying with it running.
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    _exit_on_sigterm()
    with database(settings, keep_running=True) as url:
        asyncio.run(migrate.upgrade_url(url))
        register_models(settings, url)
        host, port = args.host or settings.host, args.port or settings.port
        run_workers = settings.run_workers and not args.no_workers
        export_for_workers(url, host=host, port=port, run_workers=run_workers)
        for line in welcome_lines(settings, host, port):
            _say(line)
        uvicorn.run(
            "server.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=args.workers or settings.workers,
            # Generous: a worker process that imports slowly on a busy machine is not hung.
            timeout_worker_healthcheck=60,
            log_config=None,
            access_log=False,
            lifespan="on",
            **http_bounds(settings),
        )


def welcome_lines(settings: Settings, host: str, port: int) -> list[str]:
    """In development: where GraphiQL is and how to get a token (production says nothing)."""
    if settings.is_production:
        return []
    shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104 - a comparison
    base = settings.public_url or f"http://{shown_host}:{port}"
    lines = []
    if settings.graphiql:
        signed_in = "" if settings.uses_cognito else f" (signed in as {DEMO_EMAIL})"
        lines.append(f"GraphiQL: {base}/graphql{signed_in}")
    if not settings.uses_cognito:
        lines.append('a token of your own: assay token --email you@example.com --name "You"')
    return lines


def http_bounds(settings: Settings) -> dict[str, Any]:
    """uvicorn's connection limits from settings. X-Forwarded-For is believed only from
    ASSAY_TRUSTED_PROXIES: uvicorn's own default trusts 127.0.0.1, so any local process (or a
    proxy we did not configure) could pick the client address that rate limits key on."""
    trusted = settings.trusted_proxies.strip()
    return {
        "http": BoundedHttpToolsProtocol,
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "limit_concurrency": settings.http_limit_concurrency,
        "ws_max_size": settings.max_request_bytes,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or "",
    }


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    _exit_on_sigterm()
    with database(settings) as url:
        asyncio.run(migrate.upgrade_url(url))
        register_models(settings, url)
        asyncio.run(run_worker(settings, url, concurrency=args.concurrency))


def cmd_seed(args: argparse.Namespace, settings: Settings) -> None:
    with database(settings) as url:
        asyncio.run(migrate.upgrade_url(url))
        register_models(settings, url)
        created = asyncio.run(
            seed(
                settings,
                url,
                users=args.users,
                submissions_per_user=args.submissions_per_user,
                progress=_say,
            )
        )
    print(f"seeded {created.users} users and {created.submissions} submissions with results")


def _say(line: str) -> None:
    """Progress for the person at the terminal, on stderr: stdout keeps the result."""
    print(f"assay: {line}", file=sys.stderr, flush=True)


def cmd_migrate(_: argparse.Namespace, settings: Settings) -> None:
    with database(settings) as url:
        asyncio.run(migrate.upgrade_url(url))
    print(f"database at revision {migrate.head_revision()}")


def cmd_token(args: argparse.Namespace, settings: Settings) -> None:
    if settings.uses_cognito:
        raise SettingsError("`assay token` signs with the local issuer; Cognito is configured")
    issuer = local_issuer(settings)
    print(
        issuer.issue(
            email=args.email, name=args.name or "", groups=args.group, expires_in=args.expires_in
        )
    )


def _read_documents(paths: list[Path]) -> list[tuple[Path, TrustedDocument]]:
    found = []
    for path in paths:
        try:
            found += [(path, document) for document in trusted_documents(path.read_text())]
        except (OSError, UnicodeDecodeError, GraphQLError) as error:
            raise SettingsError(f"{path}: {error}") from None
    return found


async def _register_trusted(url: str, documents: list[TrustedDocument]) -> None:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        store = SqlPersistedOperations(engine)
        for document in documents:
            await store.put(document.sha256, document.document, trusted=True)
    finally:
        await engine.dispose()


def cmd_operations_add(args: argparse.Namespace, settings: Settings) -> None:
    found = _read_documents(args.files)  # all files parse, or nothing is registered
    with database(settings) as url:
        asyncio.run(migrate.upgrade_url(url))
        asyncio.run(_register_trusted(url, [document for _, document in found]))
    for path, document in found:
        print(f"{document.sha256}  {document.operation_name or '<anonymous>'}  {path}")


SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def cmd_schema(args: argparse.Namespace, _: Settings) -> None:
    from graph.schema.record import schema

    sdl = schema.as_str() + "\n"
    if args.write:
        SCHEMA_FILE.write_text(sdl)
    elif args.check:
        if not SCHEMA_FILE.exists() or SCHEMA_FILE.read_text() != sdl:
            sys.exit("schema.graphql is stale: run `assay schema --write`")
    else:
        print(sdl, end="")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="assay", description="GraphQL API for ML inference")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the API server (embedded PostgreSQL if no DATABASE_URL)"
    )
    serve.add_argument("--host", help="interface to bind (ASSAY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (ASSAY_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="server processes (ASSAY_WORKERS, default 1)")
    serve.set_defaults(run=cmd_serve)

    serve.add_argument(
        "--no-workers", action="store_true", help="do not run inference workers in this process"
    )

    worker = commands.add_parser("worker", help="run inference workers without the API")
    worker.add_argument(
        "--concurrency", type=int, help="claim loops (ASSAY_WORKER_CONCURRENCY, default 2)"
    )
    worker.set_defaults(run=cmd_worker)

    seed_cmd = commands.add_parser("seed", help="fill the database with demo data")
    seed_cmd.add_argument("--users", type=int, default=20)
    seed_cmd.add_argument("--submissions-per-user", type=int, default=5)
    seed_cmd.set_defaults(run=cmd_seed)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(run=cmd_migrate)

    token = commands.add_parser("token", help="print a token from the local issuer")
    token.add_argument("--email", required=True)
    token.add_argument("--name", default="")
    token.add_argument(
        "--group", action="append", default=[], help="a cognito:groups entry; repeat"
    )
    token.add_argument("--expires-in", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(run=cmd_token)

    schema_cmd = commands.add_parser("schema", help="print the GraphQL SDL")
    mode = schema_cmd.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write it to schema.graphql")
    mode.add_argument("--check", action="store_true", help="fail when schema.graphql differs")
    schema_cmd.set_defaults(run=cmd_schema)

    operations = commands.add_parser("operations", help="manage trusted persisted operations")
    operations_commands = operations.add_subparsers(dest="operations_command", required=True)
    add = operations_commands.add_parser(
        "add", help="register the operations in GraphQL files as trusted; print their hashes"
    )
    add.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add.set_defaults(run=cmd_operations_add)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        sys.exit(f"assay: {error}")
    configure_logging(settings)
    try:
        check_tracing_available(settings)  # before any server or worker starts
        args.run(args, settings)
    except SettingsError as error:
        sys.exit(f"assay: {error}")


if __name__ == "__main__":
    main()
