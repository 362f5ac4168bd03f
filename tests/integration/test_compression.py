"""Compressed answers from the real app: the fast lane, the full pipeline and errors alike."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import make_user
from tests.integration.conftest import TokenFactory
from tests.integration.differential import lane_answered

# A list of the models with their schemas: well over 1 KB.
MODELS = "{ models { id name version description inputSchema outputSchema } }"
VIEWER = "{ viewer { id } }"  # well under


async def _post(
    client: httpx.AsyncClient, query: str, token: str | None, coding: str | None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if coding is not None:
        headers["Accept-Encoding"] = coding
    return await client.post("/graphql", json={"query": query}, headers=headers)


@pytest.fixture
async def me(db: AsyncEngine, token: TokenFactory, default_models: dict[str, str]) -> str:
    await make_user(db, "squeeze@example.com")
    return token("squeeze@example.com")


@pytest.mark.parametrize("coding", ["br", "gzip"])
async def test_the_full_pipeline_and_the_fast_lane_both_compress(
    client: httpx.AsyncClient, me: str, coding: str
) -> None:
    plain = await _post(client, MODELS, me, "identity")
    lane = lane_answered()

    answers = [await _post(client, MODELS, me, coding) for _ in range(2)]

    assert lane_answered() == lane + 2  # the text was seen: both went by the fast lane
    for answer in [*answers, plain]:
        assert answer.status_code == 200
        assert "Accept-Encoding" in answer.headers["vary"]
    assert "content-encoding" not in plain.headers
    assert len(plain.content) > 1024
    for answer in answers:
        assert answer.headers["content-encoding"] == coding
        assert int(answer.headers["content-length"]) < len(plain.content) / 2
        assert answer.content == plain.content  # decoded by httpx: the same bytes


async def test_a_first_sending_answered_by_the_full_pipeline_is_compressed(
    client: httpx.AsyncClient, me: str
) -> None:
    lane = lane_answered()
    text = MODELS.replace("models {", "first: models {")

    answer = await _post(client, text, me, "gzip;q=0.5, br;q=0.8")

    assert lane_answered() == lane
    assert answer.headers["content-encoding"] == "br"
    assert "first" in answer.json()["data"]


async def test_a_small_answer_is_not_compressed(client: httpx.AsyncClient, me: str) -> None:
    answer = await _post(client, VIEWER, me, "br, gzip")

    assert "content-encoding" not in answer.headers
    assert "Accept-Encoding" in answer.headers["vary"]


async def test_error_answers_go_the_same_way(client: httpx.AsyncClient, me: str) -> None:
    # A document of many unknown fields: a large BAD_REQUEST-free validation error answer.
    fields = " ".join(f"nope{n}" for n in range(60))
    answer = await _post(client, f"{{ {fields} }}", me, "gzip")
    body: dict[str, Any] = answer.json()

    assert len(body["errors"]) == 60
    assert answer.headers["content-encoding"] == "gzip"
