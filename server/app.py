"""The ASGI application factory that uvicorn (and each of its workers) calls."""

from __future__ import annotations

import gc

from starlette.applications import Starlette

from server.bootstrap import build_app
from server.logging import configure_logging
from server.settings import load_settings

GC_THRESHOLDS = (50_000, 20, 100)


def create_app() -> Starlette:
    settings = load_settings()
    configure_logging(settings)
    database_url = settings.resolved_database_url()
    if database_url is None:
        raise RuntimeError("no DATABASE_URL: start the server with `assay serve`")
    app = build_app(settings, database_url)
    tune_collector()
    return app


def tune_collector() -> None:
    """Once the app is built (bench/batch_profile.py does it too, to measure what serves)."""
    # Start-up objects never die: keep them out of the cyclic collector's way.
    gc.collect()
    gc.freeze()
    # A large response allocates tens of thousands of containers that live until it is sent;
    # at the default threshold (700) the collector scans them again and again (~25% of the
    # nested-list request's CPU, measured). Requests make little cyclic garbage.
    gc.set_threshold(*GC_THRESHOLDS)
