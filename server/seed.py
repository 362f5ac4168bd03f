"""`assay seed`: realistic demo data, made through the domain services, results included."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import timedelta

from domain.models import JSONValue, Model
from domain.ports import UnitOfWorkFactory
from domain.principal import Identity
from domain.services import owned, submissions, users
from server.bootstrap import (
    background_tasks,
    build_blob_store,
    build_engine,
    unit_of_work_factory,
    utc_now,
)
from server.settings import Settings


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


async def _seed_user(
    uow: UnitOfWorkFactory,
    settings: Settings,
    models: list[Model],
    n: int,
    count: int,
    rng: random.Random,
) -> int:
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
    if count == 0:
        return 0
    model = models[n % len(models)]
    inputs = [example_input(model, rng) for _ in range(count)]
    await submissions.create_batch(uow(), principal, model.id, inputs, clock=utc_now)
    return count


async def _drain_queue(uow: UnitOfWorkFactory, poll_seconds: float = 0.2) -> None:
    while True:
        async with uow() as reader:
            stats = await reader.submissions.queue_stats(utc_now())
        if stats.pending + stats.running == 0:
            return
        await asyncio.sleep(poll_seconds)


async def seed(
    settings: Settings, database_url: str, *, users: int, submissions_per_user: int
) -> Seeded:
    """Users user00000@example.com.., each with submissions on the models, run to results."""
    engine = build_engine(settings, database_url)
    blobs, _ = build_blob_store(settings)
    uow, notifier = unit_of_work_factory(engine)

    rng = random.Random(42)  # noqa: S311 - demo data, reproducible on purpose
    try:
        models = await owned.list_active_models(uow())
        total = 0
        for n in range(users):
            total += await _seed_user(uow, settings, models, n, submissions_per_user, rng)
        tasks = background_tasks(settings, uow, blobs)
        await tasks.start()
        try:
            await _drain_queue(uow)
        finally:
            await tasks.stop()
        return Seeded(users=users, submissions=total)
    finally:
        await notifier.close()
        await engine.dispose()
