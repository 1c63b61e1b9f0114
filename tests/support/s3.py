"""A real S3 endpoint for tests: moto's standalone server on a free local port.

moto speaks the S3 protocol (buckets, multipart uploads, ranged GETs, presigned URLs) but
does not verify signatures: no test may claim to prove S3 authentication.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from moto.server import ThreadedMotoServer

HOST = "127.0.0.1"
ACCESS_KEY = "reelforge-test"
SECRET_KEY = "reelforge-test-secret"


def free_port() -> int:
    """A local TCP port nobody listened on a moment ago (for "nothing answers here" tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_moto(timeout: float = 15.0) -> tuple[ThreadedMotoServer, str]:
    """Start moto's S3 server in a thread on a free port; returns (server, "127.0.0.1:PORT").

    The OS picks the port when the server binds (port 0), so there is no window in which
    another process could take it. Raises (never skips) when the server does not come up
    within `timeout` seconds. Call ``server.stop()`` when done.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request
    server = ThreadedMotoServer(HOST, 0, verbose=False)
    # start() waits on an event that a failed bind never sets: bound it with a thread.
    starter = threading.Thread(target=server.start, name="moto-start", daemon=True)
    starter.start()
    starter.join(timeout)
    if starter.is_alive():
        raise RuntimeError(f"moto S3 server did not start within {timeout} s")
    host, port = server.get_host_and_port()
    _wait_listening(host, port, timeout)
    return server, f"{host}:{port}"


def _wait_listening(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
