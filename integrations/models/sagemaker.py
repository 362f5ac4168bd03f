"""Runs models hosted on SageMaker endpoints, one InvokeEndpoint call per batch."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from domain.models import JSONValue, Model, ModelFailure
from domain.submissions import Alternative, Prediction

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.client import SageMakerClient
    from mypy_boto3_sagemaker_runtime.client import SageMakerRuntimeClient

TRANSIENT_CODES = frozenset(
    {"ThrottlingException", "ServiceUnavailable", "InternalFailure", "ModelNotReadyException"}
)
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
NETWORK_ERRORS = (
    ConnectTimeoutError,
    ReadTimeoutError,
    EndpointConnectionError,
    ConnectionClosedError,
)
JSON = "application/json"


def client_config(timeout_seconds: float, max_attempts: int, max_concurrency: int) -> Config:
    """botocore settings: bounded timeouts and adaptive (client-side rate limited) retries."""
    return Config(
        connect_timeout=min(timeout_seconds, 5.0),
        read_timeout=timeout_seconds,
        # botocore's "max_attempts" counts retries only; "total_max_attempts" counts every call.
        retries={"total_max_attempts": max_attempts, "mode": "adaptive"},
        max_pool_connections=max_concurrency,
    )


class SageMakerRuntime:
    """A ModelRuntime for `runtime == "sagemaker"` models.

    runtime_config: `endpoint_name` (required), `content_type` and `target_model` (optional).
    """

    def __init__(
        self,
        client: SageMakerRuntimeClient | None = None,
        *,
        region: str | None = None,
        timeout_seconds: float = 10,
        max_attempts: int = 3,
        max_concurrency: int = 4,
        control_client: SageMakerClient | None = None,
    ) -> None:
        self._config = client_config(timeout_seconds, max_attempts, max_concurrency)
        self._region = region
        self._client = client or boto3.client(
            "sagemaker-runtime", region_name=region, config=self._config
        )
        self._control_client = control_client
        self._slots = asyncio.Semaphore(max_concurrency)

    @property
    def client(self) -> SageMakerRuntimeClient:
        return self._client

    async def predict(self, model: Model, inputs: Sequence[JSONValue]) -> list[Prediction]:
        if not inputs:
            return []
        endpoint = _endpoint_name(model)
        async with self._slots:
            started = time.perf_counter()
            body = await asyncio.to_thread(self._invoke, model, endpoint, list(inputs))
            elapsed_ms = (time.perf_counter() - started) * 1000
        per_input = max(0, round(elapsed_ms / len(inputs)))
        items = _predictions(endpoint, body, len(inputs))
        return [_prediction(endpoint, item, per_input) for item in items]

    async def check(self, endpoint_names: Sequence[str]) -> None:
        """Raise ModelFailure unless every endpoint exists and is InService (for readiness)."""
        for name in endpoint_names:
            status = await asyncio.to_thread(self._endpoint_status, name)
            if status != "InService":
                raise ModelFailure(f"SageMaker endpoint {name!r} is {status}", is_transient=True)

    def _invoke(self, model: Model, endpoint: str, inputs: list[JSONValue]) -> bytes:
        config = model.runtime_config
        extra = {"TargetModel": str(config["target_model"])} if "target_model" in config else {}
        try:
            response = self._client.invoke_endpoint(
                EndpointName=endpoint,
                ContentType=str(config.get("content_type", JSON)),
                Accept=JSON,
                Body=json.dumps({"instances": inputs}).encode(),
                **extra,
            )
            return response["Body"].read()
        except ClientError as error:
            raise _client_failure(endpoint, error) from error
        except NETWORK_ERRORS as error:
            message = f"SageMaker endpoint {endpoint!r} unreachable: {type(error).__name__}"
            raise ModelFailure(message, is_transient=True) from error
        except Exception as error:  # credentials, parameters, SDK bugs: retrying will not help
            message = f"SageMaker endpoint {endpoint!r} failed: {type(error).__name__}"
            raise ModelFailure(message, is_transient=False) from error

    def _endpoint_status(self, name: str) -> str:
        if self._control_client is None:
            self._control_client = boto3.client(
                "sagemaker", region_name=self._region, config=self._config
            )
        try:
            return self._control_client.describe_endpoint(EndpointName=name)["EndpointStatus"]
        except ClientError as error:
            raise _client_failure(name, error) from error


def _endpoint_name(model: Model) -> str:
    name = model.runtime_config.get("endpoint_name")
    if not isinstance(name, str) or not name:
        message = f"model {model.name} {model.version}: runtime_config lacks endpoint_name"
        raise ModelFailure(message, is_transient=False)
    return name


def _client_failure(endpoint: str, error: ClientError) -> ModelFailure:
    # Only the error code: AWS messages carry request ids, account ids and log links.
    code = error.response.get("Error", {}).get("Code", "Unknown")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    transient = code in TRANSIENT_CODES or status in TRANSIENT_STATUSES
    return ModelFailure(f"SageMaker endpoint {endpoint!r} failed: {code}", is_transient=transient)


def _predictions(endpoint: str, body: bytes, expected: int) -> list[JSONValue]:
    try:
        document: JSONValue = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _malformed(endpoint, "the response is not JSON") from error
    items = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise _malformed(endpoint, "the response has no 'predictions' list")
    if len(items) != expected:
        raise _malformed(endpoint, f"{len(items)} predictions for {expected} inputs")
    return items


def _prediction(endpoint: str, item: JSONValue, processing_time_ms: int) -> Prediction:
    if not (isinstance(item, dict) and "prediction" in item):
        return Prediction(item, None, (), processing_time_ms)
    confidence = item.get("confidence")
    if confidence is not None and not _is_number(confidence):
        raise _malformed(endpoint, "a confidence is not a number")
    alternatives = tuple(_alternative(endpoint, entry) for entry in item.get("alternatives") or ())
    value = None if confidence is None else float(confidence)
    return Prediction(item["prediction"], value, alternatives, processing_time_ms)


def _alternative(endpoint: str, entry: JSONValue) -> Alternative:
    if not (isinstance(entry, dict) and "value" in entry and _is_number(entry.get("confidence"))):
        raise _malformed(endpoint, "an alternative lacks a value or a numeric confidence")
    return Alternative(entry["value"], float(entry["confidence"]))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _malformed(endpoint: str, reason: str) -> ModelFailure:
    return ModelFailure(f"SageMaker endpoint {endpoint!r}: {reason}", is_transient=False)
