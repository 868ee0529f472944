"""A TCP proxy the test controls, in front of a real server (PostgreSQL): forward, go silent, cut.

- `silence()`: connections stay open and new ones are accepted, but nothing is
  forwarded either way: a network partition where the peer still ACKs, so no
  TCP timeout fires on the client. `resume()` forwards again (bytes held while
  silent are delivered then, as a healed network would).
- `cut()`: every connection is closed at once and new ones are closed on
  accept, as when the database host goes away; `resume()` ends that too.

Each connection is pumped by two threads that block on `recv`; nothing spins.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Literal

Mode = Literal["forward", "silent", "cut"]
_CHUNK = 65536


class TcpProxy:
    """127.0.0.1:<port> -> target, with a mode switch."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._mode: Mode = "forward"
        self._changed = threading.Condition()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    @property
    def mode(self) -> Mode:
        return self._mode

    def silence(self) -> None:
        self._set("silent")

    def cut(self) -> None:
        self._set("cut")
        with self._changed:
            doomed = list(self._sockets)
        for sock in doomed:
            _close(sock)

    def resume(self) -> None:
        self._set("forward")

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            doomed = list(self._sockets)
        _close(self._listener)
        for sock in doomed:
            _close(sock)
        for thread in self._threads:
            thread.join(timeout=5)

    def _set(self, mode: Mode) -> None:
        with self._changed:
            self._mode = mode
            self._changed.notify_all()

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._mode == "cut":
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._changed:
                self._sockets.update((client, upstream))
            self._start(self._pump, client, upstream)
            self._start(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                with self._changed:
                    # Silent: hold the bytes; forward them only if the network heals.
                    self._changed.wait_for(lambda: self._mode != "silent" or self._closed)
                    if self._mode == "cut" or self._closed:
                        break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._changed:
                    self._sockets.discard(sock)
                _close(sock)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()


@contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port)
    try:
        yield proxy
    finally:
        proxy.close()
