"""Projections as one SQL statement: PostgreSQL builds the whole JSON answer.

A projection (domain/projections.py) renders to `SELECT json_build_object(...)::text`:
to-one relations and lists are correlated subqueries (json_build_object, json_agg), a
connection is a keyset window (LIMIT first + 1) aggregated with its page info, and
totalCount a count beside it, as PostGraphile does. The access rules of domain/access.py
become predicates on every entity read. Values are written as the Python path writes them
(global ids, cursors and DateTime text in SQL, floats always with a fraction); what the
caller re-encodes (whitespace, escapes, number spelling) it normalizes by parsing the text.

A value the projection cannot write as declared (a null in a required field, an integer
out of range, an unknown enumeration value, a root that finds nothing) is written as the
ANOMALY string; the reader raises Anomaly when the answer contains it. User data that
happens to contain it costs a fallback, never a wrong answer.

The SQL text depends on the projection, on whether the caller is an administrator and on
which optional arguments are set; everything else is a bound parameter, so asyncpg's
prepared-statement cache serves repeated requests. Names in the text come from the tables
below and from GraphQL names (checked to be names); no value ever enters it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import projections as p
from domain.access import ENTITY_RULES, SOURCE_RULES, owner_attribute
from domain.errors import NotFound
from domain.ids import CURSOR_KINDS
from domain.principal import Principal
from domain.submissions import MetadataEntry
from persistence.driver import fetch_text

ANOMALY = '"\\u0007assay:anomaly"'  # as it appears in the JSON text
_ANOMALY_JSON = f"'{ANOMALY}'::json"
NOT_FOUND = '"\\u0007assay:not-found"'  # a root field's object is missing or invisible
_NOT_FOUND_JSON = f"'{NOT_FOUND}'::json"
_ANOMALY_JSONB = f"'{ANOMALY}'::jsonb"
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
_MAX_KEYS = 50  # json_build_object takes at most 100 arguments

Getter = Callable[[Sequence[p.SlotValue], Principal], object]


@dataclass(frozen=True)
class _Entity:
    table: str
    nullable: frozenset[str] = frozenset()
    big: frozenset[str] = frozenset()  # bigint attributes: range-checked as Int
    computed: Mapping[str, str] = field(default_factory=dict)  # attribute -> SQL over {t}

    def column(self, alias: str, attribute: str) -> str:
        computed = self.computed.get(attribute)
        if computed is not None:
            return computed.format(t=alias)
        if not _NAME.match(attribute):
            raise ValueError(f"not an attribute name: {attribute!r}")
        return f"{alias}.{attribute}"


ENTITIES: Mapping[str, _Entity] = {
    "User": _Entity("users"),
    "Asset": _Entity("assets", big=frozenset({"size_bytes"})),
    "Model": _Entity("models"),
    "Submission": _Entity("submissions", nullable=frozenset({"error"})),
    "Result": _Entity(
        "results",
        nullable=frozenset({"confidence"}),
        computed={
            "owner_id": "(SELECT o.owner_id FROM submissions o WHERE o.id = {t}.submission_id)"
        },
    ),
}


@dataclass(frozen=True)
class _Link:
    """How a relation (or a root source) finds its rows: `where` over {p} (the parent) and
    {c} (the rows); `joined` replaces `<table> {c}` in FROM when the rows come through a
    link table; `order` the relation's order."""

    target: str
    where: str
    order: str = "{c}.created_at, {c}.id"
    joined: str | None = None
    first_only: bool = False  # a to-one relation read as the first row in `order`


LINKS: Mapping[tuple[str, str], _Link] = {
    ("Submission", "owner"): _Link("User", "{c}.id = {p}.owner_id"),
    ("Asset", "owner"): _Link("User", "{c}.id = {p}.owner_id"),
    ("Submission", "model"): _Link("Model", "{c}.id = {p}.model_id"),
    ("Result", "submission"): _Link("Submission", "{c}.id = {p}.submission_id"),
    ("Submission", "results"): _Link("Result", "{c}.submission_id = {p}.id"),
    ("Submission", "latest_result"): _Link(
        "Result", "{c}.submission_id = {p}.id", "{c}.created_at DESC, {c}.id DESC", first_only=True
    ),
    ("Submission", "assets"): _Link(
        "Asset",
        "{c}_l.submission_id = {p}.id",
        "{c}_l.position",
        joined="submission_assets {c}_l JOIN assets {c} ON {c}.id = {c}_l.asset_id",
    ),
    ("User", "submissions"): _Link("Submission", "{c}.owner_id = {p}.id"),
    ("User", "assets"): _Link("Asset", "{c}.owner_id = {p}.id"),
}

