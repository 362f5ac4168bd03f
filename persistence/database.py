"""The async engine: URL normalisation, TLS, pool sizing, orjson codecs, statement counting."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def asyncpg_url(url: str) -> str:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// and return the asyncpg form."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in {"postgres", "postgresql"}:
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got scheme {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def _ssl_argument(mode: str) -> ssl.SSLContext | str | None:
    if mode == "disable":
        return None
    if mode == "require":
        return "require"
    context = ssl.create_default_context()  # verify-full: chain and host name
    return context


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    ssl_mode: str = "disable",
    statement_timeout_ms: int = 30_000,
    on_statement: Callable[[], None] | None = None,
) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        "server_settings": {
            "application_name": "assay",
            "statement_timeout": str(statement_timeout_ms),
        }
    }
    ssl_argument = _ssl_argument(ssl_mode)
    if ssl_argument is not None:
        connect_args["ssl"] = ssl_argument
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args=connect_args,
    )
    if on_statement is not None:
        callback = on_statement

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _count(*_: object) -> None:
            callback()

    return engine
