"""The copyright catalog's schema (SQLAlchemy Core, SQLite and PostgreSQL alike): reference
recordings, their landmark postings and what each reference put there (classifiers/catalog.py).

The catalog owns its tables on a `MetaData` of its own, so that classifiers/ needs nothing
from the API: the service's schema (api/core/tables.py) re-exports these tables, points
`copyright_claims.ref_id` at `audio_refs.id` by column, and `api.core.db.create_schema`
creates `catalog_metadata` first. A catalog alone (a bench, a separate file) is
`catalog_metadata.create_all(engine)`. Times are integer milliseconds since the Unix epoch, as
in the rest of the store.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

catalog_metadata = MetaData()

# Reference recordings, fingerprinted by classifiers/fingerprint.py. `policy` is what happens
# to an upload that uses the reference (api/safety/copyright.py): block | mute | allow.
audio_refs = Table(
    "audio_refs",
    catalog_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("owner", String(128), nullable=False),
    Column("policy", String(8), nullable=False, default="block"),
    Column("duration_s", Float, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# The catalog's inverted index (classifiers/catalog.py): one row per landmark hash, whose
# `entries` are the postings of every reference holding it, packed little-endian u32
# (ref_id, offset) pairs (`offset`: the anchor's frame, classifiers/fingerprint.FRAME_SECONDS).
# A lookup reads one row per hash of a clip instead of one per posting.
audio_postings = Table(
    "audio_postings",
    catalog_metadata,
    Column("hash", Integer, primary_key=True, autoincrement=False),
    Column("entries", LargeBinary, nullable=False),
)

# What a reference put into `audio_postings`: its landmark count and its distinct hashes
# (zlib-compressed little-endian u32 deltas), so that removing it touches only its own rows.
audio_ref_prints = Table(
    "audio_ref_prints",
    catalog_metadata,
    Column(
        "ref_id",
        Integer,
        ForeignKey("audio_refs.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("version", Integer, nullable=False),
    Column("landmarks", Integer, nullable=False),
    Column("hashes", LargeBinary, nullable=False),
)
