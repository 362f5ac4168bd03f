"""In development GraphiQL embeds its demo token only for a Host that is the server's own,
so a page on a DNS-rebinding domain that reaches this server gets the page without it."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.transport.graphiql import HEADERS_TEMPLATE

PAGE = {"Accept": "text/html"}


async def _page(client: httpx.AsyncClient, host: str) -> str:
    response = await client.get("/graphql", headers={**PAGE, "Host": host})
    assert response.status_code == 200
    return response.text


@pytest.mark.parametrize(
    "host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST", "testserver"]
)
async def test_the_servers_own_host_gets_the_demo_token(
    client: httpx.AsyncClient, db: AsyncEngine, host: str
) -> None:
    page = await _page(client, host)
    assert "Bearer ey" in page
    assert "paste a token" not in page


@pytest.mark.parametrize(
    "host", ["rebind.attacker.example:8000", "127.0.0.1.attacker.example", "localhost.evil", ""]
)
async def test_another_host_gets_the_page_without_it(
    client: httpx.AsyncClient, db: AsyncEngine, host: str
) -> None:
    page = await _page(client, host)
    assert "Bearer ey" not in page
    assert HEADERS_TEMPLATE.split("<")[1].split(">")[0] in page  # where to get one instead
