"""A TCP proxy on 127.0.0.1 that forwards to a server (Dovecot) and misbehaves on request.

- `blackhole()`: every connection goes silent: bytes in either direction are read and dropped,
  nothing is closed, and new connections are accepted and then ignored (no greeting). This is
  the connection a NAT box or a dead peer leaves behind: only timeouts can notice it.
- `refuse()`: every connection is closed and new ones are refused (the port stops listening).
- `heal()`: back to forwarding; connections from before the fault stay as they were (a
  blackholed one has lost bytes, so it stays dropped: the client must reconnect).

It runs its own asyncio loop in a thread, so tests call it from plain synchronous code.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Literal

Mode = Literal["forward", "blackhole", "refuse"]


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = _free_port(host)
        self.mode: Mode = "forward"
        self.accepted = 0  # connections accepted, over the proxy's life
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._links: set[_Link] = set()

    # ---------------------------------------------------------------- control (any thread)

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def blackhole(self) -> None:
        self._call(self._set_mode("blackhole"))

    def refuse(self) -> None:
        self._call(self._set_mode("refuse"))

    def heal(self) -> None:
        self._call(self._set_mode("forward"))

    @property
    def open_connections(self) -> int:
        return sum(1 for link in list(self._links) if not link.closed)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coroutine) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # ---------------------------------------------------------------- the loop's side

    async def _set_mode(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "blackhole":
            for link in self._links:
                link.silenced = True
        elif mode == "refuse":
            await self._close_all()
        elif self._server is None:
            await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for link in list(self._links):
            link.close()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(client_writer)
        self._links.add(link)
        try:
            if self.mode != "forward":
                link.silenced = True
                await _drain_forever(client_reader)
                return
            try:
                server_reader, server_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            link.server_writer = server_writer
            await asyncio.gather(self._pump(client_reader, server_writer, link),
                                 self._pump(server_reader, client_writer, link))
        finally:
            link.close()
            self._links.discard(link)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        try:
            while data := await reader.read(65536):
                if link.silenced:
                    continue  # read and dropped: the peer hears nothing, and nothing is closed
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            link.close()


class _Link:
    def __init__(self, client_writer: asyncio.StreamWriter) -> None:
        self.client_writer = client_writer
        self.server_writer: asyncio.StreamWriter | None = None
        self.silenced = False
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client_writer, self.server_writer):
            if writer is not None:
                writer.close()


async def _drain_forever(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(65536):
            pass
    except (ConnectionError, OSError):
        pass


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
