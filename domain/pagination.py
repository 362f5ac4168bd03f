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
    """One page of a list, as the store scans it.

    `first` rows are read from the position `after` (exclusive; None: from the start) in the
    scan's direction (`descending`: newest first), stopping before `until` (exclusive; None:
    the end). A cursor is a position in (created_at, id), the same in either order: with the
    other order it pages on from that position in that order's direction.

    A request for the `last` rows of a list scans it the other way from `before` (and stops
    before `after`), then reverses what it read: `is_backward`."""

    first: int = DEFAULT_PAGE_SIZE
    after: Keyset | None = None
    descending: bool = False
    until: Keyset | None = None
    is_backward: bool = False

    @classmethod
    def checked(
        cls,
        first: int | None,
        after: Keyset | None,
        path: str = "first",
        *,
        descending: bool = False,
        last: int | None = None,
        before: Keyset | None = None,
        last_path: str = "last",
    ) -> PageRequest:
        """The request for `first` after `after` or `last` before `before` in a list ordered
        newest first when `descending`; BAD_USER_INPUT for a size outside 1..100 or for
        `first` with `last` (the default size, which a schema fills in, does not count)."""
        if last is None:
            return cls(_size(first, path), after, descending, before)
        if first is not None and first != DEFAULT_PAGE_SIZE:
            raise InvalidInput({last_path: "cannot be given with first: page one way at a time"})
        return cls(_size(last, last_path), before, not descending, after, is_backward=True)


def _size(given: int | None, path: str) -> int:
    size = DEFAULT_PAGE_SIZE if given is None else given
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInput({path: f"must be between 1 and {MAX_PAGE_SIZE}, got {size}"})
    return size


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
        """Build a page from up to first+1 rows fetched in the request's scan order.

        Beyond the rows read, more come when the scan had one row too many or stopped at a
        cursor (whose object lies beyond); before them, when the scan started at one."""
        beyond = len(rows) > request.first or request.until is not None
        behind = request.after is not None
        items = rows[: request.first]
        if request.is_backward:
            return cls(items=items[::-1], has_next_page=behind, has_previous_page=beyond)
        return cls(items=items, has_next_page=beyond, has_previous_page=behind)


def keyset_of(item: Keyed) -> Keyset:
    return Keyset(item.created_at, item.id)
