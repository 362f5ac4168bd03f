"""Walking a connection to its end, forward with `first` or backwards with `last`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Fetch = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def walk(fetch: Fetch, variables: dict[str, Any]) -> list[str]:
    """Every node id of the list in its order; `fetch` answers a connection for the
    variables. Checks each page's cursors and that the side it came from says so."""
    backwards = "last" in variables
    ids: list[str] = []
    position: str | None = None
    for _ in range(50):
        connection = await fetch({**variables, ("before" if backwards else "after"): position})
        page = [e["node"]["id"] for e in connection["edges"]]
        cursors = [e["cursor"] for e in connection["edges"]]
        info = connection["pageInfo"]
        assert (info["startCursor"], info["endCursor"]) == (
            (cursors[0], cursors[-1]) if cursors else (None, None)
        )
        behind = info["hasNextPage"] if backwards else info["hasPreviousPage"]
        assert behind is (position is not None)
        ids = page + ids if backwards else ids + page
        if not (info["hasPreviousPage"] if backwards else info["hasNextPage"]):
            return ids
        position = info["startCursor"] if backwards else info["endCursor"]
    raise AssertionError("the list did not end")
