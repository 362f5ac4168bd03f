"""Pages of in-memory items, scanned as the store scans its keyset pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from domain.pagination import Keyed, Page, PageRequest, keyset_of

T = TypeVar("T", bound=Keyed)


def page_in_order(oldest_first: Sequence[T], request: PageRequest) -> Page[T]:
    """The request's page of items in keyset order, scanned as the store scans them."""
    descending = request.descending
    ordered = list(oldest_first[::-1] if descending else oldest_first)
    if request.after is not None:
        start = request.after
        ordered = [
            i for i in ordered if (keyset_of(i) < start if descending else keyset_of(i) > start)
        ]
    if request.until is not None:
        stop = request.until
        ordered = [
            i for i in ordered if (keyset_of(i) > stop if descending else keyset_of(i) < stop)
        ]
    return Page.from_overfetch(ordered[: request.first + 1], request)
