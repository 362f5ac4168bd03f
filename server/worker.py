"""`assay worker`: inference workers and periodic jobs without the API, until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from server.bootstrap import (
    background_tasks,
    build_blob_store,
    build_engine,
    unit_of_work_factory,
)
from server.settings import Settings
from server.tracing import configure_tracing
from server.workers import WorkBell

logger = logging.getLogger(__name__)


async def run_worker(settings: Settings, database_url: str, *, concurrency: int | None) -> None:
    tracing = configure_tracing(settings)  # SQL, webhooks, S3 and SageMaker calls
    engine = build_engine(settings, database_url)
    if tracing is not None:
        tracing.instrument_engine(engine)
    blobs, _ = build_blob_store(settings)
    bell = WorkBell()
    uow, notifier = unit_of_work_factory(engine, bell)

    tasks = background_tasks(
        settings, uow, blobs, engine=engine, bell=bell, concurrency=concurrency
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await tasks.start()
    logger.info("worker started")
    try:
        await stopping.wait()
        logger.info("stopping: finishing the submissions in hand")
    finally:
        await tasks.stop()
        await notifier.close()
        await engine.dispose()
        if tracing is not None:
            await tracing.shutdown()
