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
below, from declarations and from GraphQL names (each checked to be a name); no value from a
request ever enters it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import projections as p
from domain.access import ENTITY_RULES, owner_attribute
from domain.errors import NotFound
from domain.ids import CURSOR_KINDS
from domain.principal import Principal
from domain.submissions import MetadataEntry
from persistence import tables
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
    """Where an entity's rows are: its table, and attributes computed in SQL over {t}."""

    table: sa.Table
    computed: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.table.name

    def column(self, alias: str, attribute: str) -> str:
        computed = self.computed.get(attribute)
        if computed is not None:
            return computed.format(t=alias)
        if attribute not in self.table.c:
            raise ValueError(f"{self.table.name} has no column {attribute!r}")
        return f"{alias}.{attribute}"

    def is_nullable(self, attribute: str) -> bool:
        return attribute in self.table.c and bool(self.table.c[attribute].nullable)

    def is_big(self, attribute: str) -> bool:
        """A bigint: range-checked when written as an Int."""
        return attribute in self.table.c and isinstance(self.table.c[attribute].type, sa.BigInteger)


# The domain's entities (domain/projections.py names them) and link entities, by table.
# Which rows a relation reads is declared with its field (graph/execution/declarations.py) and
# arrives here as a p.Join.
ENTITIES: Mapping[str, _Entity] = {
    "User": _Entity(tables.users),
    "Asset": _Entity(tables.assets),
    "Model": _Entity(tables.models),
    "Submission": _Entity(tables.submissions),
    "SubmissionAsset": _Entity(tables.submission_assets),
    "Result": _Entity(
        tables.results,
        computed={
            "owner_id": "(SELECT o.owner_id FROM submissions o WHERE o.id = {t}.submission_id)"
        },
    ),
}


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
    # ix_submissions_metadata holds only rows with metadata: its predicate, stated, lets the
    # planner use it (no row holding the pair fails it).
    "metadata": _Filter(
        "({c}.metadata @> {v}::jsonb AND {c}.metadata <> '[]'::jsonb)", "text", _metadata_json
    ),
    "is_active": _Filter("{c}.is_active = {v}", "boolean"),
    "email_contains": _Filter(
        "lower({c}.email) LIKE '%' || lower({v}) || '%' ESCAPE '/'",
        "text",
        _like_pattern,
        lambda value: bool(value),
    ),
}


# The parent row of a relation: its entity and alias (none for a root field).
_Parent = tuple[_Entity | None, str]
_NO_PARENT: _Parent = (None, "")


def _name(text: str) -> str:
    if not _NAME.match(text):
        raise ValueError(f"not a name: {text!r}")
    return text


def _match(column: str, match: p.Match) -> str:
    """A condition of a join, its value written into the text (from declarations alone)."""
    if match.value is None:
        return f"{column} IS {'NOT ' if match.negated else ''}NULL"
    if isinstance(match.value, bool):
        return f"{'NOT ' if match.value == match.negated else ''}{column}"
    return f"{column} {'<>' if match.negated else '='} {_literal(match.value)}"


def _literal(text: str) -> str:
    if not _NAME.match(text):
        raise ValueError(f"not a GraphQL name: {text!r}")
    return f"'{text}'"


def base64url_sql(text_sql: str) -> str:
    # encode() breaks lines every 76 characters; translate drops them with the padding. The
    # text is ASCII without backslashes (a type name, a UUID, a DateTime): ::bytea keeps it.
    return f"translate(encode(({text_sql})::bytea, 'base64'), E'+/=\\n', '-_')"


