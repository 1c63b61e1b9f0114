"""The reference catalog in SQL: adding and removing references, looking up a clip's hashes,
and the best match above a threshold (issue 5, "Copyright: audio fingerprints").

The catalog is an inverted index, on SQLite (embedded) and PostgreSQL alike: `audio_postings`
holds one row per landmark hash whose blob lists every (reference, offset) that has it (a
query reads a row per hash of the clip, not a row per posting: 8× faster), and
`audio_ref_prints` what each reference put there (tables: classifiers/catalog_tables.py).
Hashes held by very many references are stop-words a query skips (`postings_cap`): they cost
most of the lookup and the votes, and bring mostly chance votes.

A query fetches the postings of the clip's hashes and lets them vote for a (reference,
offset) (classifiers/voting.py); a match needs `min_score` votes.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, Select, delete, func, insert, select

from classifiers.catalog_tables import audio_postings, audio_ref_prints, audio_refs
from classifiers.fingerprint import FORMAT_VERSION, HASH_BITS, Fingerprint
from classifiers.voting import Match, vote

Policy = Literal["block", "mute", "allow"]
POLICIES: tuple[Policy, ...] = ("block", "mute", "allow")
# Votes in the best offset bin (±1 frame) below which nothing matched. bench/fingerprint_eval.py
# (seeds 5 and 11): audio outside the catalog scored at most 16, and 93% of the degraded 2 s
# clips of catalog tracks at least 20.
DEFAULT_MIN_SCORE = 20
# Hashes per `IN (...)` list: short statements.
LOOKUP_CHUNK = 4000
# A posting: the reference and the anchor's frame, little-endian u32 each.
ENTRY = np.dtype("<u4")
ENTRY_BYTES = 2 * ENTRY.itemsize
# Stop-words: a query skips hashes held by more than STOP_FACTOR times the mean postings per
# hash (over the 2**HASH_BITS hash space), and never fewer than MIN_POSTINGS_CAP (audfprint
# keeps at most 100 per hash). On the 1,000-reference bench catalog the cap is 100: it drops
# a quarter of a clip's hashes but three quarters of their postings, mostly chance votes.
MIN_POSTINGS_CAP = 100
STOP_FACTOR = 6


def _now_ms() -> int:
    """Milliseconds since the Unix epoch, as every table of the metadata store keeps times."""
    return int(time.time() * 1000)


def add_reference(
    conn: Connection,
    name: str,
    owner: str,
    fingerprint: Fingerprint,
    policy: Policy = "block",
) -> int:
    """Store a reference (replacing one of the same name) and its postings; returns its id."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    old = conn.execute(select(audio_refs.c.id).where(audio_refs.c.name == name)).scalar()
    if old is not None:
        remove_reference(conn, int(old))
    ref_id = int(
        conn.execute(
            insert(audio_refs)
            .values(
                name=name,
                owner=owner,
                policy=policy,
                duration_s=round(fingerprint.duration_s, 3),
                created_at=_now_ms(),
            )
            .returning(audio_refs.c.id)
        ).scalar_one()
    )
    pairs = np.unique(np.stack([fingerprint.hashes, fingerprint.offsets], axis=1), axis=0)
    hashes = add_postings(conn, ref_id, pairs)
    conn.execute(
        insert(audio_ref_prints).values(
            ref_id=ref_id,
            version=FORMAT_VERSION,
            landmarks=len(pairs),
            hashes=_pack_hashes(hashes),
        )
    )
    return ref_id


def remove_reference(conn: Connection, ref_id: int) -> None:
    """Delete a reference: its postings (only the rows of its own hashes), then its rows."""
    packed = conn.execute(
        select(audio_ref_prints.c.hashes).where(audio_ref_prints.c.ref_id == ref_id)
    ).scalar()
    hashes = _unpack_hashes(packed) if packed is not None else np.zeros(0, np.int64)
    mark = _mark(conn)
    table = audio_postings.name
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    for start in range(0, len(hashes), LOOKUP_CHUNK):
        listed = ",".join(map(str, hashes[start : start + LOOKUP_CHUNK].tolist()))
        rows = conn.exec_driver_sql(
            f"SELECT hash, entries FROM {table} WHERE hash IN ({listed}) ORDER BY hash{lock}"
        ).all()
        kept, emptied = [], []
        for hash_, entries in rows:
            pairs = np.frombuffer(entries, dtype=ENTRY).reshape(-1, 2)
            rest = pairs[pairs[:, 0] != ref_id]
            if len(rest):
                kept.append((rest.tobytes(), hash_))
            else:
                emptied.append((hash_,))
        if kept:
            conn.exec_driver_sql(f"UPDATE {table} SET entries = {mark} WHERE hash = {mark}", kept)
        if emptied:
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE hash = {mark}", emptied)
    conn.execute(delete(audio_ref_prints).where(audio_ref_prints.c.ref_id == ref_id))
    conn.execute(delete(audio_refs).where(audio_refs.c.id == ref_id))


def stale_references(conn: Connection) -> list[str]:
    """Names of references with no fingerprint of this `FORMAT_VERSION` (added by an older
    version, whose postings this one does not read): no upload can match them."""
    joined = audio_refs.outerjoin(audio_ref_prints, audio_ref_prints.c.ref_id == audio_refs.c.id)
    query = (
        select(audio_refs.c.name)
        .select_from(joined)
        .where(audio_ref_prints.c.ref_id.is_(None) | (audio_ref_prints.c.version != FORMAT_VERSION))
        .order_by(audio_refs.c.name)
    )
    return list(conn.execute(query).scalars())


