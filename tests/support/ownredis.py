"""A Redis server of the test's own on a free port, to kill and restart (never the machine's
shared 127.0.0.1:6379): no persistence, so a restart comes back empty, as a Redis without
AOF/RDB does after a crash."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from tests.support.services import LOCALHOST, free_port


class OwnRedis:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.url = f"redis://{LOCALHOST}:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, deadline_s: float = 20.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", LOCALHOST, "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + deadline_s
        while not self.answers():
            assert self.proc.poll() is None, f"redis-server exited: {self.proc.returncode}"
            assert time.monotonic() < deadline, f"redis-server on {self.port} does not answer"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: whatever it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def client(self) -> Any:
        return redis.Redis(host=LOCALHOST, port=self.port, socket_timeout=2)

    def answers(self) -> bool:
        try:
            with contextlib.closing(self.client()) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def __enter__(self) -> OwnRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
