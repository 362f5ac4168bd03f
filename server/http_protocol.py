"""uvicorn's httptools protocol with the bounds it lacks: header bytes and read deadlines.

httptools buffers a header of any size before calling back (a 10 MB Authorization header
was read in full), and uvicorn sets no deadline for a request's headers or body, so idle,
slow-header and trickled-body connections stayed open for minutes.
"""

from __future__ import annotations

import asyncio
import functools

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.settings import load_settings

# A body may take this long per byte on top of the read timeout: 64 KiB/s, slow but honest.
MIN_BODY_BYTES_PER_SECOND = 64 * 1024
_TOO_LARGE_BODY = (
    b'{"errors":[{"message":"request headers too large","extensions":{"code":"BAD_REQUEST"}}]}'
)
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)


@functools.cache
def _bounds() -> tuple[int, float]:
    # Read here, not passed in: uvicorn's worker processes import this class by name.
    settings = load_settings()
    return settings.http_max_header_bytes, settings.http_read_timeout_seconds


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows the type the same way
        super().connection_made(transport)
        self._header_bytes = 0
        self._reading_headers = True
        self._deadline: asyncio.TimerHandle | None = None
        self._arm(_bounds()[1])  # a connection that never sends a request is closed too

    def data_received(self, data: bytes) -> None:
        if self._reading_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._reading_headers and self._header_bytes > _bounds()[0]:
            self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._arm(_bounds()[1])

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._header_bytes = 0
        length = self._content_length()
        self._arm(_bounds()[1] + length / MIN_BODY_BYTES_PER_SECOND)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket protocol takes over; it has its own init timeout
        super().handle_websocket_upgrade()

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
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()
