"""Differential testing of the compiled execution path against the reference executor.

Two apps over one database, identical but for `compiled_execution`, answer the same request
bytes; their response bodies must be byte-identical. This module holds what the test module
needs besides the tests: the seed data (deterministic ids and timestamps), the apps with a
frozen clock, the request exchange, the execution-path counter, and the corpus of query
documents found in the test suite, with variables supplied by name and type.
"""

from __future__ import annotations

import ast
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import graphql
import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from domain.pagination import Keyset
from graph.ids import to_cursor, to_global_id
from graph.schema.record import schema
from integrations.blobs.local import LocalBlobStore
from persistence import tables
from server import bootstrap
from server.settings import Settings
from telemetry import metrics
from tests.integration.bootstrapped import variant

JSONDict = dict[str, Any]

# ------------------------------------------------------------------ the frozen clock

# Both apps read this instant wherever they would read the clock: the local blob store signs
# download URLs with an expiry of clock + TTL, and the services' clock stamps writes.
FROZEN_NOW: Final = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def frozen_utc_now() -> datetime:
    return FROZEN_NOW


def frozen_time() -> float:
    return FROZEN_NOW.timestamp()


def differential_settings(settings: Settings, *, compiled: bool) -> Settings:
    """The session's settings (same data directory: same token issuer and blob signing key),
    with a rate limit no corpus can exhaust (a RATE_LIMITED answer carries a time-dependent
    retryAfterSeconds, which would differ between the apps) and the benchmark's cost limit."""
    return variant(
        settings,
        compiled_execution=compiled,
        rate_limit_burst=1e12,
        rate_limit_points_per_second=1e12,
        # As the benchmark runs (bench/run.py): W1 weighs 25,400 points, over the default 10,000.
        max_query_cost=1_000_000,
    )


def build_frozen_app(settings: Settings, postgres_url: str) -> Starlette:
    """server.bootstrap.build_app's app, with the clocks it wires in frozen at FROZEN_NOW.

    build_app offers no clock parameter: it passes `utc_now` to the services and builds the
    LocalBlobStore with its default clock (time.time, bound when the class was defined, so
    patching time.time would not reach it). Both names are looked up in server.bootstrap
    while build_app runs, so they are replaced for the duration of the build only.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bootstrap, "utc_now", frozen_utc_now)
        patch.setattr(bootstrap, "LocalBlobStore", partial(LocalBlobStore, clock=frozen_time))
        return bootstrap.build_app(settings, postgres_url)


async def running(app: Starlette) -> AsyncIterator[Starlette]:
    """The app with its lifespan running (ASGITransport sends no lifespan events)."""
    async with app.router.lifespan_context(app):
        yield app


# ------------------------------------------------------------------ seed data

_NAMESPACE: Final = uuid.UUID("6f1d8a52-3c1b-4d59-9a57-2b8f2f7e0c11")
BASE_TIME: Final = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)


def uid(name: str) -> UUID:
    """A deterministic id, so the ids, cursors and bodies are the same on every run."""
    return uuid.uuid5(_NAMESPACE, name)


def at(seconds: float) -> datetime:
    return BASE_TIME + timedelta(seconds=seconds)


ADMIN_EMAIL: Final = "ada.admin@example.com"
OWNER_EMAIL: Final = "alice@example.com"
OTHER_EMAIL: Final = "bob@example.com"
EMPTY_EMAIL: Final = "carol@example.com"
DEACTIVATED_EMAIL: Final = "dave@example.com"

ADMIN, OWNER, OTHER, EMPTY, DEACTIVATED = (
    uid(f"user:{e}")
    for e in (ADMIN_EMAIL, OWNER_EMAIL, OTHER_EMAIL, EMPTY_EMAIL, DEACTIVATED_EMAIL)
)
IRIS, DIGITS, LEGACY = uid("model:iris"), uid("model:digits"), uid("model:legacy")

OWNER_SUBMISSION_COUNT: Final = 23  # more than the default page of 20
# The owner's submissions cycle through these statuses (index i % 7).
_OWNER_STATUSES: Final = (
    "SUCCEEDED",
    "FAILED",
    "SUCCEEDED",
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "CANCELLED",
)
OWNER_SUBMISSIONS: Final = tuple(
    uid(f"submission:alice:{i}") for i in range(OWNER_SUBMISSION_COUNT)
)
OTHER_SUBMISSIONS: Final = tuple(uid(f"submission:bob:{i}") for i in range(3))
ADMIN_SUBMISSIONS: Final = tuple(uid(f"submission:ada:{i}") for i in range(2))
DEACTIVATED_SUBMISSION: Final = uid("submission:dave:0")

# The owner's assets: two AVAILABLE (one with a non-ASCII, spaced file name), one pending, one
# deleted; the other user's: one AVAILABLE, one pending; the administrator's: one AVAILABLE.
OWNER_PHOTO, OWNER_REPORT, OWNER_PENDING, OWNER_DELETED = (
    uid(f"asset:alice:{n}") for n in ("photo", "report", "pending", "deleted")
)
OTHER_PHOTO, OTHER_PENDING = uid("asset:bob:photo"), uid("asset:bob:pending")
ADMIN_SCAN = uid("asset:ada:scan")

ENDPOINT: Final = uid("webhook:alice")
DELIVERIES: Final = (uid("delivery:alice:0"), uid("delivery:alice:1"))


def owner_status(i: int) -> str:
    return _OWNER_STATUSES[i % len(_OWNER_STATUSES)]


def owner_result_ids(i: int) -> list[UUID]:
    """The results of the owner's i-th submission: none unless SUCCEEDED, else one or two."""
    if owner_status(i) != "SUCCEEDED":
        return []
    return [uid(f"result:alice:{i}:{j}") for j in range(1 + i % 2)]


