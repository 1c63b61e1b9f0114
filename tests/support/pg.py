"""A fresh PostgreSQL database for a test session, on the local server (trust auth).

`fresh_database()` makes sure the server at 127.0.0.1:5432 answers (starting the Debian cluster
when it does not, failing when it still does not), creates `reelforge_t_<random>`, yields its
`postgresql://` URL and drops it afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

HOST = os.environ.get("REELFORGE_TEST_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("REELFORGE_TEST_PG_PORT", "5432"))
USER = os.environ.get("REELFORGE_TEST_PG_USER", "postgres")
ADMIN_DB = os.environ.get("REELFORGE_TEST_PG_DB", "test")


def admin_url(database: str = ADMIN_DB) -> str:
    return f"postgresql://{USER}@{HOST}:{PORT}/{database}"


def _answers() -> bool:
    try:
        with psycopg.connect(admin_url(), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _start_cluster() -> None:
    versions = (
        sorted(p.name for p in Path("/etc/postgresql").iterdir())
        if Path("/etc/postgresql").is_dir()
        else []
    )
    assert versions, "PostgreSQL does not answer and no cluster is installed (/etc/postgresql)"
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
        capture_output=True,
        timeout=60,
    )


def ensure_server(wait_s: float = 30) -> None:
    """Start the local cluster if PostgreSQL does not answer; fail if it never does."""
    if _answers():
        return
    _start_cluster()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if _answers():
            return
        time.sleep(0.5)
    raise AssertionError(f"PostgreSQL at {HOST}:{PORT} does not answer (started the cluster)")


@contextmanager
def fresh_database() -> Iterator[str]:
    """Yield the URL of a new empty database; drop it (closing its sessions) afterwards."""
    ensure_server()
    name = "reelforge_t_" + secrets.token_hex(6)
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url(name)
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def schema_engine() -> Iterator[Any]:
    """A sync engine on a fresh database with the whole schema created; disposed after."""
    from api.core.db import create_schema, sync_engine
    from tests.support.api import make_settings

    with fresh_database() as url:
        engine = sync_engine(make_settings(Path("/tmp"), database_url=url))
        create_schema(engine)
        yield engine
        engine.dispose()