def remove_by_name(conn: Connection, names: Iterable[str]) -> list[str]:
    """Remove the named references; returns the names that are not in the catalog (then
    nothing is removed)."""
    wanted = list(dict.fromkeys(names))
    rows = conn.execute(
        select(audio_refs.c.name, audio_refs.c.id).where(audio_refs.c.name.in_(wanted))
    ).all()
    ids = {row.name: int(row.id) for row in rows}
    missing = [name for name in wanted if name not in ids]
    if not missing:
        for name in wanted:
            remove_reference(conn, ids[name])
    return missing


def add_postings(
    conn: Connection, ref_id: int, pairs: NDArray[np.integer[Any]]
) -> NDArray[np.int64]:
    """Append a reference's (hash, offset) pairs (sorted by hash) to the postings of their
    hashes, one upsert per hash (the concatenation happens in the database, so concurrent
    writers never lose each other's postings); returns the distinct hashes."""
    if not len(pairs):
        return np.zeros(0, np.int64)
    hashes = np.asarray(pairs[:, 0], dtype=np.int64)
    entries = np.empty((len(pairs), 2), dtype=ENTRY)
    entries[:, 0] = ref_id
    entries[:, 1] = pairs[:, 1]
    raw = entries.tobytes()
    heads = np.flatnonzero(np.diff(hashes, prepend=-1))
    bounds = np.append(heads, len(hashes)) * ENTRY_BYTES
    rows = [
        (int(h), raw[a:b])
        for h, a, b in zip(
            hashes[heads].tolist(), bounds[:-1].tolist(), bounds[1:].tolist(), strict=True
        )
    ]
    mark = _mark(conn)
    table = audio_postings.name
    joined = f"{table}.entries || excluded.entries"
    if conn.dialect.name != "postgresql":
        joined = f"CAST({joined} AS BLOB)"  # SQLite's || yields text; the bytes are kept
    statement = (
        f"INSERT INTO {table} (hash, entries) VALUES ({mark}, {mark}) "
        f"ON CONFLICT (hash) DO UPDATE SET entries = {joined}"
    )
    for start in range(0, len(rows), 50_000):
        conn.exec_driver_sql(statement, rows[start : start + 50_000])
    return hashes[heads]


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _pack_hashes(hashes: NDArray[np.int64]) -> bytes:
    deltas = np.diff(np.sort(hashes), prepend=0).astype("<u4")
    return zlib.compress(deltas.tobytes(), 6)


def _unpack_hashes(packed: bytes) -> NDArray[np.int64]:
    return np.cumsum(np.frombuffer(zlib.decompress(packed), dtype="<u4").astype(np.int64))


def postings_cap(conn: Connection) -> int:
    """The most postings a hash may have and still be looked up: `STOP_FACTOR` times the mean
    over the hash space, and never below `MIN_POSTINGS_CAP`."""
    total = conn.execute(
        select(func.coalesce(func.sum(audio_ref_prints.c.landmarks), 0))
    ).scalar_one()
    return max(MIN_POSTINGS_CAP, math.ceil(STOP_FACTOR * int(total) / (1 << HASH_BITS)))


def lookup(
    conn: Connection, hashes: Iterable[int], max_postings: int | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The postings of `hashes` as (hashes, ref_ids, offsets) arrays, grouped by hash; hashes
    with more than `max_postings` postings are left out (stop-words: they cost the most and
    say the least).

    The hot path of a query: the hashes are our own integers, written into the statement as
    literals; each hash is one primary-key row whose blob numpy reads as it is.
    """
    unique = sorted({int(h) for h in hashes})
    keys: list[int] = []
    blobs: list[bytes] = []
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for start in range(0, len(unique), LOOKUP_CHUNK):
            listed = ",".join(map(str, unique[start : start + LOOKUP_CHUNK]))
            cursor.execute(
                f"SELECT hash, entries FROM {audio_postings.name} WHERE hash IN ({listed})"
            )
            for hash_, entries in cursor.fetchall():
                if max_postings is None or len(entries) <= max_postings * ENTRY_BYTES:
                    keys.append(hash_)
                    blobs.append(entries)
    finally:
        cursor.close()
    counts = np.fromiter((len(blob) // ENTRY_BYTES for blob in blobs), np.int64, len(blobs))
    if not blobs:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    pairs = np.frombuffer(b"".join(blobs), dtype=ENTRY).reshape(-1, 2).astype(np.int64)
    return np.repeat(np.asarray(keys, dtype=np.int64), counts), pairs[:, 0], pairs[:, 1]


def vote_for(conn: Connection, query: Fingerprint, max_postings: int | None = None) -> Match | None:
    """The best (reference, offset) for the clip however weak, without the reference's names;
    hashes over `max_postings` postings (by default `postings_cap`) are not looked up."""
    if len(query) == 0:
        return None
    cap = postings_cap(conn) if max_postings is None else max_postings
    return vote(query, *lookup(conn, query.hashes.tolist(), cap))


def match(
    conn: Connection,
    query: Fingerprint,
    min_score: int = DEFAULT_MIN_SCORE,
    max_postings: int | None = None,
) -> Match | None:
    """The catalog's best reference for the clip, or None below `min_score` votes."""
    best = vote_for(conn, query, max_postings)
    if best is None or best.score < min_score:
        return None
    ref = conn.execute(
        select(audio_refs.c.name, audio_refs.c.owner, audio_refs.c.policy).where(
            audio_refs.c.id == best.ref_id
        )
    ).one()
    return Match(best.ref_id, best.score, best.offset_frames, ref.name, ref.owner, ref.policy)


def count_postings() -> Select[Any]:
    """How many postings (reference landmarks) the catalog holds."""
    return select(func.coalesce(func.sum(audio_ref_prints.c.landmarks), 0))