def owner_asset_ids(i: int) -> list[UUID]:
    """Zero, one or two assets per submission, in every status among them."""
    return [[], [OWNER_PHOTO], [OWNER_REPORT, OWNER_PENDING], [OWNER_DELETED]][i % 4]


# Confidences that stress float formatting; None means a result without a confidence.
_CONFIDENCES: Final = (0.9, None, 0.1 + 0.2, 1.0, None, 1e-7, 0.0, 0.5)


def _result_row(ident: UUID, submission: UUID, n: int, created_at: datetime) -> JSONDict:
    confidence = _CONFIDENCES[n % len(_CONFIDENCES)]
    label = ("setosa", "versicolor", "virginica")[n % 3]
    alternatives: list[JSONDict] = (
        []
        if confidence is None
        else [
            {"value": label, "confidence": confidence},
            {"value": {"nested": [1, 2.5, None, "ünï"]}, "confidence": 0.05},
        ]
    )
    prediction: Any = (
        {"label": label, "scores": [0.25, 0.5, 0.25]} if n % 2 else [label, n, {"ok": True}]
    )
    return {
        "id": ident,
        "submission_id": submission,
        "prediction": prediction,
        "confidence": confidence,
        "alternatives": alternatives,
        "model_version": "1.0.0" if n % 2 else "2.1.0-rc.1",
        "processing_time_ms": 3 * n,
        "created_at": created_at,
    }


def _input(i: int) -> Any:
    if i % 5 == 4:
        return {"text": 'héllo \u2028 "quoted" \\ 🌱', "list": [1, None, True, 2.5], "empty": {}}
    return {
        "sepal_length_cm": 5.1 + i / 10,
        "sepal_width_cm": 3.5,
        "petal_length_cm": 1.4,
        "petal_width_cm": 0.2 * i,
    }


def _user(email: str, n: int, **values: Any) -> JSONDict:
    created = at(n) if n % 2 else at(n) + timedelta(microseconds=123_456)
    return {
        "id": uid(f"user:{email}"),
        "subject": f"sub-{email}",  # what the `token` fixture puts in its tokens
        "email": email,
        "name": values.get("name", email.split("@")[0]),
        "language": values.get("language", "en"),
        "is_active": values.get("is_active", True),
        "groups": values.get("groups", []),
        "created_at": created,
        "updated_at": created + timedelta(minutes=5),
    }


