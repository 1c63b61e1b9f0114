"""The PostgreSQL and Redis servers the suite talks to (issue 18: a fresh machine is enough).

Two settings, read from the environment once, when a test first needs the server:

- `REELFORGE_TEST_DATABASE_URL`: a PostgreSQL whose user may create and drop databases, e.g.
  `postgresql://postgres@127.0.0.1:5432/test`; each test gets a database of its own on it.
- `REELFORGE_TEST_REDIS_URL`: a Redis server, e.g. `redis://127.0.0.1:6379`; tests lease its
  databases 4..15 one at a time (tests/support/services.py `redis_database`).

A given server must answer, or the test that needs it fails. When one is not given, the suite
starts a throwaway server of its own on first use and stops it when the session ends:
PostgreSQL from `initdb --auth=trust` in a fresh temporary directory (its socket there too, TCP
on 127.0.0.1 and a free port; as the `postgres` user when the suite runs as root, which
PostgreSQL refuses), Redis with nothing on disk on a free port. So a machine with only the
binaries (scripts/bootstrap.sh installs them) runs the whole suite, and runs side by side never
share rows or queues.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DATABASE_ENV = "REELFORGE_TEST_DATABASE_URL"
REDIS_ENV = "REELFORGE_TEST_REDIS_URL"
LOCALHOST = "127.0.0.1"
PG_ADMIN_DB = "test"
PG_USER = "postgres"

__all__ = ["DATABASE_ENV", "REDIS_ENV", "postgres_url", "redis_url", "stop_throwaway_servers"]


@dataclass
class _Throwaway:
    """A server this session started: its process, its directory, its URL."""

    kind: str
    proc: subprocess.Popen[bytes]
    root: Path
    url: str
    stop_signal: int

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


_lock = threading.Lock()
_urls: dict[str, str] = {}
_started: list[_Throwaway] = []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec_fn that asks the kernel to send `sig` to the child when the suite dies (a
    killed pytest leaves no server behind). Only from the main thread: the kernel sends it
    when the *thread* that started the child exits."""
    if threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG

    return arm


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            proc.kill()
            raise RuntimeError(f"throwaway {what} did not start (exit {proc.poll()}):\n{tail}")
        time.sleep(0.1)


# -- PostgreSQL --------------------------------------------------------------------------------
def _pg_bin(name: str) -> str:
    """`name` from the newest /usr/lib/postgresql/N/bin (Debian keeps initdb off PATH), or
    from PATH."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    ) if Path("/usr/lib/postgresql").is_dir() else []  # fmt: skip
    for folder in versions:
        if (folder / name).is_file():
            return str(folder / name)
    found = shutil.which(name)
    assert found, f"no {name}: install the PostgreSQL server (scripts/bootstrap.sh does)"
    return found


def _run_as() -> pwd.struct_passwd | None:
    """The account the server runs as: this one, or `postgres` (else `nobody`) as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and there is no postgres or nobody account")


def _pg_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _start_postgres() -> _Throwaway:
    root = Path(tempfile.mkdtemp(prefix="reelforge-test-pg-"))
    data, log = root / "data", root / "postgres.log"
    account = _run_as()
    uid = gid = None
    groups: list[int] | None = None
    if account is not None:
        uid, gid, groups = account.pw_uid, account.pw_gid, []
        os.chmod(root, 0o755)
        os.chown(root, uid, gid)
    init = subprocess.run(
        [_pg_bin("initdb"), "-D", str(data), "--auth=trust", "-U", PG_USER, "-E", "UTF8",
         "--no-sync", "--no-instructions"],
        capture_output=True, text=True, timeout=120, check=False, cwd=root,
        user=uid, group=gid, extra_groups=groups,
    )  # fmt: skip
    assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [_pg_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
             "-c", f"listen_addresses={LOCALHOST}", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=root,
            preexec_fn=_die_with_parent(signal.SIGINT),
            user=uid, group=gid, extra_groups=groups,
        )  # fmt: skip
    server = f"postgresql://{PG_USER}@{LOCALHOST}:{port}"
    _wait(lambda: _pg_answers(f"{server}/postgres"), proc, "PostgreSQL", log)
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{PG_ADMIN_DB}"')
    # SIGINT: PostgreSQL's fast shutdown (sessions are closed, nothing is waited for).
    return _Throwaway("postgres", proc, root, f"{server}/{PG_ADMIN_DB}", signal.SIGINT)


# -- Redis -------------------------------------------------------------------------------------
def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _start_redis() -> _Throwaway:
    root = Path(tempfile.mkdtemp(prefix="reelforge-test-redis-"))
    log = root / "redis.log"
    binary = shutil.which("redis-server")
    assert binary, "no redis-server: install it (scripts/bootstrap.sh does)"
    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", LOCALHOST, "--save", "",
             "--appendonly", "no", "--dir", str(root), "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=root,
            preexec_fn=_die_with_parent(signal.SIGTERM),
        )  # fmt: skip
    url = f"redis://{LOCALHOST}:{port}"
    _wait(lambda: _redis_answers(url), proc, "Redis", log)
    return _Throwaway("redis", proc, root, url, signal.SIGTERM)


# -- what the tests call -----------------------------------------------------------------------
def _server_url(kind: str) -> str:
    """The given URL (checked to answer) or the throwaway server's, started on first use."""
    env, answers, start = {
        "postgres": (DATABASE_ENV, _pg_answers, _start_postgres),
        "redis": (REDIS_ENV, _redis_answers, _start_redis),
    }[kind]
    with _lock:
        if kind not in _urls:
            given = os.environ.get(env, "").strip()
            if given:
                _urls[kind] = given
            else:
                server = start()
                _started.append(server)
                _urls[kind] = server.url
        url = _urls[kind]
    assert answers(url), f"{kind} at {url} does not answer ({env}={os.environ.get(env, '')!r})"
    return url


def postgres_url(database: str | None = None) -> str:
    """`postgresql://` URL of the test server: its admin database, or `database` on it."""
    url = _server_url("postgres")
    if database is None:
        return url
    parts = urlsplit(url)
    return parts._replace(path=f"/{database}").geturl()


def redis_url(db: int | None = None) -> str:
    """`redis://HOST:PORT` of the test server, or `redis://HOST:PORT/db`."""
    parts = urlsplit(_server_url("redis"))
    base = parts._replace(path="", query="", fragment="").geturl()
    return base if db is None else f"{base}/{db}"


def stop_throwaway_servers() -> None:
    """Stop what this session started (at session end; atexit as a second net)."""
    with _lock:
        while _started:
            server = _started.pop()
            _urls.pop(server.kind, None)
            server.stop()


atexit.register(stop_throwaway_servers)
