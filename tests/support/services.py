"""Real servers and real processes for the process-level tests (no mocks, no skips).

- `ensure_redis()` / `ensure_postgres()`: the test Redis and PostgreSQL answer: the servers that
  `REELFORGE_TEST_REDIS_URL` / `REELFORGE_TEST_DATABASE_URL` name, or the suite's own throwaway
  ones (tests/support/servers.py); a server that does not answer fails the test.
- `fresh_postgres_database()`, `redis_database()`: one database each per test, dropped/flushed
  afterwards, so tests (and engineers) running side by side never see each other's rows or
  broker queues.
- `ApiProcess`: `python -m cli serve` as a child process, ready when `/readyz` answers 200.
- `WorkerProcess`: `dramatiq worker:setup` in a session of its own, so one `killpg(SIGKILL)`
  takes the supervisor, its worker process and the encoder child down together, as when a
  machine dies.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from tests.support.s3 import ACCESS_KEY, SECRET_KEY, start_moto
from tests.support.servers import postgres_url, redis_url

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LOCALHOST = "127.0.0.1"
# Redis databases the tests lease one at a time; 0 holds the leases (and other tests' keys),
# 14 belongs to bench/api_bench.py, which flushes it.
REDIS_TEST_DBS = [n for n in range(4, 16) if n != 14]

__all__ = [
    "ApiProcess",
    "WorkerProcess",
    "alive",
    "embedded_env",
    "ensure_postgres",
    "ensure_redis",
    "free_port",
    "fresh_postgres_database",
    "group_processes",
    "process_tree",
    "production_env",
    "redis_database",
    "start_moto",
]


# -- servers ---------------------------------------------------------------------------------
def ensure_redis() -> None:
    """The test Redis answers: `REELFORGE_TEST_REDIS_URL`'s, or the suite's own throwaway one,
    started on first use (tests/support/servers.py); a given one that does not answer fails."""
    redis_url()


def ensure_postgres() -> None:
    """The test PostgreSQL answers (`REELFORGE_TEST_DATABASE_URL`'s or the suite's own)."""
    postgres_url()


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new empty database for one test; yields its `postgresql://` URL, drops it after
    (helper A's `tests.support.pg.fresh_database`, behind this module's server check)."""
    from tests.support.pg import fresh_database

    with fresh_database() as url:
        yield url


@contextlib.contextmanager
def redis_database(lease_s: int = 3600) -> Iterator[str]:
    """Lease one Redis database (a lock key in db 0), flushed before and after; yields its URL."""
    import redis

    admin = redis.Redis.from_url(redis_url(0))
    owner = f"{os.getpid()}-{secrets.token_hex(4)}"
    leased = None
    deadline = time.monotonic() + 60
    while leased is None:
        for number in REDIS_TEST_DBS:
            if admin.set(f"reelforge-test-db:{number}", owner, nx=True, ex=lease_s):
                leased = number
                break
        else:
            if time.monotonic() > deadline:
                raise RuntimeError("no free Redis test database (all leased)")
            time.sleep(1)
    client = redis.Redis.from_url(redis_url(leased))
    client.flushdb()
    try:
        yield redis_url(leased)
    finally:
        client.flushdb()
        if admin.get(f"reelforge-test-db:{leased}") == owner.encode():
            admin.delete(f"reelforge-test-db:{leased}")
        client.close()
        admin.close()


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