def _submission(
    ident: UUID, owner: UUID, model: UUID, status: str, created_at: datetime, n: int
) -> JSONDict:
    return {
        "id": ident,
        "owner_id": owner,
        "model_id": model,
        "input": _input(n),
        "status": status,
        "error": f"model raised ValueError: bad input «{n}»" if status == "FAILED" else None,
        "attempts": {"FAILED": 3, "RUNNING": 1, "SUCCEEDED": 1}.get(status, 0),
        "created_at": created_at,
        "updated_at": created_at + timedelta(seconds=2),
        "metadata": submission_metadata(n),
    }


def submission_metadata(n: int) -> list[JSONDict]:
    """Every third submission has labels, sorted by key as the API stores them."""
    if n % 3:
        return []
    return [{"key": "order", "value": f"o-{n % 2}"}, {"key": "team", "value": "red «ü»"}]


def _asset(ident: UUID, owner: UUID, name: str, status: str, n: int, **values: Any) -> JSONDict:
    created = at(100 + n)
    return {
        "id": ident,
        "owner_id": owner,
        "file_name": name,
        "content_type": values.pop("content_type", "image/png"),
        "size_bytes": 1024 * (n + 1),
        "status": status,
        "object_key": f"assets/{owner}/{ident}/{name}",
        "upload_expires_at": FROZEN_NOW + timedelta(minutes=15)
        if status == "PENDING_UPLOAD"
        else None,
        "created_at": created,
        "updated_at": created + timedelta(seconds=30),
    }


