"""A TCP proxy on loopback that a test can cut and restore: a network outage in front of a real server.

The server behind it keeps running (and keeps its data); clients see refused
connections while the proxy is stopped, and a working server again after
``start()``, on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future


@contextlib.contextmanager
def proxied(host: str | None, port: int) -> Iterator[TcpProxy]:
    """A started proxy in front of ``host:port`` (loopback if None), closed on leaving."""
    proxy = TcpProxy(host or "127.0.0.1", port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target_host:target_port`` from a thread of its own."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    def _call(self, coroutine: object) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        future.result(timeout=30)

    def start(self) -> None:
        """Accept connections (again)."""
        self._call(self._start())

    def stop(self) -> None:
        """Refuse new connections and cut every open one."""
        self._call(self._stop())

    def close(self) -> None:
        """Stop, end the proxy's thread and close its event loop."""
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except (OSError, asyncio.CancelledError):  # no server behind, or cut by stop() while connecting
            writer.close()  # never left open: its client would wait on it without end
            self._pipes.discard(task)
            return
        try:
            await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
        except asyncio.CancelledError:
            pass  # cut by stop(): ending normally, as asyncio's stream callback expects of this task
        finally:
            for end in (writer, upstream_writer):
                end.close()
            self._pipes.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, RuntimeError):
        writer.write_eof()
