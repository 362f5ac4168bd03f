"""One generated Python function per selection set: the response object in one expression.

Composed closures cost three Python calls a field; a generated function reads attributes
inline and calls out only for loads, ids and unusual values. Nothing from a document enters
the source: response keys, constants and functions are reached by index (`K[3]`, `W[0]`),
and the only names written into the source are entity attribute names from the catalog,
checked to be identifiers.
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import CodeType
from typing import Any

Values = list[Any]
Write = Callable[[Any, Values], Any]
Build = Callable[[Any, Values], dict[str, Any]]

_INT_RANGE = "-2147483648 <= {v} <= 2147483647"


@dataclass(frozen=True, slots=True)
class Attribute:
    """`obj.<name>`, kept as is when its class is `fast_type` (and, for int, in range)."""

    name: str
    fast_type: type | None
    serialize: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Constant:
    value: Any


@dataclass(frozen=True, slots=True)
class Call:
    """Anything else: `write(obj, values)`."""

    write: Write


FieldCode = Attribute | Constant | Call


def builder(fields: Sequence[tuple[str, FieldCode]]) -> Build:
    keys: list[str] = []
    functions: list[Any] = []
    constants: list[Any] = []
    lines: list[str] = []
    for n, (key, code) in enumerate(fields):
        keys.append(key)
        if isinstance(code, Constant):
            constants.append(code.value)
            expression = f"C[{len(constants) - 1}]"
        elif isinstance(code, Call):
            functions.append(code.write)
            expression = f"F[{len(functions) - 1}](obj, values)"
        else:
            expression = _attribute(code, n, functions)
        lines.append(f"        K[{n}]: {expression},")
    source = "\n".join(["def build(obj, values):", "    return {", *lines, "    }"])
    namespace: dict[str, Any] = {"K": tuple(keys), "F": tuple(functions), "C": tuple(constants)}
    exec(_code(source), namespace)  # noqa: S102 - see the module doc
    build: Build = namespace["build"]
    return build


@functools.lru_cache(maxsize=1024)
def _code(source: str) -> CodeType:
    """Compiled once per shape: the source holds no document data, so shapes repeat."""
    return compile(source, "<assay plan>", "exec")


def _attribute(code: Attribute, n: int, functions: list[Any]) -> str:
    if not code.name.isidentifier() or keyword.iskeyword(code.name):
        raise ValueError(f"not an attribute name: {code.name!r}")
    functions.append(code.serialize)
    serialize = f"F[{len(functions) - 1}]"
    if code.fast_type is None:
        return f"{serialize}(obj.{code.name})"
    slow = f"{serialize}(v{n})"
    functions.append(code.fast_type)
    check = f"v{n}.__class__ is F[{len(functions) - 1}]"
    if code.fast_type is int:
        check += " and " + _INT_RANGE.format(v=f"v{n}")
    return f"(v{n} if ({check}) else {slow}) if (v{n} := obj.{code.name}) is not None else {slow}"