# Root sources: {me} is the principal's user id, {slot} the root's argument.
SOURCES: Mapping[str, _Link] = {
    "viewer": _Link("User", "{c}.id = {me}"),
    # An erased account's emptied row is invisible to every query (persistence/users.py).
    "user": _Link("User", "{c}.id = {slot} AND {c}.erased_at IS NULL"),
    "asset": _Link("Asset", "{c}.id = {slot} AND {c}.status <> 'DELETED'"),
    "submission": _Link("Submission", "{c}.id = {slot}"),
    "result": _Link("Result", "{c}.id = {slot}"),
    "model": _Link("Model", "{c}.id = {slot}"),
    "models": _Link("Model", "{c}.is_active", "{c}.name, {c}.created_at, {c}.id"),
    "users": _Link("User", "{c}.erased_at IS NULL"),
    "submissions": _Link("Submission", "{c}.owner_id = {me}"),
    "assets": _Link("Asset", "{c}.owner_id = {me}"),
}
LIST_SOURCES = frozenset({"models"})


def _like_pattern(text: object) -> str:
    """A contains-pattern as SQLAlchemy's icontains(autoescape=True) binds it."""
    assert isinstance(text, str)
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _metadata_json(pair: object) -> str:
    assert isinstance(pair, MetadataEntry)
    return orjson.dumps([{"key": pair.key, "value": pair.value}]).decode()


@dataclass(frozen=True)
class _Filter:
    sql: str  # over {c} and {v}
    cast: str
    convert: Callable[[object], object] = lambda value: value
    is_set: Callable[[object], bool] = lambda value: value is not None


FILTERS: Mapping[str, _Filter] = {
    "status": _Filter("{c}.status = {v}", "text"),
    # History (domain/history.py): one model, and creation times with both ends exclusive.
    "model_id": _Filter("{c}.model_id = {v}", "uuid"),
    "created_after": _Filter("{c}.created_at > {v}", "timestamptz"),
    "created_before": _Filter("{c}.created_at < {v}", "timestamptz"),
    # One metadata pair (domain/submissions.py), as the repository's containment test.
    "metadata": _Filter("{c}.metadata @> {v}::jsonb", "text", _metadata_json),
    "is_active": _Filter("{c}.is_active = {v}", "boolean"),
    "email_contains": _Filter(
        "lower({c}.email) LIKE '%' || lower({v}) || '%' ESCAPE '/'",
        "text",
        _like_pattern,
        lambda value: bool(value),
    ),
}


def _literal(text: str) -> str:
    if not _NAME.match(text):
        raise ValueError(f"not a GraphQL name: {text!r}")
    return f"'{text}'"


def _base64url(text_sql: str) -> str:
    # encode() breaks lines every 76 characters; translate drops them with the padding. The
    # text is ASCII without backslashes (a type name, a UUID, a DateTime): ::bytea keeps it.
    return f"translate(encode(({text_sql})::bytea, 'base64'), E'+/=\\n', '-_')"


def _moment(expression: str) -> str:
    """datetime.isoformat() of the value in UTC: microseconds only when not zero."""
    text = f"to_char(({expression} AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    return f"(replace({text}, '.000000', '') || '+00:00')"


def _float(text_sql: str) -> str:
    """A float's text with a fraction when PostgreSQL writes it as an integer (1 -> 1.0)."""
    # NaN and Infinity become NaN.0 and Infinity.0, which are no JSON: the statement fails
    # and the request falls back, where the reference path reports the value.
    integral = f"strpos({text_sql}, '.') = 0 AND strpos({text_sql}, 'e') = 0"
    return f"(CASE WHEN {integral} THEN {text_sql} || '.0' ELSE {text_sql} END)::json"