def seed_rows() -> dict[sa.Table, list[JSONDict]]:
    """Every row of the differential data set, table by table, in insertion order."""
    rows: dict[sa.Table, list[JSONDict]] = {
        t: []
        for t in (
            tables.users,
            tables.models,
            tables.assets,
            tables.submissions,
            tables.submission_assets,
            tables.results,
            tables.webhook_endpoints,
            tables.events,
            tables.webhook_deliveries,
        )
    }
    rows[tables.users] = [
        _user(ADMIN_EMAIL, 0, name="Ada Admin", groups=["admin"]),
        _user(OWNER_EMAIL, 1, language="fr"),
        _user(OTHER_EMAIL, 2),
        _user(EMPTY_EMAIL, 3, name="Carol Ünicode"),
        _user(DEACTIVATED_EMAIL, 4, is_active=False),
    ]
    schema_in = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}
    rows[tables.models] = [
        {"id": IRIS, "name": "iris", "version": "1.0.0", "description": "Iris species"}
        | {"input_schema": schema_in, "output_schema": {"type": "object"}, "created_at": at(10)},
        {"id": DIGITS, "name": "digits", "version": "2.1.0-rc.1", "description": ""}
        | {"input_schema": {}, "output_schema": {"enum": [0, 1, 2]}, "created_at": at(11)},
        {"id": LEGACY, "name": "legacy", "version": "0.1.0", "description": "retired"}
        | {"input_schema": {}, "output_schema": {}, "created_at": at(12), "is_active": False},
    ]
    for row in rows[tables.models]:
        row.setdefault("is_active", True)
        row |= {"runtime": "local", "updated_at": row["created_at"]}
    rows[tables.assets] = [
        _asset(OWNER_PHOTO, OWNER, "photo.png", "AVAILABLE", 0),
        _asset(OWNER_REPORT, OWNER, "résumé final.pdf", "AVAILABLE", 1, content_type="a/pdf"),
        _asset(OWNER_PENDING, OWNER, "pending.bin", "PENDING_UPLOAD", 2),
        _asset(OWNER_DELETED, OWNER, "old.png", "DELETED", 3),
        _asset(OTHER_PHOTO, OTHER, "bob.png", "AVAILABLE", 4),
        _asset(OTHER_PENDING, OTHER, "bob.bin", "PENDING_UPLOAD", 5),
        _asset(ADMIN_SCAN, ADMIN, "scan.tiff", "AVAILABLE", 6),
    ]
    for i, ident in enumerate(OWNER_SUBMISSIONS):
        created = at(1000 + 60 * i) + timedelta(microseconds=(i % 2) * 654_321)
        model = IRIS if i % 2 == 0 else DIGITS
        rows[tables.submissions].append(
            _submission(ident, OWNER, model, owner_status(i), created, i)
        )
        for position, asset in enumerate(owner_asset_ids(i)):
            rows[tables.submission_assets].append(
                {"submission_id": ident, "asset_id": asset, "position": position}
            )
        for j, result in enumerate(owner_result_ids(i)):
            rows[tables.results].append(
                _result_row(result, ident, i + j, created + timedelta(seconds=5 + j))
            )
    others = [
        (OTHER_SUBMISSIONS[0], OTHER, IRIS, "SUCCEEDED"),
        (OTHER_SUBMISSIONS[1], OTHER, IRIS, "FAILED"),
        (OTHER_SUBMISSIONS[2], OTHER, DIGITS, "PENDING"),
        (ADMIN_SUBMISSIONS[0], ADMIN, DIGITS, "SUCCEEDED"),
        (ADMIN_SUBMISSIONS[1], ADMIN, IRIS, "PENDING"),
        (DEACTIVATED_SUBMISSION, DEACTIVATED, IRIS, "SUCCEEDED"),
    ]
    for n, (ident, owner, model, status) in enumerate(others):
        created = at(3000 + 60 * n)
        rows[tables.submissions].append(_submission(ident, owner, model, status, created, n))
        if status == "SUCCEEDED":
            result = uid(f"result:{ident}")
            rows[tables.results].append(
                _result_row(result, ident, n, created + timedelta(seconds=1))
            )
    rows[tables.submission_assets].append(
        {"submission_id": OTHER_SUBMISSIONS[0], "asset_id": OTHER_PHOTO, "position": 0}
    )
    rows[tables.webhook_endpoints] = [
        {"id": ENDPOINT, "owner_id": OWNER, "url": "https://hooks.example.com/assay?x=1"}
        | {"events": ["SUBMISSION_SUCCEEDED", "RESULT_CREATED"], "description": "ci hook"}
        | {"secret": "whsec_c2VjcmV0", "created_at": at(50), "updated_at": at(50)}
    ]
    for n, ident in enumerate(DELIVERIES):
        rows[tables.events].append(
            {"id": n + 1, "type": "SUBMISSION_SUCCEEDED", "owner_id": OWNER}
            | {"subject_id": OWNER_SUBMISSIONS[0], "payload": {"n": n}, "created_at": at(60 + n)}
        )
        rows[tables.webhook_deliveries].append(
            {"id": ident, "endpoint_id": ENDPOINT, "event_id": n + 1}
            | {"event_type": "SUBMISSION_SUCCEEDED", "payload": {"submission": {"n": n}}}
            | {"status": ("FAILED", "SUCCEEDED")[n], "attempts": 2 - n}
            | {"last_status_code": (502, 204)[n], "last_error": ("bad gateway", None)[n]}
            | {"next_attempt_at": (FROZEN_NOW + timedelta(minutes=5), None)[n]}
            | {"created_at": at(60 + n), "updated_at": at(61 + n)}
        )
    return rows


