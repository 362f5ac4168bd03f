"""The server's own answers, before any application sees a request, are in the error shape."""

from __future__ import annotations

import json
from typing import Any, cast

from uvicorn._types import Scope

from server.http_protocol import shaped_answer, shaped_unavailable


def test_a_refusal_before_the_application_is_in_the_error_shape_with_a_request_id() -> None:
    head, _, body = shaped_answer(431, "request headers too large").partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["content-length"] == str(len(body))
    (error,) = json.loads(body)["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST", "requestId": headers["x-request-id"]}


async def test_the_concurrency_limit_answers_unavailable_with_retry_after() -> None:
    sent: list[Any] = []

    async def receive() -> Any:
        raise AssertionError("not read")

    async def send(message: Any) -> None:
        sent.append(message)

    await shaped_unavailable(cast(Scope, {"type": "http"}), receive, send)
    start, body = sent
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == b"1"
    (error,) = json.loads(body["body"])["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["extensions"]["requestId"] == headers[b"x-request-id"].decode()
