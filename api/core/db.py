"""Database engines for the API (async) and the workers (sync), on SQLite or PostgreSQL."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api.core.settings import Settings
from api.core.tables import added_indexes, metadata
from classifiers.catalog_tables import catalog_metadata

ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str, length: int = 16) -> str:
    """A random public id, e.g. `v_k3j9...` (Crockford-ish base32, 80 bits by default)."""
    return prefix + "_" + "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while a worker thread writes; busy_timeout waits instead of failing.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def async_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: it costs three round trips per checkout on asyncpg (BEGIN, `;`, ROLLBACK).
    # A connection the server dropped (a restart) fails the request that uses it, and
    # SQLAlchemy's disconnect handling then invalidates every older connection of the pool,
    # so the next requests reconnect; `pool_recycle` retires idle ones before firewalls do.
    # `pool_size` covers the requests one process serves at once: connections made past it
    # are closed again on return, and a new one costs several round trips (and TLS).
    return create_async_engine(url, pool_size=20, max_overflow=20, pool_recycle=1800)


def read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same pool in autocommit, for single reads: on PostgreSQL a read is then one round
    trip instead of BEGIN, the query and ROLLBACK. (SQLite's driver opens no transaction for a
    SELECT in the first place.)"""
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def sync_engine(settings: Settings) -> Engine:
    url = settings.sync_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create missing tables, and the indexes added to existing ones since
    (`api.core.tables.added_indexes`; idempotent; safe when several processes start at once)."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    # The catalog's first: `copyright_claims` has a foreign key into `audio_refs`.
    for schema in (catalog_metadata, metadata):
        try:
            schema.create_all(engine)
        except (IntegrityError, ProgrammingError):
            # Another process created the same table between our check and our CREATE.
            schema.create_all(engine)
    for index in added_indexes():
        try:
            index.create(engine, checkfirst=True)
        except (IntegrityError, OperationalError, ProgrammingError):
            index.create(engine, checkfirst=True)  # another process created it meanwhile


def dialect_insert(dialect_name: str) -> Any:
    """The dialect's own `insert` construct (it has `on_conflict_do_nothing/_update`).

    PostgreSQL and SQLite (≥ 3.24) share the `INSERT ... ON CONFLICT` syntax; SQLAlchemy
    exposes it per dialect, so callers pass `conn.dialect.name`.
    """
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def insert_ignore(
    dialect_name: str, table: Table, rows: dict[str, Any] | list[dict[str, Any]]
) -> Any:
    """`INSERT ... ON CONFLICT DO NOTHING`; rowcount (or RETURNING) tells what was inserted."""
    return dialect_insert(dialect_name)(table).values(rows).on_conflict_do_nothing()
