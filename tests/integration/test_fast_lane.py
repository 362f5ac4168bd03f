"""The fast lane: a known query text answered below Strawberry's view, exactly as the full
pipeline answers it, and everything it is not sure of handed to the pipeline, uncharged."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.applications import Starlette

from graph.ids import parse_id, to_global_id
from graph.protection.persisted import document_hash
from persistence.operations import SqlPersistedOperations
from persistence.unit_of_work import SqlUnitOfWork
from server.bootstrap import build_app
from server.logging import JsonFormatter
from server.settings import Settings
from telemetry import metrics
from tests.factories import make_model, make_result, make_submission, make_user
from tests.integration import lanes
from tests.integration.bootstrapped import BASE_URL, variant
from tests.integration.conftest import StatementCounter, TokenFactory, only_error

LOOKUP = """
query Lookup($id: ID!) {
  submission(id: $id) {
    __typename id status input
    ...Owner
    model { name version }
    mine: results { id prediction confidence }
  }
}
fragment Owner on Submission { owner { id email } }
"""
PAGE = """
query Page($first: Int) {
  viewer { submissions(first: $first) { totalCount edges { node { id } } } }
}
"""
COST = 13  # what graph.protection.limits.measure_operation weighs LOOKUP at


def fresh(document: str) -> str:
    """The document as a text the (module-wide) app has not seen: a comment makes it new."""
    return f"# {uuid.uuid4()}\n{document}"


async def _running(
    settings: Settings, postgres_url: str, counted: StatementCounter, **overrides: Any
) -> AsyncIterator[Starlette]:
    app = build_app(variant(settings, **overrides), postgres_url, on_statement=counted)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="module")
def counted() -> StatementCounter:
    return StatementCounter()


@pytest.fixture(scope="module")
async def lane_app(
    settings: Settings, postgres_url: str, counted: StatementCounter
) -> AsyncIterator[Starlette]:
    # A small cost limit and rate limit, to see the lane hand those refusals on; the rate is
    # slow enough that no bucket refills during a test.
    async for app in _running(
        settings,
        postgres_url,
        counted,
        max_query_cost=200,  # PAGE weighs 10 with first: 3, 301 with first: 100
        rate_limit_burst=4 * COST,
        rate_limit_points_per_second=0.001,
    ):
        yield app


@pytest.fixture
async def client(lane_app: Starlette, db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lane_app), base_url=BASE_URL
    ) as http:
        yield http


def path_counts() -> Counter[tuple[str, str]]:
    return Counter(
        {
            (sample.labels["path"], sample.labels["reason"]): int(sample.value)
            for family in metrics.EXECUTION_PATH.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        }
    )


async def post(
    client: httpx.AsyncClient,
    bearer: str | None,
    query: str | None,
    variables: dict[str, Any] | None = None,
    *,
    accept: str | None = None,
    **extra: Any,
) -> tuple[httpx.Response, Counter[str]]:
    """One POST; the response and what the fast lane counted meanwhile."""
    body = {"query": query, "variables": variables, **extra}
    return await lanes.post(client, bearer, body, accept)


def same(a: httpx.Response, b: httpx.Response) -> None:
    """The same status, headers (all of them, in order) and body bytes; of the RateLimit
    field, only its shape (what is left changes with every request)."""
    assert (a.status_code, _headers(a), a.content) == (b.status_code, _headers(b), b.content)
    assert a.headers["x-request-id"] == "lane"


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [
        (name, re.sub(r"=\d+", "=N", value) if name == "ratelimit" else value)
        for name, value in response.headers.multi_items()
    ]


async def owned_submission(db: AsyncEngine, client: httpx.AsyncClient, bearer: str) -> str:
    """A submission (with a result) owned by the bearer's user, signed in first."""
    response, _ = await post(client, bearer, "{ viewer { id } }")
    owner = parse_id(response.json()["data"]["viewer"]["id"], "User")
    assert owner is not None
    model = await make_model(db, name=f"model-{uuid.uuid4().hex[:8]}")
    submission = await make_submission(db, owner, model, status="SUCCEEDED")
    await make_result(db, submission)
    return to_global_id("Submission", submission)