def moment_sql(expression: str) -> str:
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

    def _from(self, join: p.Join, alias: str) -> str:
        table = ENTITIES[join.entity].name
        if join.through is None:
            return f"{table} {alias}"
        link = ENTITIES[join.through.entity].name
        on = f"{alias}.{_name(join.key)} = {alias}_l.{_name(join.through.target)}"
        return f"{link} {alias}_l JOIN {table} {alias} ON {on}"

    def _where(self, join: p.Join, parent: _Parent, alias: str, slot: str = "") -> list[str]:
        conditions = []
        if join.value is not None:
            if isinstance(join.value, p.Parent):
                entity, parent_alias = parent
                assert entity is not None, "a relation's join reads a parent"
                value = entity.column(parent_alias, join.value.attribute)
            elif isinstance(join.value, p.Viewer):
                value = self.me()
            else:
                value = slot
            if join.through is not None:
                keyed = f"{alias}_l.{_name(join.through.key)}"
            else:
                keyed = ENTITIES[join.entity].column(alias, join.key)
            conditions.append(f"{keyed} = {value}")
        entity = ENTITIES[join.entity]
        conditions.extend(_match(entity.column(alias, m.attribute), m) for m in join.where)
        return [*conditions, *self._rule(join.entity, alias)] or ["TRUE"]  # every row

    def _order(self, join: p.Join, alias: str) -> str:
        if join.through is not None:
            return f"{alias}_l.{_name(join.through.position)}"
        entity = ENTITIES[join.entity]
        return ", ".join(
            entity.column(alias, sort.attribute) + (" DESC" if sort.descending else "")
            for sort in join.order
        )

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
            return base64url_sql(f"{_literal(value.type_name)} || ':' || {alias}.id::text")
        if isinstance(value, p.Cursor):
            return self.cursor(alias, name)
        if isinstance(value, p.Constant):
            return f"{_literal(value.value)}::text"
        parent = (entity, alias)
        if isinstance(value, p.One):
            return self.one(value.join, parent, value.shape, value.is_required)
        if isinstance(value, p.Many):
            return self.many(value.join, parent, value.shape)
        if isinstance(value, p.Nested):
            return self.nested(entity, alias, value)
        return self.window(value.join, parent, value)

    def cursor(self, alias: str, entity: str) -> str:
        kind = _literal(CURSOR_KINDS[entity])
        return base64url_sql(
            f"{kind} || '|' || {moment_sql(f'{alias}.created_at')} || '|' || {alias}.id::text"
        )

    def attribute(self, entity: _Entity, alias: str, attribute: p.Attribute) -> str:
        expression = entity.column(alias, attribute.name)
        anomalies: list[str] = []
        if attribute.is_required and entity.is_nullable(attribute.name):
            anomalies.append(f"{expression} IS NULL")
        if attribute.choices is not None:
            anomalies.append(f"{expression} NOT IN ({', '.join(map(_literal, attribute.choices))})")
        value = expression
        kind = attribute.kind
        if kind is p.Kind.INT and entity.is_big(attribute.name):
            anomalies.append(f"{expression} NOT BETWEEN -2147483648 AND 2147483647")
        elif kind is p.Kind.FLOAT:
            value = _float(f"{expression}::text")
        elif kind is p.Kind.MOMENT:
            value = moment_sql(expression)
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
        join: p.Join,
        parent: _Parent,
        shape: p.Shape,
        is_required: bool,
        slot: str = "",
        missing: str = _ANOMALY_JSON,
    ) -> str:
        alias = self.alias()
        where = " AND ".join(self._where(join, parent, alias, slot))
        # Found by another key than its id: the first row in the join's order.
        limit = "" if join.is_unique else f" ORDER BY {self._order(join, alias)} LIMIT 1"
        found = (
            f"(SELECT {self.object(shape, alias)} FROM {self._from(join, alias)} "
            f"WHERE {where}{limit})"
        )
        return f"coalesce({found}, {missing})" if is_required else found

    def many(self, join: p.Join, parent: _Parent, shape: p.Shape) -> str:
        # The rows come ordered from a subquery (an index scan, mostly) rather than through
        # json_agg(... ORDER BY), which sorts once per parent: a third of the time of W1.
        alias = self.alias()
        where = " AND ".join(self._where(join, parent, alias))
        rows = (
            f"SELECT {alias}.* FROM {self._from(join, alias)} WHERE {where} "
            f"ORDER BY {self._order(join, alias)}"
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

    def window(self, join: p.Join, parent: _Parent, window: p.Window) -> str:
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
                matching = self._where(join, parent, counted) + self._filters(window, counted)
                written = (
                    f"(SELECT count(*) FROM {self._from(join, counted)} "
                    f"WHERE {' AND '.join(matching)})"
                )
            elif part == "edges":
                # In the order the rows were read, or the other way for a page read backwards.
                order = f" ORDER BY {alias}.n__ DESC" if is_backward else ""
                written = (
                    f"coalesce(json_agg({self.edge(window, alias, join.entity)}{order}) "
                    f"FILTER (WHERE {alias}.n__ <= {first}), '[]'::json)"
                )
            else:
                written = self.page_info(window, alias, first, join.entity, shape)
            parts.append(f"{_literal(key)}, {written}")
        built = f"json_build_object({', '.join(parts)})"
        if not needs_rows:
            return built
        where = self._where(join, parent, alias) + self._filters(window, alias)
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
            f"SELECT {alias}.* FROM {self._from(join, alias)} WHERE {' AND '.join(where)} "
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
        slot = ""
        if root.slot is not None:
            index = root.slot
            slot = self.param(lambda slots, _: slots[index], "uuid")
        value = root.value
        if isinstance(value, p.Window):
            return self.window(value.join, _NO_PARENT, value)
        if isinstance(value, p.Many):
            return self.many(value.join, _NO_PARENT, value.shape)
        return self.one(value.join, _NO_PARENT, value.shape, True, slot, _NOT_FOUND_JSON)

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
            if isinstance(root, p.Root) and root.rule is not None:
                # Forbidden, as the service says it; the statement then need not filter.
                owner_attribute(root.rule, is_admin=principal.is_admin)
        statement = rendered(projection, principal.is_admin, shape_of(slots))
        arguments = [get(slots, principal) for get in statement.getters]
        text = await fetch_text(self._conn, statement.sql, arguments)
        if ANOMALY in text:
            raise p.Anomaly()
        if NOT_FOUND in text:
            raise NotFound("object", "named by a root field")  # the reference says which
        return text
