"""A fresh PostgreSQL database for a test, on the test server (tests/support/servers.py).

`fresh_database()` creates `reelforge_t_<random>` on the server that `REELFORGE_TEST_DATABASE_URL`
names (or on the suite's own throwaway server when it names none), yields its `postgresql://`
URL and drops it afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from tests.support.servers import postgres_url


@contextmanager
def fresh_database() -> Iterator[str]:
    """Yield the URL of a new empty database; drop it (closing its sessions) afterwards."""
    admin = postgres_url()
    name = "reelforge_t_" + secrets.token_hex(6)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
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
