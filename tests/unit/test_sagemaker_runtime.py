"""The SageMaker runtime against a stubbed boto3 client: request shape, parsing, error mapping."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast
from uuid import uuid4

import boto3
import pytest
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from domain.models import JSONValue, Model, ModelFailure
from domain.submissions import Alternative, Prediction
from integrations.models.sagemaker import SageMakerRuntime

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.client import SageMakerClient
    from mypy_boto3_sagemaker_runtime.client import SageMakerRuntimeClient

ENDPOINT = "sentiment-prod"
INPUTS: list[JSONValue] = [{"text": "great"}, {"text": "awful"}]
MODEL = Model(
    id=uuid4(),
    name="sentiment",
    version="2",
    description="",
    input_schema={},
    output_schema={},
    runtime="sagemaker",
    runtime_config={"endpoint_name": ENDPOINT},
)


@pytest.fixture
def client() -> SageMakerRuntimeClient:
    return boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def stubber(client: SageMakerRuntimeClient) -> Iterator[Stubber]:
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def _body(document: JSONValue) -> StreamingBody:
    raw = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _expect_success(stubber: Stubber, predictions: JSONValue, **params: str) -> None:
    response = {"Body": _body({"predictions": predictions}), "ContentType": "application/json"}
    expected = {
        "EndpointName": ENDPOINT,
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps({"instances": INPUTS}).encode(),
        **params,
    }
    stubber.add_response("invoke_endpoint", response, expected)


def _expect_error(stubber: Stubber, code: str, status: int) -> None:
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message="Request 0f8e... failed, see account 123456789012",
        http_status_code=status,
    )


async def test_one_call_predicts_the_whole_batch(
    client: SageMakerRuntimeClient, stubber: Stubber
) -> None:
    positive = {"value": "positive", "confidence": 0.9}
    negative = {"value": "negative", "confidence": 0.1}
    structured = [
        {"prediction": "positive", "confidence": 0.9, "alternatives": [positive, negative]},
        {"prediction": "negative", "confidence": 0.7},
    ]
    _expect_success(stubber, structured)

    first, second = await SageMakerRuntime(client).predict(MODEL, INPUTS)

    assert first.prediction == "positive"
    assert first.confidence == 0.9
    assert first.alternatives == (Alternative("positive", 0.9), Alternative("negative", 0.1))
    assert (second.prediction, second.confidence, second.alternatives) == ("negative", 0.7, ())
    assert first.processing_time_ms >= 0


async def test_plain_values_are_predictions_without_confidence(
    client: SageMakerRuntimeClient, stubber: Stubber
) -> None:
    _expect_success(stubber, [0.25, {"label": "x"}])

    predictions = await SageMakerRuntime(client).predict(MODEL, INPUTS)

    assert [(p.prediction, p.confidence, p.alternatives) for p in predictions] == [
        (0.25, None, ()),
        ({"label": "x"}, None, ()),
    ]


async def test_content_type_and_target_model_come_from_runtime_config(
    client: SageMakerRuntimeClient, stubber: Stubber
) -> None:
    config = {
        "endpoint_name": ENDPOINT,
        "content_type": "application/json; v=2",
        "target_model": "a.tar.gz",
    }
    model = replace(MODEL, runtime_config=config)
    _expect_success(stubber, [1, 2], ContentType="application/json; v=2", TargetModel="a.tar.gz")

    assert len(await SageMakerRuntime(client).predict(model, INPUTS)) == 2


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("ServiceUnavailable", 503),
        ("InternalFailure", 500),
        ("ModelNotReadyException", 429),
    ],
)
async def test_capacity_errors_are_transient(
    client: SageMakerRuntimeClient, stubber: Stubber, code: str, status: int
) -> None:
    _expect_error(stubber, code, status)

    with pytest.raises(ModelFailure) as raised:
        await SageMakerRuntime(client).predict(MODEL, INPUTS)

    assert raised.value.is_transient is True
    assert str(raised.value) == f"SageMaker endpoint {ENDPOINT!r} failed: {code}"


@pytest.mark.parametrize(("code", "status"), [("ModelError", 424), ("ValidationError", 400)])
async def test_model_and_validation_errors_are_permanent(
    client: SageMakerRuntimeClient, stubber: Stubber, code: str, status: int
) -> None:
    _expect_error(stubber, code, status)

    with pytest.raises(ModelFailure) as raised:
        await SageMakerRuntime(client).predict(MODEL, INPUTS)

    assert raised.value.is_transient is False
    assert ENDPOINT in str(raised.value)
    assert "123456789012" not in str(raised.value)


@pytest.mark.parametrize(
    "predictions",
    [[1], [1, 2, 3], "oops", [{"prediction": 1, "confidence": "high"}, 2]],
)
async def test_a_malformed_response_is_permanent(
    client: SageMakerRuntimeClient, stubber: Stubber, predictions: JSONValue
) -> None:
    stubber.add_response("invoke_endpoint", {"Body": _body({"predictions": predictions})})

    with pytest.raises(ModelFailure) as raised:
        await SageMakerRuntime(client).predict(MODEL, INPUTS)

    assert raised.value.is_transient is False


async def test_a_model_without_an_endpoint_is_permanent(client: SageMakerRuntimeClient) -> None:
    model = replace(MODEL, runtime_config={})

    with pytest.raises(ModelFailure, match="endpoint_name") as raised:
        await SageMakerRuntime(client).predict(model, INPUTS)
    assert raised.value.is_transient is False


class _TimingOut:
    def __init__(self, error: Exception) -> None:
        self._error = error

    def invoke_endpoint(self, **params: object) -> None:
        raise self._error


@pytest.mark.parametrize(
    "error",
    [ConnectTimeoutError(endpoint_url="https://x"), ReadTimeoutError(endpoint_url="https://x")],
)
async def test_timeouts_are_transient(error: Exception) -> None:
    client = cast("SageMakerRuntimeClient", _TimingOut(error))

    with pytest.raises(ModelFailure, match="unreachable") as raised:
        await SageMakerRuntime(client).predict(MODEL, INPUTS)
    assert raised.value.is_transient is True


async def test_an_empty_batch_calls_nothing(
    client: SageMakerRuntimeClient, stubber: Stubber
) -> None:
    assert await SageMakerRuntime(client).predict(MODEL, []) == list[Prediction]()


def test_the_default_client_retries_adaptively_with_bounded_timeouts() -> None:
    runtime = SageMakerRuntime(region="eu-west-1", timeout_seconds=7, max_attempts=5)
    settings = vars(runtime.client.meta.config)  # the stubs declare no Config attributes

    assert settings["retries"] == {"total_max_attempts": 5, "mode": "adaptive"}
    assert settings["read_timeout"] == 7
    assert settings["connect_timeout"] <= 7
    assert runtime.client.meta.region_name == "eu-west-1"


async def test_check_passes_only_for_endpoints_in_service(client: SageMakerRuntimeClient) -> None:
    control: SageMakerClient = boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    runtime = SageMakerRuntime(client, control_client=control)
    with Stubber(control) as stubber:
        for name, status in ((ENDPOINT, "InService"), ("canary", "Updating")):
            stubber.add_response(
                "describe_endpoint", _endpoint(name, status), {"EndpointName": name}
            )

        with pytest.raises(ModelFailure, match="'canary' is Updating"):
            await runtime.check([ENDPOINT, "canary"])


def _endpoint(name: str, status: str) -> dict[str, object]:
    now = datetime.now(UTC)
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}"
    return {
        "EndpointName": name,
        "EndpointArn": arn,
        "EndpointConfigName": name,
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
    }