# Per slot of a window: whether `after` is set, whether the scan is newest first, whether
# `until` is set, whether the page is read backwards (domain/pagination.py), and each
# filter's name and whether it is set.
SlotShape = tuple[bool, bool, bool, bool, tuple[tuple[str, bool], ...]]
Shape = tuple[SlotShape | None, ...]


class _Renderer:
    """One statement's text and the getters of its parameters, in $n order."""

    def __init__(self, is_admin: bool, shape: Shape) -> None:
        self.is_admin = is_admin
        self.shape = shape
        self.getters: list[Getter] = []
        self.aliases = 0
        self._me: str | None = None

    def param(self, getter: Getter, cast: str) -> str:
        self.getters.append(getter)
        return f"${len(self.getters)}::{cast}"

    def me(self) -> str:
        if self._me is None:
            self._me = self.param(lambda _, principal: principal.user_id, "uuid")
        return self._me

    def alias(self) -> str:
        self.aliases += 1
        return f"t{self.aliases}"

    # ------------------------------------------------------------- rows and rules

    def _rule(self, entity: str, alias: str) -> list[str]:
        owner = owner_attribute(ENTITY_RULES[entity], is_admin=self.is_admin)
        if owner is None:
            return []
        return [f"{ENTITIES[entity].column(alias, owner)} = {self.me()}"]

    def _from(self, link: _Link, alias: str) -> str:
        if link.joined is not None:
            return link.joined.format(c=alias)
        return f"{ENTITIES[link.target].table} {alias}"

    def _where(self, link: _Link, parent: str, alias: str, slot: str = "") -> list[str]:
        me = self.me() if "{me}" in link.where else ""
        condition = link.where.format(p=parent, c=alias, me=me, slot=slot)
        return [condition, *self._rule(link.target, alias)]

    # ------------------------------------------------------------------ objects

    def object(self, shape: p.Shape, alias: str) -> str:
        if len(shape.fields) > _MAX_KEYS:
            raise ValueError("too many keys for json_build_object")
        entity = ENTITIES[shape.entity]
        parts = [
            f"{_literal(key)}, {self.field(shape.entity, entity, alias, value)}"
            for key, value in shape.fields
        ]
        return f"json_build_object({', '.join(parts)})"

    def field(self, name: str, entity: _Entity, alias: str, value: p.Field) -> str:
        if isinstance(value, p.Attribute):
            return self.attribute(entity, alias, value)
        if isinstance(value, p.GlobalId):
            return _base64url(f"{_literal(value.type_name)} || ':' || {alias}.id::text")
        if isinstance(value, p.Cursor):
            return self.cursor(alias, name)
        if isinstance(value, p.Constant):
            return f"{_literal(value.value)}::text"
        if isinstance(value, p.One):
            return self.one(LINKS[(name, value.relation)], alias, value.shape, value.is_required)
        if isinstance(value, p.Many):
            return self.many(LINKS[(name, value.relation)], alias, value.shape)
        if isinstance(value, p.Nested):
            return self.nested(entity, alias, value)
        return self.window(LINKS[(name, value.relation)], alias, value)

    def cursor(self, alias: str, entity: str) -> str:
        kind = _literal(CURSOR_KINDS[entity])
        return _base64url(
            f"{kind} || '|' || {_moment(f'{alias}.created_at')} || '|' || {alias}.id::text"
        )

    def attribute(self, entity: _Entity, alias: str, attribute: p.Attribute) -> str:
        expression = entity.column(alias, attribute.name)
        anomalies: list[str] = []
        if attribute.is_required and attribute.name in entity.nullable:
            anomalies.append(f"{expression} IS NULL")
        if attribute.choices is not None:
            anomalies.append(f"{expression} NOT IN ({', '.join(map(_literal, attribute.choices))})")
        value = expression
        kind = attribute.kind
        if kind is p.Kind.INT and attribute.name in entity.big:
            anomalies.append(f"{expression} NOT BETWEEN -2147483648 AND 2147483647")
        elif kind is p.Kind.FLOAT:
            value = _float(f"{expression}::text")
        elif kind is p.Kind.MOMENT:
            value = _moment(expression)
        elif kind is p.Kind.JSON and attribute.is_required:
            anomalies.append(f"jsonb_typeof({expression}) = 'null'")
        if not anomalies:
            return value
        if kind is p.Kind.JSON:  # stored as jsonb: written as it is, no conversion to json
            return f"CASE WHEN {' OR '.join(anomalies)} THEN {_ANOMALY_JSONB} ELSE {value} END"
        return f"CASE WHEN {' OR '.join(anomalies)} THEN {_ANOMALY_JSON} ELSE to_json({value}) END"

    def nested(self, entity: _Entity, alias: str, nested: p.Nested) -> str:
        element = self.alias()
        parts = []
        for key, value in nested.fields:
            if isinstance(value, p.Constant):
                parts.append(f"{_literal(key)}, {_literal(value.value)}::text")
                continue
            item = f"{element}.v -> {_literal(value.key)}"
            typeof = f"jsonb_typeof({item})"
            if value.kind is p.Kind.FLOAT:
                written = _float(f"({element}.v ->> {_literal(value.key)})")
                check = f"{typeof} IS DISTINCT FROM 'number'"
            elif value.kind is p.Kind.JSON:
                written, check = f"({item})::json", f"coalesce({typeof}, 'null') = 'null'"
            elif value.kind is p.Kind.TEXT:
                written, check = f"({item})::json", f"{typeof} IS DISTINCT FROM 'string'"
            else:
                raise ValueError(f"nested values of kind {value.kind} are not rendered")
            parts.append(
                f"{_literal(key)}, CASE WHEN {check} THEN {_ANOMALY_JSON} ELSE {written} END"
            )
        stored = entity.column(alias, nested.attribute)
        return (
            f"(SELECT coalesce(json_agg(json_build_object({', '.join(parts)}) "
            f"ORDER BY {element}.n), '[]'::json) "
            f"FROM jsonb_array_elements({stored}) WITH ORDINALITY AS {element}(v, n))"
        )

    # ---------------------------------------------------------------- relations

    def one(
        self,
        link: _Link,
        parent: str,
        shape: p.Shape,
        is_required: bool,
        slot: str = "",
        missing: str = _ANOMALY_JSON,
    ) -> str:
        alias = self.alias()
        where = " AND ".join(self._where(link, parent, alias, slot))
        limit = f" ORDER BY {link.order.format(c=alias)} LIMIT 1" if link.first_only else ""
        found = (
            f"(SELECT {self.object(shape, alias)} FROM {self._from(link, alias)} "
            f"WHERE {where}{limit})"
        )
        return f"coalesce({found}, {missing})" if is_required else found

    def many(self, link: _Link, parent: str, shape: p.Shape) -> str:
        # The rows come ordered from a subquery (an index scan, mostly) rather than through
        # json_agg(... ORDER BY), which sorts once per parent: a third of the time of W1.
        alias = self.alias()
        where = " AND ".join(self._where(link, parent, alias))
        rows = (
            f"SELECT {alias}.* FROM {self._from(link, alias)} WHERE {where} "
            f"ORDER BY {link.order.format(c=alias)}"
        )
        return (
            f"(SELECT coalesce(json_agg({self.object(shape, alias)}), '[]'::json) "
            f"FROM ({rows}) {alias})"
        )

    def _filters(self, window: p.Window, alias: str) -> list[str]:
        shape = self.shape[window.slot]
        assert shape is not None
        conditions = []
        for n, (name, is_set) in enumerate(shape[4]):
            if not is_set:
                continue
            spec = FILTERS[name]
            value = self.param(_filter_getter(window.slot, n, spec.convert), spec.cast)
            conditions.append(spec.sql.format(c=alias, v=value))
        return conditions

    def window(self, link: _Link, parent: str, window: p.Window) -> str:
        shape = self.shape[window.slot]
        assert shape is not None
        has_after, descending, has_until, is_backward = shape[:4]
        slot = window.slot
        # A parameter the text does not use has no type PostgreSQL can infer: bind only
        # what the statement reads.
        needs_rows = any(part in ("edges", "pageInfo") for _, part in window.parts)
        first = ""
        if needs_rows:
            first = self.param(lambda slots, _: _page(slots, slot).request.first, "int")
        alias = self.alias()
        parts: list[str] = []
        for key, part in window.parts:
            if isinstance(part, p.Constant):
                written = f"{_literal(part.value)}::text"
            elif part == "totalCount":
                counted = self.alias()
                matching = self._where(link, parent, counted) + self._filters(window, counted)
                written = (
                    f"(SELECT count(*) FROM {self._from(link, counted)} "
                    f"WHERE {' AND '.join(matching)})"
                )
            elif part == "edges":
                # In the order the rows were read, or the other way for a page read backwards.
                order = f" ORDER BY {alias}.n__ DESC" if is_backward else ""
                written = (
                    f"coalesce(json_agg({self.edge(window, alias, link.target)}{order}) "
                    f"FILTER (WHERE {alias}.n__ <= {first}), '[]'::json)"
                )
            else:
                written = self.page_info(window, alias, first, link.target, shape)
            parts.append(f"{_literal(key)}, {written}")
        built = f"json_build_object({', '.join(parts)})"
        if not needs_rows:
            return built
        where = self._where(link, parent, alias) + self._filters(window, alias)
        # A cursor is a position: pages go on from it in the scan's direction, and stop
        # short of `until`.
        for is_set, name, beyond in (
            (has_after, "after", "<" if descending else ">"),
            (has_until, "until", ">" if descending else "<"),
        ):
            if is_set:
                created = self.param(_keyset_getter(slot, name, "created_at"), "timestamptz")
                ident = self.param(_keyset_getter(slot, name, "id"), "uuid")
                where.append(f"({alias}.created_at, {alias}.id) {beyond} ({created}, {ident})")
        direction = " DESC" if descending else ""
        rows = (
            f"SELECT {alias}.* FROM {self._from(link, alias)} WHERE {' AND '.join(where)} "
            f"ORDER BY {alias}.created_at{direction}, {alias}.id{direction} LIMIT {first} + 1"
        )
        numbered = (
            f"SELECT r.*, row_number() OVER (ORDER BY r.created_at{direction}, r.id{direction}) "
            f"AS n__, count(*) OVER () AS c__ FROM ({rows}) r"
        )
        # One row, whatever was read: an aggregate query even when no part aggregates (a
        # pageInfo of constants alone), as every column is read inside an aggregate.
        return f"(SELECT {built} FROM ({numbered}) {alias} GROUP BY ())"

    def edge(self, window: p.Window, alias: str, entity: str) -> str:
        parts = []
        for key, part in window.edges:
            if isinstance(part, p.Cursor):
                written = self.cursor(alias, entity)
            elif isinstance(part, p.Constant):
                written = f"{_literal(part.value)}::text"
            else:
                written = self.object(part, alias)
            parts.append(f"{_literal(key)}, {written}")
        return f"json_build_object({', '.join(parts)})"

    def page_info(
        self, window: p.Window, alias: str, first: str, entity: str, shape: SlotShape
    ) -> str:
        has_after, _, has_until, is_backward = shape[:4]
        # As Page.from_overfetch says: beyond the rows read (in the scan's direction), and
        # behind them.
        beyond = "TRUE" if has_until else f"count(*) > {first}"
        behind = "TRUE" if has_after else "FALSE"
        first_read = f"max(CASE WHEN {alias}.n__ = 1 THEN {self.cursor(alias, entity)} END)"
        last = f"least({alias}.c__, {first})"
        last_read = f"max(CASE WHEN {alias}.n__ = {last} THEN {self.cursor(alias, entity)} END)"
        written_as = {
            "hasNextPage": behind if is_backward else beyond,
            "hasPreviousPage": beyond if is_backward else behind,
            "startCursor": last_read if is_backward else first_read,
            "endCursor": first_read if is_backward else last_read,
        }
        parts = []
        for key, part in window.page_info:
            if isinstance(part, p.Constant):
                written = f"{_literal(part.value)}::text"
            elif part in written_as:
                written = written_as[part]
            else:
                raise ValueError(f"no page info part {part!r}")
            parts.append(f"{_literal(key)}, {written}")
        return f"json_build_object({', '.join(parts)})"

    # --------------------------------------------------------------------- roots

    def root(self, root: p.Root) -> str:
        link = SOURCES[root.source]
        slot = ""
        if root.slot is not None:
            index = root.slot
            slot = self.param(lambda slots, _: slots[index], "uuid")
        if isinstance(root.value, p.Window):
            return self.window(link, "", root.value)
        if root.source in LIST_SOURCES:
            return self.many(link, "", root.value)
        return self.one(link, "", root.value, True, slot, _NOT_FOUND_JSON)

    def statement(self, projection: p.Projection) -> str:
        parts = []
        for key, root in projection.roots:
            written = (
                f"{_literal(root.value)}::text" if isinstance(root, p.Constant) else self.root(root)
            )
            parts.append(f"{_literal(key)}, {written}")
        return f"SELECT json_build_object({', '.join(parts)})::text"


