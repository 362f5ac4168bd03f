"""Inference mutations over HTTP: create, idempotency, batch, cancel, retry, runInference."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import to_global_id
from persistence.tables import submission_assets, submissions
from tests.factories import make_asset, make_model, make_submission, make_user
from tests.integration.conftest import IRIS_INPUT, TokenFactory, gql, only_error

CREATE = """
mutation($input: CreateSubmissionInput!) {
  createSubmission(input: $input) {
    submission { id status attempts input model { name } assets { id } }
  }
}
"""
BATCH = """
mutation($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id status input } }
}
"""
CANCEL = "mutation($id: ID!) { cancelSubmission(id: $id) { submission { id status } } }"
RETRY = """
mutation($id: ID!) { retrySubmission(id: $id) { submission { id status attempts error } } }
"""
RUN = """
mutation($input: RunInferenceInput!) {
  runInference(input: $input) { submission { id status } result { id } }
}
"""
MODELS = "{ models { id name } }"


async def _count(db: AsyncEngine, table: sa.Table) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def _iris(client: AsyncClient, tok: str) -> str:
    body = await gql(client, MODELS, token=tok)
    ids = {m["name"]: m["id"] for m in body["data"]["models"]}
    model_id: str = ids["iris-species"]
    return model_id


def _create_input(model_id: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "input": {"modelId": model_id, "input": IRIS_INPUT if value is None else value, **extra}
    }


async def test_models_lists_the_registered_default_models(
    client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    body = await gql(client, MODELS, token=token("amy@example.com"))

    assert {m["name"]: m["id"] for m in body["data"]["models"]} == default_models


async def test_create_submission_returns_pending(
    client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    tok = token("amy@example.com")

    body = await gql(client, CREATE, _create_input(await _iris(client, tok)), tok)

    submission = body["data"]["createSubmission"]["submission"]
    assert submission["status"] == "PENDING"
    assert submission["attempts"] == 0
    assert submission["input"] == IRIS_INPUT
    assert submission["model"] == {"name": "iris-species"}
    assert submission["assets"] == []


async def test_schema_invalid_input_names_each_failing_path_and_stores_nothing(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    tok = token("amy@example.com")
    bad = {"sepal_length_cm": "long", "sepal_width_cm": -1, "petal_length_cm": 1.0, "extra": 1}

    body = await gql(client, CREATE, _create_input(await _iris(client, tok), bad), tok)

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    fields = error["extensions"]["fields"]
    assert "input.input.sepal_length_cm" in fields
    assert "input.input.sepal_width_cm" in fields
    assert "input.input" in fields  # the missing property and the extra one
    assert await _count(db, submissions) == 0


async def test_unknown_model_id_is_bad_user_input(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    import uuid

    for model_id in (to_global_id("Model", uuid.uuid4()), to_global_id("User", uuid.uuid4())):
        body = await gql(client, CREATE, _create_input(model_id), token("amy@example.com"))
        error = only_error(body)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "input.modelId" in error["extensions"]["fields"]
    assert await _count(db, submissions) == 0


async def test_same_idempotency_key_returns_the_same_submission(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    tok = token("amy@example.com")
    variables = _create_input(await _iris(client, tok), idempotencyKey="order-1")

    first = await gql(client, CREATE, variables, tok)
    second = await gql(client, CREATE, variables, tok)

    assert (
        first["data"]["createSubmission"]["submission"]["id"]
        == second["data"]["createSubmission"]["submission"]["id"]
    )
    assert await _count(db, submissions) == 1


async def test_same_idempotency_key_from_another_user_is_another_submission(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    amy, bob = token("amy@example.com"), token("bob@example.com")
    variables = _create_input(await _iris(client, amy), idempotencyKey="order-1")

    first = await gql(client, CREATE, variables, amy)
    second = await gql(client, CREATE, variables, bob)

    assert (
        first["data"]["createSubmission"]["submission"]["id"]
        != second["data"]["createSubmission"]["submission"]["id"]
    )
    assert await _count(db, submissions) == 2


async def test_concurrent_creates_with_one_idempotency_key_store_one_row(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    tok = token("amy@example.com")
    variables = _create_input(await _iris(client, tok), idempotencyKey="burst")

    bodies = await asyncio.gather(*(gql(client, CREATE, variables, tok) for _ in range(20)))

    assert [b.get("errors") for b in bodies] == [None] * 20
    assert len({b["data"]["createSubmission"]["submission"]["id"] for b in bodies}) == 1
    assert await _count(db, submissions) == 1


async def test_batch_inference_returns_pending_submissions_in_input_order(
    client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    tok = token("amy@example.com")
    inputs = [{**IRIS_INPUT, "sepal_length_cm": float(n)} for n in (3, 1, 2)]

    body = await gql(
        client, BATCH, {"input": {"modelId": await _iris(client, tok), "inputs": inputs}}, tok
    )

    created = body["data"]["batchInference"]["submissions"]
    assert [s["input"] for s in created] == inputs
    assert {s["status"] for s in created} == {"PENDING"}
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Submission { createdAt } } }"
    read = await gql(client, query, {"ids": [s["id"] for s in created]}, tok)
    created_at = [datetime.fromisoformat(n["createdAt"]) for n in read["data"]["nodes"]]
    assert created_at == sorted(created_at)  # keyset (created_at, id) order is input order
    assert len(set(created_at)) == 3


async def test_batch_with_one_bad_input_names_it_and_stores_nothing(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    tok = token("amy@example.com")
    inputs = [IRIS_INPUT] * 3 + [{**IRIS_INPUT, "petal_width_cm": 99}] + [IRIS_INPUT]

    body = await gql(
        client, BATCH, {"input": {"modelId": await _iris(client, tok), "inputs": inputs}}, tok
    )

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert list(error["extensions"]["fields"]) == ["input.inputs.3.petal_width_cm"]
    assert await _count(db, submissions) == 0


async def test_batch_of_zero_or_1001_inputs_is_bad_user_input(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    tok = token("amy@example.com")
    model_id = await _iris(client, tok)

    for inputs in ([], [IRIS_INPUT] * 1001):
        body = await gql(client, BATCH, {"input": {"modelId": model_id, "inputs": inputs}}, tok)
        error = only_error(body)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "input.inputs" in error["extensions"]["fields"]
    assert await _count(db, submissions) == 0


async def test_cancel_of_pending_submission_cancels_and_again_is_conflict(
    client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    tok = token("amy@example.com")
    created = await gql(client, CREATE, _create_input(await _iris(client, tok)), tok)
    ident = created["data"]["createSubmission"]["submission"]["id"]

    cancelled = await gql(client, CANCEL, {"id": ident}, tok)
    again = await gql(client, CANCEL, {"id": ident}, tok)

    assert cancelled["data"]["cancelSubmission"]["submission"] == {
        "id": ident,
        "status": "CANCELLED",
    }
    assert only_error(again)["extensions"]["code"] == "CONFLICT"


async def test_retry_of_non_failed_submission_is_conflict(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    amy = await make_user(db, "amy@example.com")
    model = await make_model(db)
    for status in ("PENDING", "RUNNING", "SUCCEEDED", "CANCELLED"):
        ident = to_global_id("Submission", await make_submission(db, amy, model, status=status))
        body = await gql(client, RETRY, {"id": ident}, token("amy@example.com"))
        assert only_error(body)["extensions"]["code"] == "CONFLICT", status


async def test_cancel_of_running_submission_is_conflict(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    amy = await make_user(db, "amy@example.com")
    ident = await make_submission(db, amy, await make_model(db), status="RUNNING", attempts=1)

    body = await gql(
        client, CANCEL, {"id": to_global_id("Submission", ident)}, token("amy@example.com")
    )

    assert only_error(body)["extensions"]["code"] == "CONFLICT"


async def test_retry_of_failed_submission_is_pending_with_no_attempts(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    amy = await make_user(db, "amy@example.com")
    failed = await make_submission(
        db, amy, await make_model(db), status="FAILED", attempts=3, error="model exploded"
    )
    ident = to_global_id("Submission", failed)

    body = await gql(client, RETRY, {"id": ident}, token("amy@example.com"))

    assert body["data"]["retrySubmission"]["submission"] == {
        "id": ident,
        "status": "PENDING",
        "attempts": 0,
        "error": None,
    }


async def test_cancel_or_retry_of_anothers_submission_is_not_found(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    bob = await make_user(db, "bob@example.com")
    model = await make_model(db)
    pending = to_global_id("Submission", await make_submission(db, bob, model, status="PENDING"))
    failed = to_global_id("Submission", await make_submission(db, bob, model, status="FAILED"))
    amy = token("amy@example.com")

    assert only_error(await gql(client, CANCEL, {"id": pending}, amy))["extensions"]["code"] == (
        "NOT_FOUND"
    )
    assert only_error(await gql(client, RETRY, {"id": failed}, amy))["extensions"]["code"] == (
        "NOT_FOUND"
    )


async def test_create_with_own_available_asset_lists_it_on_the_submission(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    amy = await make_user(db, "amy@example.com")
    asset = to_global_id("Asset", await make_asset(db, amy))
    tok = token("amy@example.com")

    body = await gql(client, CREATE, _create_input(await _iris(client, tok), assetIds=[asset]), tok)
    created = body["data"]["createSubmission"]["submission"]
    read = await gql(
        client,
        "query($id: ID!) { submission(id: $id) { assets { id } } }",
        {"id": created["id"]},
        tok,
    )

    assert created["assets"] == [{"id": asset}]
    assert read["data"]["submission"]["assets"] == [{"id": asset}]


async def test_create_with_anothers_or_pending_upload_asset_is_bad_user_input(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    amy = await make_user(db, "amy@example.com")
    bob = await make_user(db, "bob@example.com")
    bobs = await make_asset(db, bob)
    pending = await make_asset(db, amy, status="PENDING_UPLOAD")
    tok = token("amy@example.com")
    model_id = await _iris(client, tok)

    for asset in (bobs, pending):
        variables = _create_input(model_id, assetIds=[to_global_id("Asset", asset)])
        error = only_error(await gql(client, CREATE, variables, tok))
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert list(error["extensions"]["fields"]) == ["input.assetIds.0"]
    assert await _count(db, submissions) == 0
    assert await _count(db, submission_assets) == 0


async def test_run_inference_without_workers_answers_with_the_stored_result(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    tok = token("amy@example.com")
    variables = {"input": {"modelId": await _iris(client, tok), "input": IRIS_INPUT}}

    body = await gql(client, RUN, variables, tok)

    payload = body["data"]["runInference"]
    assert payload["submission"]["status"] == "SUCCEEDED"
    assert payload["result"] is not None
    assert await _count(db, submissions) == 1


async def test_run_inference_of_a_model_run_elsewhere_returns_pending_after_timeout(
    db: AsyncEngine, quick_client: AsyncClient, token: TokenFactory
) -> None:
    # No SageMaker region here: another process (a worker) runs this model's submissions.
    remote = to_global_id("Model", await make_model(db, "remote", runtime="sagemaker"))
    tok = token("amy@example.com")
    variables = {"input": {"modelId": remote, "input": {"x": 1}}}

    started = asyncio.get_running_loop().time()
    body = await gql(quick_client, RUN, variables, tok)
    elapsed = asyncio.get_running_loop().time() - started

    payload = body["data"]["runInference"]
    assert payload["submission"]["status"] == "PENDING"
    assert payload["result"] is None
    assert 0.4 <= elapsed < 5
