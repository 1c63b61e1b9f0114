"""The reference catalog in SQL, and matching by offset-consistent votes (issue 5, "Copyright:
audio fingerprints"; Wang 2003 §2.3 "searching and scoring").

The catalog is an inverted index, on SQLite (embedded) and PostgreSQL alike: `audio_postings`
holds one row per landmark hash whose blob lists every (reference, offset) that has it (a
query reads a row per hash of the clip, not a row per posting: 8× faster), and
`audio_ref_prints` what each reference put there (tables: classifiers/catalog_tables.py).
Hashes held by very many references are stop-words a query skips (`postings_cap`): they cost
most of the lookup and the votes, and bring mostly chance votes.

A query fetches the postings of the clip's hashes; for each reference it histograms
`ref_offset − query_offset`: a clip taken from the reference piles its votes into one bin
(where it starts in the reference), chance coincidences spread over all bins. The score is the
tallest bin plus its two neighbours (a clip's frames fall between the reference's, so a peak
may move by one frame); a match needs `min_score`. Queries pool their landmarks over time
shifts, one per hash and ±1 frame (classifiers/fingerprint.py), so a posting gets one vote
from each landmark.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, Select, delete, func, insert, select

from classifiers.catalog_tables import audio_postings, audio_ref_prints, audio_refs
from classifiers.fingerprint import FORMAT_VERSION, FRAME_SECONDS, HASH_BITS, Fingerprint

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
_SHIFT = 1 << 31
# Above this many (row, query landmark) pairs, `vote` first drops the votes that cannot be the
# winner's (`_contenders`, about twice as fast on a 1,000-reference catalog): counted in buckets
# of 2**_BUCKET_BITS frames, in a hashed table of 2**_TABLE_BITS counters.
PREFILTER_PAIRS = 20_000
_BUCKET_BITS = 2
_TABLE_BITS = 18


def _now_ms() -> int:
    """Milliseconds since the Unix epoch, as every table of the metadata store keeps times."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Match:
    """The best reference for a clip: where in it the clip starts, and how many votes agree."""

    ref_id: int
    score: int
    offset_frames: float
    name: str = ""
    owner: str = ""
    policy: str = "block"

    @property
    def offset_s(self) -> float:
        return self.offset_frames * FRAME_SECONDS

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "owner": self.owner,
            "offset_s": round(self.offset_s, 3),
            "score": self.score,
        }


def vote(
    query: Fingerprint,
    hashes: NDArray[np.integer[Any]],
    ref_ids: NDArray[np.integer[Any]],
    ref_offsets: NDArray[np.integer[Any]],
    prefilter_above: int = PREFILTER_PAIRS,
) -> Match | None:
    """The reference whose rows agree with the clip on one time difference most often.

    `hashes`, `ref_ids`, `ref_offsets` are the catalog rows that share a hash with the query,
    in any order. Returns the best (ref, offset) even when weak; the caller applies a threshold.
    With more than `prefilter_above` votes, the hopeless ones are dropped first (same result).
    """
    if len(query) == 0 or len(hashes) == 0:
        return None
    keys = _vote_keys(query, hashes, ref_ids, ref_offsets)
    if len(keys) == 0:
        return None
    if len(keys) > prefilter_above:
        keys = _contenders(keys)
    bins, below, above, scores = _window_scores(keys)
    best = int(np.argmax(scores))
    key = int(bins[best])
    centre = (key & 0xFFFFFFFF) - _SHIFT
    weight = int(scores[best])
    offset = centre + (int(above[best]) - int(below[best])) / weight
    return Match(ref_id=key >> 32, score=weight, offset_frames=offset)


def _vote_keys(
    query: Fingerprint,
    hashes: NDArray[np.integer[Any]],
    ref_ids: NDArray[np.integer[Any]],
    ref_offsets: NDArray[np.integer[Any]],
) -> NDArray[np.int64]:
    """One vote per (catalog row, query landmark) of the same hash: `ref_id << 32` plus the
    time difference `ref_offset − query_offset` (shifted positive)."""
    order = np.argsort(query.hashes, kind="stable")
    q_hashes = query.hashes[order].astype(np.int64)
    q_offsets = query.offsets[order].astype(np.int64)
    row_hashes = np.asarray(hashes, dtype=np.int64)
    # Rows come grouped by hash (catalog.lookup): find each run's query range once.
    heads = np.flatnonzero(np.diff(row_hashes, prepend=row_hashes[0] - 1))
    run_lengths = np.diff(heads, append=len(row_hashes))
    run_lo = np.searchsorted(q_hashes, row_hashes[heads], side="left")
    run_counts = np.searchsorted(q_hashes, row_hashes[heads], side="right") - run_lo
    lo = np.repeat(run_lo, run_lengths)
    counts = np.repeat(run_counts, run_lengths)
    total = int(counts.sum())
    row = np.repeat(np.arange(len(row_hashes)), counts)
    starts = np.cumsum(counts) - counts
    q_index = lo[row] + (np.arange(total) - starts[row])
    diff = np.asarray(ref_offsets, dtype=np.int64)[row] - q_offsets[q_index]
    return (np.asarray(ref_ids, dtype=np.int64)[row] << 32) + (diff + _SHIFT)


def _window_scores(
    keys: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Each occupied bin (sorted), the votes one frame below and above it, and its ±1 score."""
    bins, votes = np.unique(keys, return_counts=True)
    below = _neighbour_votes(bins, votes, -1)
    above = _neighbour_votes(bins, votes, +1)
    return bins, below, above, votes + below + above


def _contenders(keys: NDArray[np.int64]) -> NDArray[np.int64]:
    """The votes that can count toward the winning bin's score; the rest go unsorted.

    A vote at time difference x counts for the bins x−1..x+1, whose ±1 scores gather votes
    from x−2..x+2: all inside the vote's coarse bucket and the two beside it, so no bin it
    counts for scores more than those three buckets hold (table collisions only add). The
    exact best score near the fullest buckets is a floor the winner reaches; every vote of a
    bin that can reach it has buckets holding at least that much and is kept, so `vote` picks
    the same bin with the same score and offset as over all the votes.
    """
    bucket = keys >> _BUCKET_BITS
    slot = _slot(bucket)
    counts = np.bincount(slot, minlength=1 << _TABLE_BITS)
    window = counts[_slot(bucket - 1)] + counts[slot] + counts[_slot(bucket + 1)]
    top = bucket[int(np.argmax(window))]
    floor = int(_window_scores(keys[np.abs(bucket - top) <= 2])[3].max())
    return keys[window >= floor]


def _slot(bucket: NDArray[np.int64]) -> NDArray[np.int64]:
    """A bucket's counter in the table (a multiplicative hash; int64 products wrap)."""
    mixed = (bucket ^ (bucket >> 27)) * -7046029254386353131  # 0x9E3779B97F4A7C15 as int64
    return (mixed >> 40) & ((1 << _TABLE_BITS) - 1)


def _neighbour_votes(
    bins: NDArray[np.int64], votes: NDArray[np.int64], step: int
) -> NDArray[np.int64]:
    """Votes in the bin `step` (±1) frames away from each bin: in sorted unique bins, that bin
    can only be the adjacent entry (0 when absent or another reference's)."""
    result = np.zeros_like(votes)
    adjacent = np.diff(bins) == 1
    if step < 0:
        result[1:] = np.where(adjacent, votes[:-1], 0)
    else:
        result[:-1] = np.where(adjacent, votes[1:], 0)
    return result


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
