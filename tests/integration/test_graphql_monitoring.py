"""Model monitoring over GraphQL on the real app: stats and drift after runInference,
feedback rules and quality, alert policies; who may see what; bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import required_id, to_global_id
from persistence import tables
from tests.integration.conftest import (
    IRIS_INPUT,
    JSONDict,
    TokenFactory,
    error_codes,
    gql,
    only_error,
)

RUN = """mutation($m: ID!, $i: JSON!) {
  runInference(input: {modelId: $m, input: $i}) { submission { status } result { id } }
}"""
HEALTH = """query($m: ID!, $w: StatsWindow) { model(id: $m) {
  stats(window: $w) {
    predictions failures errorRate throughputPerSecond
    modelLatency { p50Ms p95Ms p99Ms } endToEndLatency { p95Ms }
    outputDistribution { label count share }
    series(bucketSeconds: 300) { at predictions }
  }
  drift(window: $w) { status driftShare features { feature psi ks status reference { share } } }
  quality(window: $w) { labelled accuracy macroF1 mae rmse }
} }"""
FEEDBACK = """mutation($r: ID!, $l: JSON!) {
  submitFeedback(input: {resultId: $r, label: $l}) { result { id feedback } }
}"""


async def _run(client: httpx.AsyncClient, model: str, value: Any, tok: str) -> str:
    body = await gql(client, RUN, {"m": model, "i": value}, tok)
    result_id: str = body["data"]["runInference"]["result"]["id"]
    return result_id


async def test_admins_see_stats_drift_and_quality_of_what_ran(
    client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    iris = default_models["iris-species"]
    ada, admin = token("ada@example.com"), token("root@example.com", ["admin"])
    results = [await _run(client, iris, IRIS_INPUT, ada) for _ in range(3)]
    labelled = await gql(client, FEEDBACK, {"r": results[0], "l": "setosa"}, ada)
    assert labelled["data"]["submitFeedback"]["result"]["feedback"] == "setosa"
    await gql(client, FEEDBACK, {"r": results[1], "l": "virginica"}, ada)

    body = await gql(client, HEALTH, {"m": iris}, admin)
    model: JSONDict = body["data"]["model"]
    stats = model["stats"]
    assert (stats["predictions"], stats["failures"], stats["errorRate"]) == (3, 0, 0.0)
    assert stats["modelLatency"]["p50Ms"] is not None
    assert stats["endToEndLatency"]["p95Ms"] is not None
    assert {b["label"]: b["count"] for b in stats["outputDistribution"]}["setosa"] == 3
    assert sum(p["predictions"] for p in stats["series"]) == 3
    drift = model["drift"]
    assert drift["status"] == "INSUFFICIENT_DATA"  # three inputs are not a distribution
    assert len(drift["features"]) == 4
    assert all(f["reference"] for f in drift["features"])  # iris ships its reference
    quality = model["quality"]
    assert (quality["labelled"], quality["accuracy"]) == (2, 0.5)


async def test_statistics_are_forbidden_to_other_users(
    client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    iris = default_models["iris-species"]
    body = await gql(client, HEALTH, {"m": iris}, token("ada@example.com"))
    assert set(error_codes(body)) == {"FORBIDDEN"}
    alerts = await gql(client, "{ modelAlerts { totalCount } }", token="x")
    assert error_codes(alerts) == ["UNAUTHENTICATED"]
    alerts = await gql(client, "{ modelAlerts { totalCount } }", token=token("b@example.com"))
    assert error_codes(alerts) == ["FORBIDDEN"]


async def test_a_window_beyond_retention_is_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    admin = token("root@example.com", ["admin"])
    query = (
        "query($m: ID!, $w: StatsWindow) { model(id: $m) { stats(window: $w) { predictions } } }"
    )
    window = {"from": "2020-01-01T00:00:00Z"}
    error = only_error(
        await gql(client, query, {"m": default_models["iris-species"], "w": window}, admin)
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert list(error["extensions"]["fields"]) == ["window.from"]


async def test_feedback_on_another_users_result_is_not_found_and_bad_labels_name_the_field(
    client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    ada, bob = token("ada@example.com"), token("bob@example.com")
    result = await _run(client, default_models["iris-species"], IRIS_INPUT, ada)
    other = await gql(client, FEEDBACK, {"r": result, "l": "setosa"}, bob)
    assert error_codes(other) == ["NOT_FOUND"]
    outside = only_error(await gql(client, FEEDBACK, {"r": result, "l": "rose"}, ada))
    assert outside["extensions"]["code"] == "BAD_USER_INPUT"
    assert list(outside["extensions"]["fields"]) == ["input.label"]
    patient = {"age": 50, "sex": 1, "bmi": 26.0, "bp": 94.0, "s1": 189, "s2": 115.0}
    patient |= {"s3": 50.0, "s4": 4.0, "s5": 4.6, "s6": 91}
    regression = await _run(client, default_models["diabetes-progression"], patient, ada)
    wrong_type = only_error(await gql(client, FEEDBACK, {"r": regression, "l": "high"}, ada))
    assert list(wrong_type["extensions"]["fields"]) == ["input.label"]
    read = await gql(client, "query($r: ID!) { result(id: $r) { feedback } }", {"r": result}, ada)
    assert read["data"]["result"]["feedback"] is None  # nothing was recorded


async def test_admins_set_an_alert_policy_and_list_alerts(
    client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    iris = default_models["iris-species"]
    admin = token("root@example.com", ["admin"])
    set_policy = """mutation($m: ID!) { setModelAlertPolicy(input: {modelId: $m,
      latencyP95Ms: 2000, errorRate: 0.05, drift: DRIFT, minAccuracy: 0.9}) {
      model { alertPolicy { latencyP95Ms errorRate drift minAccuracy minR2 } } } }"""
    body = await gql(client, set_policy, {"m": iris}, admin)
    policy = body["data"]["setModelAlertPolicy"]["model"]["alertPolicy"]
    assert policy == {
        "latencyP95Ms": 2000.0,
        "errorRate": 0.05,
        "drift": "DRIFT",
        "minAccuracy": 0.9,
        "minR2": None,
    }
    bad = """mutation($m: ID!) { setModelAlertPolicy(input: {modelId: $m, errorRate: 2}) {
      model { id } } }"""
    error = only_error(await gql(client, bad, {"m": iris}, admin))
    assert list(error["extensions"]["fields"]) == ["input.errorRate"]
    forbidden = await gql(client, set_policy, {"m": iris}, token("ada@example.com"))
    assert error_codes(forbidden) == ["FORBIDDEN"]
    listed = await gql(
        client,
        "query($m: ID) { modelAlerts(modelId: $m) { totalCount edges { node { id } } } }",
        {"m": iris},
        admin,
    )
    assert listed["data"]["modelAlerts"] == {"totalCount": 0, "edges": []}


ALERT_PAGE = """query($first: Int, $after: String, $last: Int, $before: String) {
  modelAlerts(first: $first, after: $after, last: $last, before: $before) {
    edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage }
  }
}"""


async def test_model_alerts_page_both_ways_newest_first(
    client: httpx.AsyncClient,
    token: TokenFactory,
    db: AsyncEngine,
    default_models: dict[str, str],
) -> None:
    admin = token("root@example.com", ["admin"])
    model = required_id(default_models["iris-species"], "Model")
    start = datetime(2026, 12, 1, tzinfo=UTC)
    rows = [
        {
            "id": uuid.uuid4(),
            "model_id": model,
            "kind": "ERROR_RATE",
            "state": "RAISED",
            "value": 0.1,
            "threshold": 0.05,
            "at": start + timedelta(minutes=n),
        }
        for n in range(5)
    ]
    async with db.begin() as conn:
        await conn.execute(sa.insert(tables.model_alerts), rows)
    newest_first = [to_global_id("ModelAlert", cast(uuid.UUID, r["id"])) for r in reversed(rows)]

    async def page(**arguments: Any) -> JSONDict:
        body = await gql(client, ALERT_PAGE, arguments, admin)
        assert "errors" not in body, body
        alerts: JSONDict = body["data"]["modelAlerts"]
        return alerts

    head = await page(first=2)
    assert [e["node"]["id"] for e in head["edges"]] == newest_first[:2]
    assert head["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": False}
    rest = await page(first=5, after=head["edges"][-1]["cursor"])
    assert [e["node"]["id"] for e in rest["edges"]] == newest_first[2:]
    tail = await page(last=2)
    assert [e["node"]["id"] for e in tail["edges"]] == newest_first[3:]
    assert tail["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True}
    before = await page(last=2, before=tail["edges"][0]["cursor"])
    assert [e["node"]["id"] for e in before["edges"]] == newest_first[1:3]