@dataclass(frozen=True)
class Caller:
    bearer: str
    lookup: str  # a LOOKUP text the app has not seen
    variables: dict[str, Any]  # LOOKUP's variables: a submission of the caller's


@pytest.fixture
async def ann(client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory) -> Caller:
    bearer = token("ann@example.com")
    return Caller(bearer, fresh(LOOKUP), {"id": await owned_submission(db, client, bearer)})


@pytest.mark.parametrize("accept", [None, "application/graphql-response+json"])
async def test_a_known_text_is_answered_by_the_lane_as_the_pipeline_answers_it(
    client: httpx.AsyncClient,
    accept: str | None,
    ann: Caller,
) -> None:
    lookup, bearer, variables = ann.lookup, ann.bearer, ann.variables

    first, first_lane = await post(client, bearer, lookup, variables, accept=accept)
    second, second_lane = await post(client, bearer, lookup, variables, accept=accept)
    named, named_lane = await post(
        client, bearer, lookup, variables, accept=accept, operationName="Lookup"
    )

    assert first_lane == Counter({"unknown_document": 1})
    assert second_lane == named_lane == Counter({"answered": 1})
    assert first.json()["data"]["submission"]["mine"], first.json()
    same(first, second)
    same(first, named)


async def test_the_lane_adds_no_statement_and_logs_and_counts_like_the_pipeline(
    client: httpx.AsyncClient,
    counted: StatementCounter,
    caplog: pytest.LogCaptureFixture,
    ann: Caller,
) -> None:
    lookup, bearer, variables = ann.lookup, ann.bearer, ann.variables
    caplog.set_level(logging.INFO, logger="assay.request")
    requests = metrics.REQUESTS.labels("Lookup", "query", "ok")
    statements, before = [], requests._value.get()
    for _ in range(2):
        counted.count = 0
        caplog.clear()
        await post(client, bearer, lookup, variables)
        statements.append(counted.count)
        (record,) = [r for r in caplog.records if r.name == "assay.request"]
        entry = json.loads(JsonFormatter().format(record))
        assert (entry["operation_name"], entry["operation_type"], entry["cost"]) == (
            "Lookup",
            "query",
            COST,
        )
        assert entry["sql_statements"] == counted.count
        assert entry["principal_id"]
        assert entry["error_codes"] == []

    assert statements[0] == statements[1] == 2  # the sign-in read, then one for the operation
    assert requests._value.get() - before == 2


