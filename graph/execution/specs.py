"""What the compiler knows of a field: a value on the parent, a batched load, or a page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.ports import BlobStore, UnitOfWork
from domain.principal import Principal


class Fallback(Exception):
    """The compiled run cannot answer exactly as the reference would; let the reference run."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unsupported(Fallback):
    """The document uses something the compiler does not cover."""


ROOT = "root"  # the key of the Query root's one "parent"


@dataclass(frozen=True, slots=True)
class Run:
    """One request's compiled run: who asks, and the one unit of work all loads share."""

    principal: Principal
    uow: UnitOfWork
    blobs: BlobStore
    download_url_ttl: int


Loaded = Mapping[Hashable, Any]
LoadFn = Callable[[Run, Sequence[Any], Any], Awaitable[Loaded]]
Arguments = Mapping[str, Any]


def no_arguments(_: Arguments) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Value:
    """A field read from the parent object itself; `attribute` when it is a plain attribute."""

    get: Callable[[Any], Any]
    attribute: str | None = None


@dataclass(frozen=True, slots=True)
class Embedded:
    """Plain objects inside the parent (a result's alternatives): no loads below them."""

    get: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Related:
    """Objects another load brings, one load for every parent of the level.

    `load` takes the distinct keys and the bound arguments and returns a value per key: an
    entity (or None) for a single object, a list of entities for a list field.
    """

    load: LoadFn
    key: Callable[[Any], Hashable]
    bind: Callable[[Arguments], Any] = no_arguments


@dataclass(frozen=True, slots=True)
class Paged:
    """A connection: one page per parent, and a count per parent only when selected."""

    pages: LoadFn
    counts: LoadFn
    key: Callable[[Any], Hashable]
    bind: Callable[[Arguments], Any]


FieldSpec = Value | Embedded | Related | Paged
