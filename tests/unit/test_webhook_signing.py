"""The sender's requests, verified with the `standardwebhooks` reference package, not our code."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from domain.webhooks import WebhookMessage, new_secret
from integrations.webhooks import DnsUrlGuard, HttpWebhookSender
from integrations.webhooks.url_guard import IPAddress

PUBLIC = "93.184.216.34"


async def public_resolver(host: str, port: int) -> list[IPAddress]:
    import ipaddress

    return [ipaddress.ip_address(PUBLIC)]


def message(*secrets: str, url: str = "https://hooks.example.com/in") -> WebhookMessage:
    return WebhookMessage(
        webhook_id="evt_42",
        url=url,
        event_type="submission.succeeded",
        occurred_at=datetime(2026, 3, 1, 12, 0, 5, 123456, tzinfo=UTC),
        data={"submissionId": "abc", "status": "SUCCEEDED", "score": 0.5},
        secrets=secrets,
    )


class StreamedBody(httpx.AsyncByteStream):
    """A body that arrives as a stream, like one from the network."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), 4096):
            yield self.data[start : start + 4096]


class Recorder:
    def __init__(self, status_code: int = 200, body: bytes = b"ok") -> None:
        self.requests: list[httpx.Request] = []
        self.status_code, self.body = status_code, body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status_code, stream=StreamedBody(self.body))


def sender(recorder: Recorder) -> HttpWebhookSender:
    guard = DnsUrlGuard(allow_private_networks=False, resolver=public_resolver)
    return HttpWebhookSender(guard, transport=httpx.MockTransport(recorder))


def headers_of(request: httpx.Request) -> dict[str, str]:
    return dict(request.headers.items())


async def test_request_verifies_with_the_reference_library() -> None:
    secret, recorder = new_secret(), Recorder()
    outcome = await sender(recorder).send(message(secret))
    assert outcome.is_success
    [request] = recorder.requests
    body = request.content
    payload = Webhook(secret).verify(body, headers_of(request))
    assert payload == {
        "type": "submission.succeeded",
        "timestamp": "2026-03-01T12:00:05.123456Z",
        "data": {"submissionId": "abc", "status": "SUCCEEDED", "score": 0.5},
    }
    assert request.headers["webhook-id"] == "evt_42"
    assert request.headers["content-type"] == "application/json"
    assert request.method == "POST"


async def test_request_goes_to_the_checked_address_with_the_original_host() -> None:
    recorder = Recorder()
    await sender(recorder).send(message(new_secret(), url="https://hooks.example.com:8443/in?a=1"))
    [request] = recorder.requests
    assert request.url.host == PUBLIC
    assert request.url.port == 8443
    assert request.url.raw_path == b"/in?a=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


async def test_a_wrong_secret_or_a_changed_body_does_not_verify() -> None:
    recorder = Recorder()
    await sender(recorder).send(message(new_secret()))
    [request] = recorder.requests
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(request.content, headers_of(request))
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(request.content + b" ", headers_of(request))


async def test_after_rotation_both_signatures_verify_with_their_secrets() -> None:
    new, old, recorder = new_secret(), new_secret(), Recorder()
    await sender(recorder).send(message(new, old))
    [request] = recorder.requests
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    for secret in (new, old):
        assert Webhook(secret).verify(request.content, headers_of(request))["data"]


async def test_non_2xx_is_a_failed_outcome_with_a_short_error() -> None:
    recorder = Recorder(status_code=500, body=b"x" * 100_000)
    outcome = await sender(recorder).send(message(new_secret()))
    assert not outcome.is_success
    assert outcome.status_code == 500
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 500")
    assert len(outcome.error) < 300


async def test_redirects_are_not_followed() -> None:
    recorder = Recorder(status_code=302)
    outcome = await sender(recorder).send(message(new_secret()))
    assert outcome.status_code == 302
    assert not outcome.is_success
    assert len(recorder.requests) == 1


async def test_a_private_target_is_refused_at_delivery_time() -> None:
    recorder = Recorder()
    guard = DnsUrlGuard(allow_private_networks=False)
    refusing = HttpWebhookSender(guard, transport=httpx.MockTransport(recorder))
    outcome = await refusing.send(message(new_secret(), url="http://127.0.0.1:9/x"))
    assert outcome.status_code is None
    assert outcome.error is not None
    assert "loopback" in outcome.error
    assert recorder.requests == []


async def test_the_body_is_json_signed_as_sent() -> None:
    recorder = Recorder()
    await sender(recorder).send(message(new_secret()))
    [request] = recorder.requests
    assert json.loads(request.content)["type"] == "submission.succeeded"