# -- environments ------------------------------------------------------------------------------
def _base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_")}
    env["REELFORGE_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for `reelforge serve` in embedded mode (SQLite + local origin)."""
    return {**_base_env(data_dir), "REELFORGE_MODE": "embedded", **extra}


def production_env(
    data_dir: Path, *, database_url: str, redis_url: str, s3_endpoint: str, **extra: str
) -> dict[str, str]:
    """Environment shared by the API process and the `dramatiq` workers in production mode."""
    return {
        **_base_env(data_dir),
        "REELFORGE_MODE": "production",
        "REELFORGE_DATABASE_URL": database_url,
        "REELFORGE_REDIS_URL": redis_url,
        "REELFORGE_STORAGE": "s3",
        "REELFORGE_S3_ENDPOINT": s3_endpoint,
        "REELFORGE_S3_ACCESS_KEY": ACCESS_KEY,
        "REELFORGE_S3_SECRET_KEY": SECRET_KEY,
        "REELFORGE_S3_BUCKET": "reelforge-" + secrets.token_hex(4),
        "REELFORGE_SECRET_KEY": secrets.token_urlsafe(32),
        # A killed worker's job comes back after this silence (the fault test waits for it).
        "REELFORGE_BROKER_HEARTBEAT_MS": "5000",
        **extra,
    }


def mode_env(
    stack: contextlib.ExitStack, mode: str, data_dir: Path, **extra: str
) -> dict[str, str]:
    """`embedded_env`, or `production_env` over a fresh PostgreSQL database, a leased Redis
    database and a moto S3 server, all torn down by `stack`."""
    if mode != "production":
        return embedded_env(data_dir, **extra)
    moto, endpoint = start_moto()
    stack.callback(moto.stop)
    return production_env(
        data_dir,
        database_url=stack.enter_context(fresh_postgres_database()),
        redis_url=stack.enter_context(redis_database()),
        s3_endpoint=endpoint,
        **extra,
    )


# -- processes ---------------------------------------------------------------------------------
def group_processes(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces): state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def _parents() -> dict[int, int]:
    """pid → parent pid of every live (non-zombie) process."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    return parents


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants, whatever session or group they moved to."""
    parents = _parents()
    tree, frontier = [], [pid] if pid in parents else []
    while frontier:
        current = frontier.pop()
        tree.append(current)
        frontier.extend(child for child, parent in parents.items() if parent == current)
    return tree


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` still running (zombies count as gone)."""
    parents = _parents()
    return [pid for pid in pids if pid in parents]


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class _Child:
    """A child process in its own session, its output appended to a log file."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, dict(env), log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def pgid(self) -> int:
        return self.pid  # start_new_session: the child leads its own group

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful), SIGKILL to the whole group after `timeout`; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap_group()
        return self._close()

    def kill(self) -> None:
        """SIGKILL to the whole process group: no handler runs, nothing is flushed."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait(10)
        self._reap_group()
        self._close()

    def _reap_group(self, deadline_s: float = 10.0) -> None:
        deadline = time.monotonic() + deadline_s
        while group_processes(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if group_processes(self.pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)

    def _close(self) -> int | None:
        code = self.proc.poll() if self.proc is not None else None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running() or (self.proc is not None and group_processes(self.pgid)):
            self.stop()
        self._close()


class ApiProcess(_Child):
    """`python -m cli serve --port PORT` with `env`; `start()` returns once /readyz is 200."""

    def __init__(self, env: Mapping[str, str], port: int, log_path: Path, *extra_args: str) -> None:
        argv = [sys.executable, "-m", "cli", "serve", "--port", str(port), *extra_args]
        super().__init__(argv, env, log_path)
        self.port = port
        self.url = f"http://{LOCALHOST}:{port}"

    def start(self, deadline_s: float = 60.0) -> None:
        super().start()
        self.wait_ready(deadline_s)

    def wait_ready(self, deadline_s: float = 60.0) -> None:
        deadline = time.monotonic() + deadline_s
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"API exited with {self.proc and self.proc.poll()}:\n"
                                   + self.log_tail())  # fmt: skip
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=5)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise RuntimeError(f"API not ready after {deadline_s} s ({last}):\n{self.log_tail()}")


class WorkerProcess(_Child):
    """`dramatiq worker:setup --processes 1 --threads 1` in a session of its own (`target`:
    another setup, e.g. tests/support/lossyworker.py's; `threads`: worker threads)."""

    READY = "Worker process is ready for action."

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        target: str = "worker:setup",
        threads: int = 1,
    ) -> None:
        argv = [str(VENV_BIN / "dramatiq"), target, "--processes", "1", "--threads", str(threads)]
        super().__init__(argv, env, log_path)

    def start(self, deadline_s: float = 60.0) -> None:
        super().start()
        deadline = time.monotonic() + deadline_s
        while self.READY not in self.log():
            if not self.running():
                raise RuntimeError(f"worker exited with {self.proc and self.proc.poll()}:\n"
                                   + self.log_tail())  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready after {deadline_s} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def encoder_children(self) -> list[int]:
        """Processes of this worker's group that run a job in a child (the engine sandbox)."""
        return [
            pid
            for pid in group_processes(self.pgid)
            if "spawn_main" in cmdline(pid) or "forkserver" in cmdline(pid)
        ]
