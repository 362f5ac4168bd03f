"""A loopback TCP proxy in front of PostgreSQL that can stop answering, as a server stopped
with SIGSTOP does: connections stay open, what the client sends is taken and kept, nothing
comes back. Only the connections made through it stop: the server behind it goes on serving
everyone else (the session's shared one included)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url


@dataclass
class Link:
    """One client connection through the proxy: what it sent while the server was frozen,
    and whether the client closed its end."""

    held: bytearray = field(default_factory=bytearray)
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)


class FrozenProxy:
    """The proxy's state: its address and its connections (see `frozen_proxy`)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        socket_dir = parsed.query.get("host")
        port = int(parsed.query.get("port") or parsed.port or 5432)  # type: ignore[arg-type]
        # The embedded server's URL names its socket's directory (?host=/dir&port=N).
        self._socket = f"{socket_dir}/.s.PGSQL.{port}" if isinstance(socket_dir, str) else None
        self._target = (parsed.host or "127.0.0.1", port)
        self._url = parsed.difference_update_query(["host", "port"])
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.frozen = False
        self.links: list[Link] = []

    @property
    def url(self) -> str:
        return self._url.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def freeze(self) -> None:
        self.frozen = True

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link()
        self.links.append(link)
        if self.frozen:  # a connection made while frozen: taken, never answered
            await self._pipe(reader, None, link)
            writer.close()
            return
        if self._socket is not None:
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(self._socket)
        else:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        down = asyncio.ensure_future(self._pipe(upstream_reader, writer, None))
        self.tasks.add(down)
        try:
            await self._pipe(reader, upstream_writer, link)
        finally:
            down.cancel()
            upstream_writer.close()
            writer.close()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter | None, link: Link | None
    ) -> None:
        """Forward until frozen; then the client's bytes are kept (link) or the server's
        dropped, and the connection stays open until the client closes it."""
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(65536):
                if self.frozen or sink is None:
                    if link is not None:
                        link.held += chunk
                    continue
                sink.write(chunk)
                await sink.drain()
        if link is not None:
            link.closed_by_client.set()


@contextlib.asynccontextmanager
async def frozen_proxy(url: str) -> AsyncIterator[FrozenProxy]:
    """A proxy on a loopback port in front of the server at `url`, until the block ends."""
    proxy = FrozenProxy(url)
    server = await asyncio.start_server(proxy.accept, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        for task in proxy.tasks:
            task.cancel()
        await asyncio.gather(*proxy.tasks, return_exceptions=True)
        await server.wait_closed()
