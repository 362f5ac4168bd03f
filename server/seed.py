"""`assay seed`: realistic demo data, made through the domain services, results included."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import httpx

from domain.models import JSONValue, Model
from domain.ports import BlobStore, UnitOfWorkFactory
from domain.principal import Identity, Principal
from domain.services import assets, owned, submissions, users
from domain.services.assets import UploadPolicy
from integrations.blobs.local import LocalBlobStore
from server.bootstrap import (
    background_tasks,
    build_blob_store,
    build_engine,
    unit_of_work_factory,
    utc_now,
)
from server.settings import Settings
from server.workers import WorkBell

SEED_CONCURRENCY = 8  # users seeded at once; below the default pool of 10 connections
PROGRESS_EVERY_SECONDS = 2.0  # how often the wait for the workers says how far it is

Progress = Callable[[str], None]


def _silent(_: str) -> None:
    pass


@dataclass(frozen=True)
class Seeded:
    users: int
    submissions: int


def example_input(model: Model, rng: random.Random) -> JSONValue:
    """An input inside each property's declared range."""
    properties = model.input_schema.get("properties", {})
    return {
        name: round(rng.uniform(spec.get("minimum", 0.0), spec.get("maximum", 1.0)), 2)
        for name, spec in properties.items()
    }


async def _sign_in(uow: UnitOfWorkFactory, settings: Settings, n: int) -> Principal:
    identity = Identity(
        subject=f"seed-user-{n:05d}",
        email=f"user{n:05d}@example.com",
        name=f"Demo User {n}",
        groups=(),
        expires_at=utc_now() + timedelta(hours=1),
    )
    principal, _ = await users.authenticate(
        uow(), identity, admin_group=settings.admin_group, clock=utc_now
    )
    return principal


async def _seed_user(
    uow: UnitOfWorkFactory,
    blobs: BlobStore,
    settings: Settings,
    principal: Principal,
    model: Model,
    n: int,
    inputs: list[JSONValue],
) -> int:
    if not inputs:
        return 0
    asset_id = await _seed_asset(uow, blobs, settings, principal, n)
    # create_batch takes no assets: one create_submission each, every one citing the asset.
    for item in inputs:
        request = submissions.SubmissionRequest(model.id, item, asset_ids=(asset_id,))
        await submissions.create_submission(uow(), principal, request, clock=utc_now)
    return len(inputs)


async def _seed_asset(
    uow: UnitOfWorkFactory, blobs: BlobStore, settings: Settings, principal: Principal, n: int
) -> UUID:
    """One AVAILABLE asset, made as a client makes it: request the upload, PUT, complete."""
    body = f"sample,user\n{n},{n:05d}\n".encode()
    policy = UploadPolicy(
        max_bytes=settings.max_asset_bytes, url_ttl_seconds=settings.upload_url_ttl_seconds
    )
    asset, upload = await assets.request_upload(
        uow(),
        blobs,
        principal,
        file_name=f"sample-{n:05d}.csv",
        content_type="text/csv",
        size_bytes=len(body),
        policy=policy,
        clock=utc_now,
    )
    if isinstance(blobs, LocalBlobStore):
        # Its upload URL is served by `assay serve`, not running here: write as that route does.
        pending = await blobs.begin_write(asset.object_key, len(body))
        try:
            await pending.write(body)
            await pending.commit(asset.content_type)
        finally:
            await pending.abort()
    else:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.put(upload.url, headers=upload.headers, content=body)
            response.raise_for_status()
    done = await assets.complete_upload(uow(), blobs, principal, asset.id, clock=utc_now)
    return done.id


async def _drain_queue(
    uow: UnitOfWorkFactory, progress: Progress, poll_seconds: float = 0.2
) -> None:
    reported = time.monotonic()
    while True:
        async with uow() as reader:
            stats = await reader.submissions.queue_stats(utc_now())
        left = stats.pending + stats.running
        if left == 0:
            return
        if time.monotonic() - reported >= PROGRESS_EVERY_SECONDS:
            progress(f"running inference: {left} submissions to go")
            reported = time.monotonic()
        await asyncio.sleep(poll_seconds)


async def seed(
    settings: Settings,
    database_url: str,
    *,
    users: int,
    submissions_per_user: int,
    progress: Progress = _silent,
) -> Seeded:
    """Users user00000@example.com.., each with submissions on the models, run to results.

    `progress` hears a line at each step: a thousand users take a minute."""
    engine = build_engine(settings, database_url)
    blobs, _ = build_blob_store(settings)
    bell = WorkBell()
    uow, notifier = unit_of_work_factory(engine, bell)

    rng = random.Random(42)  # noqa: S311 - demo data, reproducible on purpose
    try:
        models = await owned.list_active_models(uow())
        # Users one by one, so their (created_at, id) order follows their numbers.
        principals = [await _sign_in(uow, settings, n) for n in range(users)]
        progress(f"signed in {users} users")
        chosen = [models[n % len(models)] for n in range(users)]
        inputs = [[example_input(m, rng) for _ in range(submissions_per_user)] for m in chosen]
        tasks = background_tasks(settings, uow, blobs, engine=engine, bell=bell)
        await tasks.start()
        try:
            # A few users at a time (within the pool): commits overlap, workers run meanwhile.
            total = 0
            for start in range(0, users, SEED_CONCURRENCY):
                counts = await asyncio.gather(
                    *(
                        _seed_user(uow, blobs, settings, principals[n], chosen[n], n, inputs[n])
                        for n in range(start, min(start + SEED_CONCURRENCY, users))
                    )
                )
                total += sum(counts)
                done = min(start + SEED_CONCURRENCY, users)
                progress(f"created {total} submissions for {done}/{users} users")
            await _drain_queue(uow, progress)
        finally:
            await tasks.stop()
        return Seeded(users=users, submissions=total)
    finally:
        await notifier.close()
        await engine.dispose()