def _page(slots: Sequence[p.SlotValue], slot: int) -> p.PageArguments:
    value = slots[slot]
    assert isinstance(value, p.PageArguments)
    return value


def _keyset_getter(slot: int, name: str, part: str) -> Getter:
    """A part of the request's `after` or `until` keyset (set whenever the shape says so)."""

    def get(slots: Sequence[p.SlotValue], _: Principal) -> object:
        keyset = getattr(_page(slots, slot).request, name)
        assert keyset is not None
        return getattr(keyset, part)

    return get


def _filter_getter(slot: int, n: int, convert: Callable[[object], object]) -> Getter:
    return lambda slots, _: convert(_page(slots, slot).filters[n][1])


def shape_of(slots: Sequence[p.SlotValue]) -> Shape:
    shape: list[SlotShape | None] = []
    for value in slots:
        if isinstance(value, p.PageArguments):
            filters = tuple((name, FILTERS[name].is_set(v)) for name, v in value.filters)
            request = value.request
            shape.append(
                (
                    request.after is not None,
                    request.descending,
                    request.until is not None,
                    request.is_backward,
                    filters,
                )
            )
        else:
            shape.append(None)
    return tuple(shape)


@dataclass(frozen=True)
class Rendered:
    sql: str
    getters: tuple[Getter, ...]


