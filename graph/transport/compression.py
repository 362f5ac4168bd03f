"""Compressed HTTP answers: br or gzip, as the client's Accept-Encoding prefers.

Every answer the application gives passes here (the fast lane, the full pipeline, errors,
GraphiQL's files), and is compressed when the client accepts br or gzip (q-values honoured,
br on a tie: smaller and, at the levels below, cheaper), its type is text or JSON, it is not
encoded already, and it holds at least MIN_BYTES. Such answers carry
`Vary: Accept-Encoding` whether compressed or not. Left alone: range answers, the blob routes
(they answer as the production bucket does, which compresses nothing), and what uvicorn
itself writes before the application sees a request (http_protocol.py: small errors).
WebSocket frames are not touched here: uvicorn negotiates permessage-deflate itself.

Levels (measured in docs/performance.md): a small answer compresses in microseconds at any
level; a large one (a W1-like 0.5 MB) costs 2.5 ms at br quality 1 and 6.5 ms at gzip level
1, several times that at the default levels, so large answers take the fastest level and
small ones a better one.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable

import brotli
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIN_BYTES = 1024  # below this, the headers and the CPU outweigh the bytes saved
LARGE_BYTES = 64 * 1024  # from here on, the fastest level
_GZIP_LEVELS = (6, 1)  # small, large
_BR_QUALITIES = (4, 1)
_CODINGS = ("br", "gzip")  # the server's order on a tie
_COMPRESSIBLE = ("text/", "application/json", "application/javascript", "image/svg+xml")
_VARY = "Accept-Encoding"


@functools.lru_cache(maxsize=256)  # clients send a handful of distinct headers
def chosen_coding(accept_encoding: str) -> str | None:
    """br, gzip or None (identity) for an Accept-Encoding header: the highest q above 0
    among the codings named (or matched by `*`), br on a tie."""
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        name, _, parameters = part.partition(";")
        coding = name.strip().lower()
        weight = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding:
            weights[coding] = weight
    best, best_weight = None, 0.0
    for coding in _CODINGS:
        weight = weights.get(coding, weights.get("*", 0.0))
        if weight > best_weight:
            best, best_weight = coding, weight
    return best


def compress(coding: str, body: bytes) -> bytes:
    is_large = len(body) >= LARGE_BYTES
    if coding == "br":
        return bytes(brotli.compress(body, quality=_BR_QUALITIES[is_large], mode=brotli.MODE_TEXT))
    return zlib.compress(body, _GZIP_LEVELS[is_large], wbits=31)  # 31: a gzip member


def _streaming(coding: str) -> Callable[[bytes, bool], bytes]:
    """A compressor for a body sent in parts: (part, is_last) -> the bytes to send."""
    if coding == "br":
        compressor = brotli.Compressor(quality=_BR_QUALITIES[1], mode=brotli.MODE_TEXT)

        def next_br(part: bytes, is_last: bool) -> bytes:
            out = compressor.process(part)
            return out + compressor.finish() if is_last else out

        return next_br
    gzipper = zlib.compressobj(_GZIP_LEVELS[1], zlib.DEFLATED, 31)

    def next_gzip(part: bytes, is_last: bool) -> bytes:
        out = gzipper.compress(part)
        return out + gzipper.flush() if is_last else out

    return next_gzip


class Compression:
    def __init__(self, app: ASGIApp, *, skip_path_prefix: str | None = None) -> None:
        self.app = app
        self.skip_path_prefix = skip_path_prefix or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self.skip_path_prefix is not None and scope["path"].startswith(self.skip_path_prefix)
        ):
            await self.app(scope, receive, send)
            return
        accepted = b""
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accepted = value if not accepted else accepted + b"," + value
        coding = chosen_coding(accepted.decode("latin-1")) if accepted else None
        await self.app(scope, receive, _Answer(send, coding).send)


class _Answer:
    """One answer's messages: the start is held until the first body part says how large
    the answer is."""

    def __init__(self, send: Send, coding: str | None) -> None:
        self._send = send
        self._coding = coding
        self._start: Message | None = None
        self._next: Callable[[bytes, bool], bytes] | None = None
        self._passing = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self._passing:
            await self._send(message)
        elif kind == "http.response.start":
            self._start = message
        elif kind == "http.response.body" and self._next is not None:
            is_last = not message.get("more_body", False)
            part = self._next(message.get("body", b""), is_last)
            await self._send({"type": kind, "body": part, "more_body": not is_last})
        elif kind == "http.response.body":
            await self._first_part(message)
        else:  # anything else (a path to send, trailers): as it came
            await self._release(message)

    async def _release(self, message: Message) -> None:
        self._passing = True
        if self._start is not None:
            await self._send(self._start)
        await self._send(message)

    async def _first_part(self, message: Message) -> None:
        start = self._start
        assert start is not None, "a body before the response start"
        headers = MutableHeaders(scope=start)
        if not _is_compressible(start["status"], headers):
            await self._release(message)
            return
        headers.add_vary_header(_VARY)
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        size = int(headers.get("content-length", -1)) if more else len(body)
        if self._coding is None or 0 <= size < MIN_BYTES:
            await self._release(message)
            return
        headers["content-encoding"] = self._coding
        etag = headers.get("etag")
        if etag is not None and not etag.startswith("W/"):
            headers["etag"] = f"W/{etag}"  # the same object, not the same bytes
        if not more:
            compressed = compress(self._coding, body)
            headers["content-length"] = str(len(compressed))
            await self._release({"type": "http.response.body", "body": compressed})
            return
        del headers["content-length"]
        self._next = _streaming(self._coding)
        await self._send(start)
        await self._send(
            {"type": "http.response.body", "body": self._next(body, False), "more_body": True}
        )


def _is_compressible(status: int, headers: MutableHeaders) -> bool:
    if status < 200 or status in (204, 206, 304) or "content-encoding" in headers:
        return False
    if "content-range" in headers:
        return False
    content_type = headers.get("content-type", "").lower()
    return content_type.startswith(_COMPRESSIBLE) or "+json" in content_type
