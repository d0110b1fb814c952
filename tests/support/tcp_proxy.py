"""A TCP proxy on loopback that a test can cut and restore: a broker outage without stopping the
shared broker.

`TcpProxy(upstream_port)` listens on a free port and forwards each connection to the upstream
(with `tls=`, it terminates TLS, standing for a TLS listener of a plain upstream);
`cut()` closes every open connection and refuses new ones (the listening socket is closed, so a
connect gets "connection refused"); `restore()` listens on the same port again; `freeze()` holds
the traffic of the open connections without closing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from tests.support.ports import free_port


class TcpProxy:
    def __init__(
        self,
        upstream_port: int,
        upstream_host: str = "127.0.0.1",
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.tls = tls  # a server context: the proxy terminates TLS in front of a plain upstream
        self.port = free_port()
        self.connections = 0  # accepted so far, over the proxy's life
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def freeze(self) -> None:
        """Hold every byte from now on, in both directions, keeping the connections open: a peer
        that has stopped answering. `cut()` or `thaw()` ends it."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def start(self) -> TcpProxy:
        await self.restore()
        return self

    async def restore(self) -> None:
        """Accept connections again (on the same port)."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True, ssl=self.tls
            )

    async def cut(self) -> None:
        """Close every connection through the proxy and refuse new ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def close(self) -> None:
        await self.cut()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        # One direction ended: end the other side's writing too, as a real peer would.
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.write_eof()


class SilentServer:
    """Accepts TCP connections on a free loopback port and never answers: a broker that hangs."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(
            self._hold, "127.0.0.1", self.port, reuse_address=True
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(65536):
                pass