async def test_the_lane_signs_in_and_runs_the_plan_on_one_pooled_connection(
    client: httpx.AsyncClient,
    ann: Caller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Counted where a unit of work takes its connection: read-only ones take a kept one
    # (persistence.database.ReadConnections), which the pool's checkout event does not see.
    lookup, bearer, variables = ann.lookup, ann.bearer, ann.variables
    connects: list[SqlUnitOfWork] = []
    connect = SqlUnitOfWork._connect

    async def counted(self: SqlUnitOfWork) -> AsyncConnection:
        connects.append(self)
        return await connect(self)

    monkeypatch.setattr(SqlUnitOfWork, "_connect", counted)
    _, pipeline = await post(client, bearer, lookup, variables)
    pipeline_connects = len(connects)
    connects.clear()
    _, lane = await post(client, bearer, lookup, variables)

    assert (pipeline, lane) == (Counter({"unknown_document": 1}), Counter({"answered": 1}))
    assert pipeline_connects >= 2  # the pipeline: one for the sign-in, one for the plan
    assert len(connects) == 1


async def test_a_fallback_is_tried_once_and_answered_by_the_reference_path(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    token: TokenFactory,
    ann: Caller,
) -> None:
    lookup, bearer, mine = ann.lookup, ann.bearer, ann.variables
    theirs = {"id": await owned_submission(db, client, token("dee@example.com"))}
    await post(client, bearer, lookup, mine)

    paths = path_counts()
    response, lane = await post(client, bearer, lookup, theirs)

    assert lane == Counter({"fallback": 1})
    assert path_counts() - paths == Counter({("fallback", "not_found"): 1})
    assert only_error(response.json())["extensions"]["code"] == "NOT_FOUND"
    assert response.json()["data"] == {"submission": None}


async def test_callers_who_are_not_signed_in_get_the_pipelines_answer_after_one_sign_in(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    token: TokenFactory,
    counted: StatementCounter,
    ann: Caller,
) -> None:
    lookup, bearer, variables = ann.lookup, ann.bearer, ann.variables
    await post(client, bearer, lookup, variables)
    gone = token("gone@example.com")
    await make_user(db, "gone@example.com", is_active=False)

    anonymous, anonymous_lane = await post(client, None, lookup, variables)
    counted.count = 0
    deactivated, deactivated_lane = await post(client, gone, lookup, variables)

    assert anonymous_lane == deactivated_lane == Counter({"signed_out": 1})
    assert only_error(anonymous.json())["extensions"]["code"] == "UNAUTHENTICATED"
    assert only_error(deactivated.json())["extensions"]["code"] == "FORBIDDEN"
    assert counted.count == 1  # the lane's sign-in read, reused by the pipeline


async def test_limits_that_depend_on_variables_still_refuse(
    client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    page = fresh(PAGE)
    bearer = token("fay@example.com")
    await post(client, bearer, page, {"first": 2})

    small, small_lane = await post(client, bearer, page, {"first": 3})
    large, large_lane = await post(client, bearer, page, {"first": 100})
    again, again_lane = await post(client, bearer, page, {"first": 3})

    assert small_lane == again_lane == Counter({"answered": 1})
    assert large_lane == Counter({"limits": 1})
    assert small.json()["data"]["viewer"]["submissions"]["totalCount"] == 0
    assert only_error(large.json())["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    same(small, again)


async def test_the_input_hygiene_rule_refuses_on_the_lane_as_in_the_pipeline(
    client: httpx.AsyncClient, ann: Caller
) -> None:
    lookup, bearer = ann.lookup, ann.bearer
    await post(client, bearer, lookup, ann.variables)
    hostile = {"id": ann.variables["id"] + "\x00"}

    refused, refused_lane = await post(client, bearer, lookup, hostile)
    piped, _ = await post(client, bearer, f"# piped\n{lookup}", hostile)

    assert refused_lane == Counter({"input": 1})
    error = only_error(refused.json())
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "NUL" in error["extensions"]["fields"]["id"]
    assert (
        refused.json()["errors"][0]["extensions"]["fields"]
        == (piped.json()["errors"][0]["extensions"]["fields"])
    )


async def test_the_rate_limit_charges_each_request_once_whichever_path_answers(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    token: TokenFactory,
    ann: Caller,
) -> None:
    lookup, bearer, mine = ann.lookup, ann.bearer, ann.variables  # `viewer`: 1 point
    theirs = {"id": await owned_submission(db, client, token("hal@example.com"))}
    # The burst holds 4 lookups; one point went to the sign-in above, so three are left.
    outcomes = []
    for variables in (mine, theirs, mine, theirs):
        response, lane = await post(client, bearer, lookup, variables)
        outcomes.append((response.status_code, lane, error_code(response)))

    assert outcomes == [
        (200, Counter({"unknown_document": 1}), None),  # the pipeline: COST points
        (200, Counter({"fallback": 1}), "NOT_FOUND"),  # the lane, then the reference: COST
        (200, Counter({"answered": 1}), None),  # COST
        (200, Counter({"rate_limit": 1}), "RATE_LIMITED"),  # refused by the pipeline
    ]


def error_code(response: httpx.Response) -> str | None:
    errors = response.json().get("errors")
    return str(errors[0]["extensions"]["code"]) if errors else None


async def test_requests_the_lane_does_not_take_are_answered_by_the_pipeline(
    client: httpx.AsyncClient,
    ann: Caller,
) -> None:
    lookup, bearer, variables = ann.lookup, ann.bearer, ann.variables
    known, _ = await post(client, bearer, lookup, variables)

    unknown_extension, lane = await post(client, bearer, lookup, variables, extensions={"x": 1})
    assert lane == Counter({"not_eligible": 1})
    same(unknown_extension, known)
    wrong_name, lane = await post(client, bearer, lookup, variables, operationName="Nope")
    assert lane == Counter({"unknown_document": 1})
    assert wrong_name.status_code == 400
    (error,) = wrong_name.json()["errors"]
    assert error["message"] == 'Unknown operation named "Nope".'
    assert error["extensions"]["code"] == "BAD_REQUEST"
    costed = await client.post(
        "/graphql",
        json={"query": lookup, "variables": variables},
        headers={"Authorization": f"Bearer {bearer}", "X-Assay-Cost": "1"},
    )
    assert costed.json()["extensions"] == {"cost": COST}
    assert costed.json()["data"] == known.json()["data"]


def apq(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": document_hash(document)}}


async def test_persisted_queries_the_process_remembers_take_the_lane(
    client: httpx.AsyncClient,
    ann: Caller,
) -> None:
    lookup, bearer, variables = ann.lookup, ann.bearer, ann.variables

    unknown, unknown_lane = await post(client, bearer, None, variables, extensions=apq(lookup))
    sent, sent_lane = await post(client, bearer, lookup, variables, extensions=apq(lookup))
    by_hash, hash_lane = await post(client, bearer, None, variables, extensions=apq(lookup))
    both, both_lane = await post(client, bearer, lookup, variables, extensions=apq(lookup))
    wrong, wrong_lane = await post(client, bearer, lookup, variables, extensions=apq("{ x }"))

    assert only_error(unknown.json())["message"] == "PersistedQueryNotFound"
    assert unknown_lane == sent_lane == Counter({"persisted_query": 1})  # stored by the pipeline
    assert hash_lane == both_lane == Counter({"answered": 1})
    same(sent, by_hash)
    same(sent, both)
    assert wrong_lane == Counter({"persisted_query": 1})
    assert only_error(wrong.json())["extensions"]["code"] == "BAD_USER_INPUT"


async def test_in_trusted_documents_mode_only_trusted_documents_take_the_lane(
    settings: Settings, postgres_url: str, db: AsyncEngine, token: TokenFactory
) -> None:
    lookup, untrusted = fresh(LOOKUP), fresh(LOOKUP)
    operations = SqlPersistedOperations(db)
    await operations.put(document_hash(lookup), lookup, trusted=True)
    await operations.put(document_hash(untrusted), untrusted)  # APQ-registered, not trusted
    async for app in _running(
        settings, postgres_url, StatementCounter(), only_persisted_operations=True
    ):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            bearer = token("lee@example.com")  # the user, made here: `viewer` is not trusted
            owner, model = await make_user(db, "lee@example.com"), await make_model(db, "t")
            submission = await make_submission(db, owner, model)
            mine = {"id": to_global_id("Submission", submission)}
            answers = [
                await post(http, bearer, text, mine, extensions=extensions)
                for text, extensions in [
                    (None, apq(lookup)),
                    (None, apq(lookup)),
                    (lookup, None),
                    (untrusted, None),
                    (None, apq(untrusted)),
                ]
            ]

    assert [lane for _, lane in answers] == [
        Counter({"persisted_query": 1}),
        Counter({"answered": 1}),
        Counter({"answered": 1}),
        Counter({"unknown_document": 1}),
        Counter({"persisted_query": 1}),
    ]
    same(answers[0][0], answers[1][0])
    same(answers[0][0], answers[2][0])
    for refused, _ in answers[3:]:
        assert only_error(refused.json())["extensions"]["code"] == "FORBIDDEN"
