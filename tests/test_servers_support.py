"""The suite's PostgreSQL and Redis (tests/support/servers.py, issue 18): given ones are used
and must answer; without them the suite starts throwaway servers of its own, private (trust
auth on a free loopback port, a fresh directory) and gone when the session ends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.support.servers import DATABASE_ENV, REDIS_ENV, postgres_url, redis_url
from tests.support.services import free_port

PROBE = """
import json, sys
import psycopg, redis
from tests.support import servers
pg, rd = servers.postgres_url(), servers.redis_url()
with psycopg.connect(pg) as conn:
    user, socket_dir = conn.execute(
        "SELECT current_user, current_setting('unix_socket_directories')").fetchone()
    roots = [s.root for s in servers._started]
redis.Redis.from_url(rd).set("probe", "1")
print(json.dumps({"pg": pg, "redis": rd, "user": user, "socket_dir": socket_dir,
                  "roots": [str(r) for r in roots]}))
servers.stop_throwaway_servers()
"""


def run_probe(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in (DATABASE_ENV, REDIS_ENV)}
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env={**base, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def answers(url: str) -> bool:
    host, port = url.split("//", 1)[1].split("@")[-1].split("/")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def test_without_urls_the_suite_starts_private_servers_and_removes_them() -> None:
    done = run_probe()
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["pg"].startswith("postgresql://postgres@127.0.0.1:")
    assert seen["redis"].startswith("redis://127.0.0.1:")
    assert seen["user"] == "postgres"
    # Its socket in its own directory, not /var/run/postgresql: no clash with a system server.
    assert "reelforge-test-pg-" in seen["socket_dir"]
    assert len(seen["roots"]) == 2
    # Gone with the session: nothing listens, nothing left on disk.
    assert not answers(seen["pg"]) and not answers(seen["redis"])
    assert not any(Path(root).exists() for root in seen["roots"])


def test_given_urls_are_used_and_nothing_is_started() -> None:
    given_pg, given_redis = postgres_url(), redis_url()
    done = run_probe(**{DATABASE_ENV: given_pg, REDIS_ENV: given_redis})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert (seen["pg"], seen["redis"]) == (given_pg, given_redis)
    assert seen["roots"] == []


def test_a_given_server_that_does_not_answer_fails() -> None:
    dead = f"redis://127.0.0.1:{free_port()}"
    done = run_probe(**{REDIS_ENV: dead, DATABASE_ENV: postgres_url()})
    assert done.returncode != 0
    assert f"redis at {dead} does not answer" in done.stderr