# By id() of the projection, which the compiled plan holding it keeps alive; the entry keeps
# the projection too, so an id is never reused while its entry lives.
_rendered: dict[tuple[int, bool, Shape], tuple[p.Projection, Rendered]] = {}
MAX_RENDERED = 2048


def rendered(projection: p.Projection, is_admin: bool, shape: Shape) -> Rendered:
    key = (id(projection), is_admin, shape)
    entry = _rendered.get(key)
    if entry is not None and entry[0] is projection:
        return entry[1]
    renderer = _Renderer(is_admin, shape)
    sql = renderer.statement(projection)
    result = Rendered(sql, tuple(renderer.getters))
    if len(_rendered) >= MAX_RENDERED:
        _rendered.clear()
    _rendered[key] = (projection, result)
    return result


class SqlProjectionReader:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def read(
        self, principal: Principal, projection: p.Projection, slots: Sequence[p.SlotValue]
    ) -> str:
        for _, root in projection.roots:
            if isinstance(root, p.Root) and root.source in SOURCE_RULES:
                # Forbidden, as the service says it; the statement then need not filter.
                owner_attribute(SOURCE_RULES[root.source], is_admin=principal.is_admin)
        statement = rendered(projection, principal.is_admin, shape_of(slots))
        arguments = [get(slots, principal) for get in statement.getters]
        text = await fetch_text(self._conn, statement.sql, arguments)
        if ANOMALY in text:
            raise p.Anomaly()
        if NOT_FOUND in text:
            raise NotFound("object", "named by a root field")  # the reference says which
        return text
