"""uvicorn's httptools protocol with the bounds it lacks: header bytes and read deadlines.

httptools buffers a header of any size before calling back (a 10 MB Authorization header
was read in full), and uvicorn sets no deadline for a request's headers or body, so idle,
slow-header and trickled-body connections stayed open for minutes. Its own answers (a
malformed request, headers too large, the concurrency limit) are plain text; here they are
in the contract's error shape with a request id, like every other answer.
"""

from __future__ import annotations

import asyncio
import functools

from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from graph.transport.edge import new_request_id
from graph.transport.http_errors import BAD_REQUEST, RETRY_AFTER_SECONDS, UNAVAILABLE, error_body
from server.settings import load_settings

# A body may take this long per byte on top of the read timeout: 64 KiB/s, slow but honest.
MIN_BODY_BYTES_PER_SECOND = 64 * 1024
_END_OF_HEADERS = b"\r\n\r\n"
# After a refusal sent while the request is still arriving: how long what still comes is
# read and dropped before the close. Closing with unread input resets the connection, and
# the client loses the refusal it had not read yet (lingering close, as nginx does).
LINGER_SECONDS = 2.0
# ... and at most this much of it: a client that keeps sending (a 10 MB header) is cut off.
LINGER_BYTES = 1024 * 1024
_REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: httptools stops and uvicorn answers (see send_400)."""


def shaped_answer(status: int, message: str, code: str = BAD_REQUEST) -> bytes:
    """A whole HTTP answer, closing the connection, in the contract's error shape: what the
    server says before any application sees the request (bad request line, headers)."""
    request_id = new_request_id()
    body = error_body(message, code, request_id)
    head = [
        b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        b"x-request-id: " + request_id.encode(),
    ]
    return b"\r\n".join(head) + _END_OF_HEADERS + body


async def shaped_unavailable(
    scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    """uvicorn's answer past ASSAY_HTTP_LIMIT_CONCURRENCY, in the error shape."""
    request_id = new_request_id()
    body = error_body("the server is at its connection limit", UNAVAILABLE, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@functools.cache
def _bounds() -> tuple[int, float]:
    # Read here, not passed in: uvicorn's worker processes import this class by name.
    settings = load_settings()
    return settings.http_max_header_bytes, settings.http_read_timeout_seconds


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows the type the same way
        super().connection_made(transport)
        self._header_bytes = 0  # read from the socket, before the parser sees them
        self._parsed_bytes = 0  # seen by the parser (a pipelined request's too)
        self._tail = b""  # the last bytes read, to find a header end split across reads
        self._reading_headers = True
        self._is_too_large = False
        self._lingering = False  # a refusal was sent; what still comes is dropped
        self._linger_bytes = LINGER_BYTES
        self._deadline: asyncio.TimerHandle | None = None
        self._arm(_bounds()[1])  # a connection that never sends a request is closed too

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # after a refusal: read and dropped until the close
            self._linger_bytes -= len(data)
            if self._linger_bytes < 0:
                self.transport.close()
            return
        # Counted before parsing, so headers that arrive in one read are held to the limit
        # as well as ones that trickle in (the parser would take 60 KB at once).
        if self._reading_headers:
            window = self._tail + data
            end = window.find(_END_OF_HEADERS)
            self._header_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = window[-3:]
            if self._header_bytes > _bounds()[0]:
                self._refuse_headers()
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._parsed_bytes = 0
        self._arm(_bounds()[1])

    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_parsed(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_parsed(self, size: int) -> None:
        # A request pipelined behind another in one read was not counted before parsing.
        self._parsed_bytes += size
        if self._parsed_bytes > _bounds()[0]:
            self._is_too_large = True
            raise _HeadersTooLarge

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what the parser refused, in the error shape."""
        if self._is_too_large:
            answer = shaped_answer(431, "request headers too large")
        else:
            answer = shaped_answer(400, "malformed HTTP request")
        self._refuse(answer)

    def _refuse(self, answer: bytes) -> None:
        """Send `answer`, stop writing, drop what the client still sends for a moment (see
        LINGER_SECONDS and LINGER_BYTES), then close."""
        self._disarm()
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(answer)
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()  # sent once the answer is: the client reads it, then EOF
        self._lingering = True
        self._deadline = self.loop.call_later(LINGER_SECONDS, transport.close)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if app is service_unavailable:
            app = shaped_unavailable
        super()._start_asgi_task(cycle, app)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._header_bytes = 0
        self._tail = b""
        length = self._content_length()
        self._arm(_bounds()[1] + length / MIN_BODY_BYTES_PER_SECOND)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
        self._reading_headers = True  # what comes next on this connection is a request's head

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket protocol takes over; it has its own init timeout
        super().handle_websocket_upgrade()

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()  # the client sent everything: nothing left to drop
            return
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _content_length(self) -> int:
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit():
                return int(value)
        return 0

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.response_started:
            return  # reading is done; the application is answering
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_headers(self) -> None:
        self._reading_headers = False
        self._refuse(shaped_answer(431, "request headers too large"))
