"""Compressed answers: the coding a client's Accept-Encoding chooses, and what is left alone."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable

import brotli
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from graph.transport.compression import MIN_BYTES, Compression, chosen_coding

BIG = (
    b'{"data": {"items": ['
    + b",".join(b'{"n": %d, "name": "item"}' % n for n in range(400))
    + b"]}}"
)
SMALL = b'{"data": {"viewer": null}}'


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        ("gzip", "gzip"),
        ("br", "br"),
        ("gzip, deflate, br, zstd", "br"),  # a tie: the server's order
        ("br;q=0.5, gzip", "gzip"),
        ("gzip;q=0.4, br;q=0.9", "br"),
        ("GZIP", "gzip"),
        ("*", "br"),
        ("*;q=0", None),
        ("br;q=0, *", "gzip"),
        ("br;q=0, gzip;q=0", None),
        ("identity", None),
        ("deflate, zstd", None),
        ("gzip;q=nonsense", None),
        (" gzip ; q=0.2 ", "gzip"),
    ],
)
def test_the_coding_honours_q_values(header: str, coding: str | None) -> None:
    assert chosen_coding(header) == coding


def _app(response: Response) -> Starlette:
    async def answer(_: Request) -> Response:
        return response

    return Compression(
        Starlette(routes=[Route("/{path:path}", answer)]), skip_path_prefix="/blobs/"
    )  # type: ignore[return-value]  # an ASGI app, served the same way


async def _get(app: object, path: str = "/graphql", **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # an ASGI callable
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def _raw(app: object, coding: str) -> tuple[bytes, httpx.Response]:
    """The bytes as sent, before httpx decodes them, and the response."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # an ASGI callable
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        client.stream("GET", "/", headers={"Accept-Encoding": coding}) as response,
    ):
        return b"".join([part async for part in response.aiter_raw()]), response


@pytest.mark.parametrize("coding", ["gzip", "br"])
async def test_a_large_json_answer_is_compressed_as_asked(coding: str) -> None:
    app = _app(Response(BIG, media_type="application/json"))

    response = await _get(app, **{"Accept-Encoding": coding})

    assert response.headers["content-encoding"] == coding
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.content == BIG  # httpx decodes what the header names
    assert int(response.headers["content-length"]) < len(BIG) / 2


async def test_the_bytes_sent_are_the_coding_named() -> None:
    app = _app(Response(BIG, media_type="application/graphql-response+json"))
    sent, response = await _raw(app, "br")

    assert brotli.decompress(sent) == BIG
    assert int(response.headers["content-length"]) == len(sent)


async def test_a_small_answer_is_sent_as_it_is_but_says_it_could_vary() -> None:
    response = await _get(
        _app(Response(SMALL, media_type="application/json")), **{"Accept-Encoding": "gzip"}
    )

    assert len(SMALL) < MIN_BYTES
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.content == SMALL


async def test_without_accept_encoding_nothing_is_compressed() -> None:
    response = await _get(
        _app(Response(BIG, media_type="application/json")), **{"Accept-Encoding": "identity"}
    )

    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.content == BIG


@pytest.mark.parametrize(
    "response",
    [
        Response(
            gzip.compress(BIG), media_type="application/json", headers={"Content-Encoding": "gzip"}
        ),
        Response(BIG, media_type="image/png"),
        Response(
            BIG, status_code=206, media_type="text/plain", headers={"Content-Range": "bytes 0-9/99"}
        ),
    ],
    ids=["already-encoded", "not-text", "a-range"],
)
async def test_encoded_binary_and_range_answers_are_left_alone(response: Response) -> None:
    sent = await _get(_app(response), **{"Accept-Encoding": "br"})

    assert sent.headers.get("content-encoding") == response.headers.get("content-encoding")
    assert "vary" not in sent.headers


async def test_the_blob_routes_answer_as_the_bucket_does() -> None:
    response = await _get(
        _app(Response(BIG, media_type="text/csv")), "/blobs/a", **{"Accept-Encoding": "gzip"}
    )

    assert "content-encoding" not in response.headers
    assert response.content == BIG


async def test_an_existing_vary_is_kept_and_a_strong_etag_weakened() -> None:
    headers = {"Vary": "Origin", "ETag": '"abc"'}
    app = _app(Response(BIG, media_type="text/html", headers=headers))

    response = await _get(app, **{"Accept-Encoding": "gzip"})

    assert response.headers["vary"] == "Origin, Accept-Encoding"
    assert response.headers["etag"] == 'W/"abc"'


@pytest.mark.parametrize(
    ("coding", "decode"), [("gzip", gzip.decompress), ("br", brotli.decompress)]
)
async def test_a_streamed_answer_is_compressed_part_by_part(
    coding: str, decode: Callable[[bytes], bytes]
) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for n in range(0, len(BIG), 700):
            yield BIG[n : n + 700]

    app = _app(StreamingResponse(parts(), media_type="application/javascript"))
    sent, response = await _raw(app, coding)

    assert response.headers["content-encoding"] == coding
    assert "content-length" not in response.headers
    assert decode(sent) == BIG
