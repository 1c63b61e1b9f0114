"""A slow link for tests: a TCP relay that caps the bytes a client sends upstream per second.

Put in front of the S3 server, it makes a worker's store take seconds instead of milliseconds
(a real network that slow, not a patched client), so a test can kill the worker while its
outputs are half stored. Downloads (upstream → client) are not slowed.

Like any proxy that buffers, the relay still forwards what a client sent before it died: a
killed client's last request may reach the server seconds later, complete. `wait_idle` waits
until every connection has drained and closed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

HOST = "127.0.0.1"
CHUNK = 16 * 1024


class ThrottledRelay:
    """Listen on a free local port and relay each connection to `upstream` ("host:port"),
    sending at most `upload_bytes_per_s` towards it (per connection)."""

    def __init__(self, upstream: str, upload_bytes_per_s: int) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.rate = upload_bytes_per_s
        self._listener = socket.create_server((HOST, 0))
        self.endpoint = f"{HOST}:{self._listener.getsockname()[1]}"
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._active = 0

    def wait_idle(self, timeout: float) -> None:
        """Return once no connection is open; raise `TimeoutError` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._active == 0:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the relay still has {self._active} open pipe(s)")
            time.sleep(0.05)

    def start(self) -> ThrottledRelay:
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> ThrottledRelay:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
                self._active += 2
            threading.Thread(
                target=self._pipe, args=(client, server, self.rate), daemon=True
            ).start()
            threading.Thread(target=self._pipe, args=(server, client, 0), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, rate: int) -> None:
        try:
            while not self._stopped.is_set():
                data = source.recv(CHUNK)
                if not data:
                    break
                if rate:
                    time.sleep(len(data) / rate)
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)
            with self._lock:
                self._active -= 1
