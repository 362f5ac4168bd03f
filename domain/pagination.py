"""Keyset pagination on (created_at, id): page requests and pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from domain.errors import InvalidInput

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True, order=True)
class Keyset:
    created_at: datetime
    id: UUID


class Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...
    @property
    def id(self) -> UUID: ...


T = TypeVar("T", bound=Keyed)


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int = DEFAULT_PAGE_SIZE
    after: Keyset | None = None
    # Newest first. A cursor is a position in (created_at, id), the same in either order:
    # with the other order it pages on from that position in that order's direction.
    descending: bool = False

    @classmethod
    def checked(
        cls,
        first: int | None,
        after: Keyset | None,
        path: str = "first",
        *,
        descending: bool = False,
    ) -> PageRequest:
        size = DEFAULT_PAGE_SIZE if first is None else first
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidInput({path: f"must be between 1 and {MAX_PAGE_SIZE}, got {size}"})
        return cls(first=size, after=after, descending=descending)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    has_next_page: bool
    has_previous_page: bool

    @classmethod
    def empty(cls) -> Page[T]:
        return cls(items=(), has_next_page=False, has_previous_page=False)

    @classmethod
    def from_overfetch(cls, rows: Sequence[T], request: PageRequest) -> Page[T]:
        """Build a page from up to first+1 rows fetched in keyset order."""
        return cls(
            items=rows[: request.first],
            has_next_page=len(rows) > request.first,
            has_previous_page=request.after is not None,
        )


def keyset_of(item: Keyed) -> Keyset:
    return Keyset(item.created_at, item.id)