async def seed(engine: AsyncEngine) -> None:
    """Empty the database, then insert the data set in one transaction."""
    names = ", ".join(table.name for table in tables.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        for table, table_rows in seed_rows().items():
            if table_rows:
                await conn.execute(sa.insert(table), table_rows)


def created_at_of(table: sa.Table, ident: UUID) -> datetime:
    for row in seed_rows()[table]:
        if row["id"] == ident:
            created: datetime = row["created_at"]
            return created
    raise KeyError(ident)


def cursor_of(table: sa.Table, ident: UUID, kind: str = "Submission") -> str:
    """The cursor the API gives the row in a list of `kind`: its keyset, as graph.ids
    encodes it."""
    return to_cursor(Keyset(created_at_of(table, ident), ident), kind)


def gid(type_name: str, ident: UUID) -> str:
    return to_global_id(type_name, ident)


# Ids and cursors as the API spells them.
MALFORMED_ID: Final = "not-an-assay-id"
MISSING: Final = {
    t: gid(t, uid(f"missing:{t}")) for t in ("User", "Asset", "Submission", "Result", "Model")
}
OWNER_CURSOR: Final = cursor_of(tables.submissions, OWNER_SUBMISSIONS[2])
MALFORMED_CURSOR: Final = "bm90LWEtY3Vyc29y"  # base64 of "not-a-cursor"
NAIVE_CURSOR: Final = to_cursor(Keyset(BASE_TIME.replace(tzinfo=None), OWNER), "Submission")

# Ids per node type: the owner's, the other user's, the administrator's.
IDS: Final[Mapping[str, tuple[str, ...]]] = {
    "User": (gid("User", OWNER), gid("User", OTHER), gid("User", ADMIN)),
    "Asset": (gid("Asset", OWNER_PHOTO), gid("Asset", OTHER_PHOTO), gid("Asset", ADMIN_SCAN)),
    "Submission": (
        gid("Submission", OWNER_SUBMISSIONS[0]),
        gid("Submission", OTHER_SUBMISSIONS[0]),
        gid("Submission", ADMIN_SUBMISSIONS[0]),
    ),
    "Result": (
        gid("Result", owner_result_ids(0)[0]),
        gid("Result", uid(f"result:{OTHER_SUBMISSIONS[0]}")),
        gid("Result", uid(f"result:{ADMIN_SUBMISSIONS[0]}")),
    ),
    "Model": (gid("Model", IRIS), gid("Model", DIGITS), gid("Model", LEGACY)),
}

# ------------------------------------------------------------------ principals

ADMIN_P, OWNER_P, OTHER_P, EMPTY_P, DEACTIVATED_P, ANONYMOUS_P = (
    "admin",
    "owner",
    "other",
    "empty",
    "deactivated",
    "anonymous",
)
PRINCIPAL_EMAILS: Final[Mapping[str, tuple[str, tuple[str, ...]]]] = {
    ADMIN_P: (ADMIN_EMAIL, ("admin",)),
    OWNER_P: (OWNER_EMAIL, ()),
    OTHER_P: (OTHER_EMAIL, ()),
    EMPTY_P: (EMPTY_EMAIL, ()),
    DEACTIVATED_P: (DEACTIVATED_EMAIL, ()),
}

# ------------------------------------------------------------------ the execution-path counter


def execution_counts() -> Counter[tuple[str, str]]:
    """assay_graphql_execution_total by (path, reason), as the process counts them now."""
    counts: Counter[tuple[str, str]] = Counter()
    for family in metrics.EXECUTION_PATH.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                counts[(sample.labels["path"], sample.labels["reason"])] += int(sample.value)
    return counts


def lane_answered() -> float:
    """Requests the fast lane answered so far (graph/transport/fast_lane.py)."""
    value = metrics.REGISTRY.get_sample_value(
        "assay_graphql_fast_lane_total", {"outcome": "answered"}
    )
    return value or 0.0


def statement_plans() -> float:
    """Query operations answered by one SQL statement so far (graph/execution/projection.py)."""
    value = metrics.REGISTRY.get_sample_value(
        "assay_graphql_compiled_plan_total", {"plan": "statement"}
    )
    return value or 0.0


def compiled_count() -> float:
    """Query operations answered by a compiled plan so far (None, before any, counts as 0)."""
    value = metrics.REGISTRY.get_sample_value(
        "assay_graphql_execution_total", {"path": "compiled", "reason": ""}
    )
    return value or 0.0


# ------------------------------------------------------------------ the exchange


@dataclass(frozen=True)
class Request:
    query: str
    variables: JSONDict | None = None
    operation_name: str | None = None
    accept: str | None = None

    def body(self) -> bytes:
        payload: JSONDict = {"query": self.query}
        if self.variables is not None:
            payload["variables"] = self.variables
        if self.operation_name is not None:
            payload["operationName"] = self.operation_name
        return orjson.dumps(payload)


# The reference executor itself is not deterministic in one respect: sibling fields resolve
# concurrently, and graphql-core lists their errors in the order they are raised, which
# depends on database timing. When the bodies differ, the reference app is asked again, up to
# this many times: the compiled answer passes only if it is byte for byte one of the answers
# the reference path gives. No byte of either body is ever rewritten.
REFERENCE_RETRIES: Final = 30


def _same(one: httpx.Response, other: httpx.Response) -> bool:
    return one.status_code == other.status_code and one.content == other.content


@dataclass(frozen=True)
class Exchange:
    """One request answered by both apps, and the execution paths the compiled app counted."""

    label: str
    principal: str
    request: Request
    compiled: httpx.Response
    reference: httpx.Response  # the reference answer equal to the compiled one, if any
    paths: Counter[tuple[str, str]]
    reference_paths: Counter[tuple[str, str]]
    reference_attempts: int = 1
    by_fast_lane: bool = False  # the compiled app answered below Strawberry's view

    @property
    def identical(self) -> bool:
        return _same(self.compiled, self.reference)

    @property
    def ran_compiled(self) -> bool:
        return self.paths == Counter({("compiled", ""): 1})

    def describe(self) -> str:
        return (
            f"--- {self.label}\n"
            f"request: {self.request.body().decode()}\n"
            f"compiled  ({self.compiled.status_code}, paths {dict(self.paths)}): "
            f"{_clip(self.compiled.content)}\n"
            f"reference ({self.reference.status_code}, {self.reference_attempts} attempts): "
            f"{_clip(self.reference.content)}"
        )


def _clip(content: bytes, limit: int = 1500) -> str:
    text = content.decode("utf-8", "replace")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


@dataclass
class Pair:
    """Clients of the compiled app and of the reference app, and the principals' tokens."""

    compiled: httpx.AsyncClient
    reference: httpx.AsyncClient
    bearers: Mapping[str, str | None]

    def _headers(self, principal: str, accept: str | None) -> dict[str, str]:
        # A fixed request id: error extensions carry it (requestId).
        headers = {"Content-Type": "application/json", "X-Request-ID": "differential"}
        if accept is not None:
            headers["Accept"] = accept
        if (bearer := self.bearers[principal]) is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return headers

    async def exchange(self, request: Request, principal: str, label: str = "") -> Exchange:
        """Send the same bytes to the compiled app, then to the reference app."""
        body, headers = request.body(), self._headers(principal, request.accept)
        before, lane = execution_counts(), lane_answered()
        compiled = await self.compiled.post("/graphql", content=body, headers=headers)
        between = execution_counts()
        by_fast_lane = lane_answered() > lane
        reference = first = await self.reference.post("/graphql", content=body, headers=headers)
        attempts = 1
        while not _same(compiled, reference) and attempts <= REFERENCE_RETRIES:
            reference = await self.reference.post("/graphql", content=body, headers=headers)
            attempts += 1
        return Exchange(
            label=f"{label} as {principal}",
            principal=principal,
            request=request,
            compiled=compiled,
            reference=reference if _same(compiled, reference) else first,
            paths=between - before,
            reference_paths=execution_counts() - between,
            reference_attempts=attempts,
            by_fast_lane=by_fast_lane,
        )


def mismatches(exchanges: Sequence[Exchange]) -> str:
    """A report of every exchange whose bodies or status codes differ ('' when none)."""
    different = [e for e in exchanges if not e.identical]
    if not different:
        return ""
    return f"{len(different)} of {len(exchanges)} responses differ:\n" + "\n".join(
        e.describe() for e in different
    )


def fallback_report(exchanges: Sequence[Exchange]) -> str:
    reasons: Counter[str] = Counter()
    for exchange in exchanges:
        for (path, reason), n in exchange.paths.items():
            if path != "compiled":
                reasons[f"{path}: {reason or '?'}"] += n
    compiled = sum(e.paths[("compiled", "")] for e in exchanges)
    lines = [f"{n:4d}  {reason}" for reason, n in reasons.most_common()]
    return f"compiled {compiled} of {len(exchanges)}; fallbacks by reason:\n" + "\n".join(lines)


# ------------------------------------------------------------------ the test suite's documents

OMIT: Final = object()  # leave the variable out: its default (or null) applies


@dataclass(frozen=True)
class SuiteDocument:
    """A query document written somewhere in the test suite, and its query operations."""

    source: str
    query: str
    operations: tuple[str | None, ...]


def _string_constants(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _query_operations(text: str) -> tuple[str | None, ...] | None:
    """The query operations to run, or None when the text is no valid document with a query."""
    try:
        document = graphql.parse(text)
    except graphql.GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]
    queries = [o for o in operations if o.operation is graphql.OperationType.QUERY]
    if not queries or graphql.validate(schema._schema, document):
        return None
    if len(operations) == 1:
        return (None,)
    return tuple(o.name.value for o in queries if o.name is not None)


def suite_documents(root: Path, exclude: Sequence[Path] = ()) -> list[SuiteDocument]:
    """Every distinct string constant under root that is a valid document with a query."""
    found: dict[str, SuiteDocument] = {}
    excluded = {p.resolve() for p in exclude}
    for path in sorted(root.rglob("*.py")):
        if path.resolve() in excluded:
            continue
        for line, text in _string_constants(path):
            if text in found or "{" not in text:
                continue
            operations = _query_operations(text)
            if operations:
                source = f"{path.relative_to(root).as_posix()}:{line}"
                found[text] = SuiteDocument(source, text, operations)
    return list(found.values())


class _VariableUses(graphql.Visitor):
    """For each variable, the name of the first field whose argument it is (or None)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[str] = []
        self.uses: dict[str, str | None] = {}

    def enter_field(self, node: graphql.FieldNode, *_: object) -> None:
        self.fields.append(node.name.value)

    def leave_field(self, node: graphql.FieldNode, *_: object) -> None:
        self.fields.pop()

    def enter_variable(self, node: graphql.VariableNode, *_: object) -> None:
        self.uses.setdefault(node.name.value, self.fields[-1] if self.fields else None)


_ID_TYPES: Final = {
    "user": "User",
    "asset": "Asset",
    "submission": "Submission",
    "result": "Result",
    "model": "Model",
}


def _ids_for(field_name: str | None) -> list[Any]:
    type_name = _ID_TYPES.get(field_name or "")
    if type_name is None:  # node, or a field the pools do not know: one of each type
        return [IDS["Submission"][0], IDS["Asset"][1], IDS["User"][0], MISSING["Result"]]
    return [IDS[type_name][0], IDS[type_name][1], MISSING[type_name], MALFORMED_ID]


def _candidates(name: str, type_node: graphql.TypeNode, field_name: str | None) -> list[Any] | None:
    """Values to try for one variable, the first being the base; None if none can be made."""
    required = isinstance(type_node, graphql.NonNullTypeNode)
    inner = type_node.type if isinstance(type_node, graphql.NonNullTypeNode) else type_node
    optional: list[Any] = [] if required else [OMIT]
    if isinstance(inner, graphql.ListTypeNode):
        item = inner.type.type if isinstance(inner.type, graphql.NonNullTypeNode) else inner.type
        if isinstance(item, graphql.NamedTypeNode) and item.name.value == "ID":
            mixed = [*IDS["Submission"][:2], IDS["Asset"][0], IDS["User"][1], MISSING["Asset"]]
            return [mixed, [], [IDS["Result"][0], MALFORMED_ID]]
        return None
    assert isinstance(inner, graphql.NamedTypeNode)
    type_name = inner.name.value
    values: list[Any] | None
    if type_name == "ID":
        values = _ids_for(field_name)
    elif type_name == "Int":
        values = [*optional, 2, 1, 3, 0, 101] if required else [OMIT, 1, 3, 0, 101]
    elif type_name == "String" and name == "after":
        values = [OMIT, OWNER_CURSOR, MALFORMED_CURSOR, NAIVE_CURSOR]
    elif type_name == "String" and field_name == "__type":
        values = ["Submission", "NoSuchType"]
    elif type_name == "String":
        values = ["ali", ""]
    elif type_name == "Boolean":
        values = [True, False]
    elif type_name == "SubmissionStatus":
        values = [*optional, "FAILED", "SUCCEEDED", "PENDING"]
    elif type_name == "AssetStatus":
        values = [*optional, "AVAILABLE", "DELETED", "PENDING_UPLOAD"]
    elif type_name == "UserFilter":
        values = [*optional, {"isActive": False}, {"emailContains": "ali", "isActive": True}]
    else:
        return None
    return values if not required else [v for v in values if v is not OMIT]


def variable_sets(document: str, operation_name: str | None) -> list[JSONDict] | None:
    """A base assignment of the operation's variables, then each variable varied alone;
    None when some variable's value cannot be supplied."""
    parsed = graphql.parse(document)
    operation = graphql.get_operation_ast(parsed, operation_name)
    assert operation is not None
    uses = _VariableUses()
    graphql.visit(parsed, uses)
    pools: dict[str, list[Any]] = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        pool = _candidates(name, definition.type, uses.uses.get(name))
        if pool is None:
            return None
        pools[name] = pool
    base = {name: pool[0] for name, pool in pools.items()}
    sets = [base]
    for name, pool in pools.items():
        sets.extend({**base, name: value} for value in pool[1:])
    return [{k: v for k, v in s.items() if v is not OMIT} for s in sets]


# ------------------------------------------------------------------ every reachable field


@dataclass(frozen=True)
class FieldDocument:
    """A query that reaches one field of one type by the shortest path from Query."""

    coordinate: str  # Type.field
    query: str


def _leaf(type_: graphql.GraphQLOutputType) -> str:
    named = graphql.get_named_type(type_)
    return "" if graphql.is_leaf_type(named) else " { __typename }"


def _arguments(field: graphql.GraphQLField, prefix: str, declared: dict[str, str]) -> str:
    """The field's required arguments as variables (declared into `declared`)."""
    passed = []
    for name, argument in field.args.items():
        if graphql.is_non_null_type(argument.type) and argument.default_value is graphql.Undefined:
            variable = f"{prefix}_{name}"
            declared[variable] = str(argument.type)
            passed.append(f"{name}: ${variable}")
    return f"({', '.join(passed)})" if passed else ""


def every_field_documents(schema_: graphql.GraphQLSchema) -> list[FieldDocument]:
    """One document per field of every object type reachable from Query (introspection and
    the Relay `node` interfaces aside), each reached by the shortest path: the corpus that
    walks every field an executor could be asked for."""
    query_type = schema_.query_type
    assert query_type is not None
    # type name -> the path to it: (field name, field) pairs from Query
    paths: dict[str, list[tuple[str, graphql.GraphQLField]]] = {query_type.name: []}
    queue = [query_type]
    documents = []
    while queue:
        parent = queue.pop(0)
        for name, field in parent.fields.items():
            if name.startswith("__"):
                continue
            steps = [*paths[parent.name], (name, field)]
            declared: dict[str, str] = {}
            selection = _leaf(field.type)
            for n, (step, step_field) in reversed(list(enumerate(steps))):
                selection = f"{step}{_arguments(step_field, f'v{n}', declared)}{selection}"
                if n:
                    selection = f" {{ {selection} }}"
            header = ", ".join(f"${v}: {t}" for v, t in declared.items())
            query = f"query{f'({header})' if header else ''} {{ {selection} }}"
            documents.append(FieldDocument(f"{parent.name}.{name}", query))
            named = graphql.get_named_type(field.type)
            if isinstance(named, graphql.GraphQLObjectType) and named.name not in paths:
                paths[named.name] = steps
                queue.append(named)
    return documents
