"""What the fast lanes' differential tests share (test_inference_lane.py, test_batch_lane.py):
two apps on one database that differ only in `compiled_execution` (off, the lanes are off
too), a case posted to both, and the answers compared once what must differ is numbered.

The fixtures `lane_app`, `full_app` and `apps` are offered to every integration module by
conftest.py."""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from server.settings import Settings
from telemetry import metrics
from tests.integration import differential as d
from tests.integration.bootstrapped import BASE_URL, variant

if TYPE_CHECKING:  # conftest offers this module's fixtures: no import back at run time
    from tests.integration.conftest import TokenFactory

OWNER: Final = "ivy@example.com"
# New objects' ids (two apps, two of each) and the model's measured time differ; all else
# must be the same.
_NEW_KINDS: Final = ("Submission", "Result", "Batch")
_STRING: Final = re.compile(rb'"([A-Za-z0-9_-]{40,})"')
_TIMINGS: Final = re.compile(rb'"(processingTimeMs|took)":\d+')
_RATE: Final = re.compile(r"=\d+")


async def running_app(
    settings: Settings, postgres_url: str, **overrides: Any
) -> AsyncIterator[Starlette]:
    app = d.build_frozen_app(variant(settings, **overrides), postgres_url)
    async for running in d.running(app):
        yield running


def _lane_settings(compiled: bool) -> dict[str, Any]:
    return {
        "compiled_execution": compiled,
        "rate_limit_burst": 1e12,
        "inference_burst": 1e12,
        "webhook_allow_private_networks": True,  # callbacks to 127.0.0.1 are accepted
    }


@pytest.fixture(scope="module")
async def lane_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    async for app in running_app(settings, postgres_url, **_lane_settings(True)):
        yield app


@pytest.fixture(scope="module")
async def full_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    async for app in running_app(settings, postgres_url, **_lane_settings(False)):
        yield app


@dataclass
class Apps:
    lane: httpx.AsyncClient
    full: httpx.AsyncClient
    bearer: str
    models: dict[str, str]


@contextlib.asynccontextmanager
async def pair(
    lane_app: Starlette, full_app: Starlette, bearer: str, models: dict[str, str]
) -> AsyncIterator[Apps]:
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=lane_app), base_url=BASE_URL) as lane,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=full_app), base_url=BASE_URL) as full,
    ):
        yield Apps(lane, full, bearer, models)


@pytest.fixture
async def apps(
    lane_app: Starlette,
    full_app: Starlette,
    db: AsyncEngine,
    default_models: dict[str, str],
    token: TokenFactory,
) -> AsyncIterator[Apps]:
    async with pair(lane_app, full_app, token(OWNER), default_models) as both:
        yield both


async def budget_apps(
    settings: Settings, postgres_url: str, budget: int
) -> AsyncIterator[tuple[Starlette, Starlette]]:
    """A lane app and a full app whose inference budgets hold `budget` and never refill."""
    limits = {"inference_burst": budget, "inference_rate_per_second": 1e-6}
    async for lane in running_app(settings, postgres_url, compiled_execution=True, **limits):
        async for full in running_app(settings, postgres_url, compiled_execution=False, **limits):
            yield lane, full


def lane_counts() -> Counter[str]:
    return Counter(
        {
            sample.labels["outcome"]: int(sample.value)
            for family in metrics.FAST_LANE.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        }
    )


async def post(
    client: httpx.AsyncClient,
    bearer: str | None,
    body: Mapping[str, Any],
    accept: str | None = None,
) -> tuple[httpx.Response, Counter[str]]:
    headers = {"Content-Type": "application/json", "X-Request-ID": "lane"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    if accept is not None:
        headers["Accept"] = accept
    before = lane_counts()
    response = await client.post("/graphql", content=orjson.dumps(body), headers=headers)
    return response, lane_counts() - before


def normalised(content: bytes) -> bytes:
    """The body with each new Submission, Result and Batch id numbered by first appearance,
    and the model's measured time zeroed: all that differs between two apps' answers (their
    clocks are frozen)."""
    seen: dict[bytes, int] = {}

    def number(match: re.Match[bytes]) -> bytes:
        text = match.group(1)
        try:
            decoded = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return match.group(0)
        kind, _, rest = decoded.partition(":")
        if kind not in _NEW_KINDS or len(rest) != 36:
            return match.group(0)
        return b'"%s#%d"' % (kind.encode(), seen.setdefault(text, len(seen)))

    return _TIMINGS.sub(rb'"\1":0', _STRING.sub(number, content))


def headers_of(response: httpx.Response) -> list[tuple[str, str]]:
    """All headers, in order, but what is left of the RateLimit budget (it changes)."""
    return [
        (name, _RATE.sub("=N", value) if name == "ratelimit" else value)
        for name, value in response.headers.multi_items()
        if name != "content-length"
    ]


@dataclass(frozen=True)
class Case:
    label: str
    query: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    accept: str | None = None
    signed_in: bool = True
    is_served: bool = True  # by the lane, once learned

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"query": self.query}
        if self.variables is not None:
            body["variables"] = self.variables
        if self.operation_name is not None:
            body["operationName"] = self.operation_name
        return body


async def compare(apps: Apps, case: Case) -> tuple[httpx.Response, httpx.Response, Counter[str]]:
    """The case sent to the lane app, then to the full app; both answers and the lane's count."""
    bearer = apps.bearer if case.signed_in else None
    lane, counted = await post(apps.lane, bearer, case.body(), case.accept)
    full, _ = await post(apps.full, bearer, case.body(), case.accept)
    assert (lane.status_code, headers_of(lane)) == (full.status_code, headers_of(full)), case
    assert normalised(lane.content) == normalised(full.content), (
        case.label,
        lane.content[:2000],
        full.content[:2000],
    )
    return lane, full, counted


def fresh(document: str) -> str:
    """A text neither app has seen: each test learns its own documents."""
    return f"# {uuid.uuid4()}\n{document}"
