"""Landmark fingerprints (classifiers/fingerprint.py) and catalog matching (classifiers/catalog.py)
on real music: a small version of bench/fingerprint_eval.py (issue 5, "Evidence": fingerprints).

Needs Debian's `extremetuxracer-data` (scripts/bootstrap.sh installs it); without it these
tests fail, they never skip.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage, signal
from sqlalchemy import select, update

from api.core.db import create_schema, sync_engine
from api.core.settings import Settings
from api.core.tables import audio_postings, audio_ref_prints, audio_refs
from bench import fingerprint_eval as ev
from classifiers import catalog, filters, voting
from classifiers.fingerprint import (
    FORMAT_VERSION,
    FRAME_SECONDS,
    HASH_BITS,
    HOP,
    QUERY_PARAMS,
    SAMPLE_RATE,
    Fingerprint,
    StreamingDownsampler,
    fingerprint,
    load_audio,
    spectrogram,
)
from tests.conftest import ROOT
from tests.support.pg import fresh_database

# Four tracks of different composers and lengths, none built of exact loops (the evaluation
# reports looped passages apart: a clip of one matches its repeat as well).
TRACKS = ("credits1-cp.ogg", "freezingpoint.ogg", "options1-jt.ogg", "wonrace1-jt.ogg")


def test_the_real_music_is_installed() -> None:
    names = {path.name for path in ev.music_tracks()}
    assert len(names) == 10, "apt-get install -y extremetuxracer-data"
    assert set(TRACKS) <= names


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[Any]]]:
    engine = ev.open_catalog(tmp_path_factory.mktemp("catalog"))
    with engine.begin() as conn:
        references, speed = ev.build_catalog(conn, [ev.MUSIC_DIR / name for name in TRACKS])
    assert speed["x_realtime"] > 1
    try:
        yield engine, references
    finally:
        engine.dispose()


@pytest.mark.parametrize(("seconds", "count", "needed"), [(5.0, 8, 8), (2.0, 8, 7)])
def test_degraded_clips_are_found_at_their_offset(
    small_catalog: tuple[Any, list[Any]], seconds: float, count: int, needed: int
) -> None:
    """Clips from random offsets, pink noise at 10 dB SNR, AAC 64 kb/s: right track, ±0.1 s."""
    engine, references = small_catalog
    with engine.connect() as conn:
        outcome = ev.query_clips(conn, references, seconds, count, np.random.default_rng(11))
    assert outcome["found"] >= needed, outcome["misses"]
    assert outcome["found_at_a_repeat"] == 0


def test_audio_outside_the_catalog_matches_nothing(small_catalog: tuple[Any, list[Any]]) -> None:
    """Synthesized music, speech-like sound, tones, noise and the shared clips' soundtracks."""
    engine, _ = small_catalog
    with engine.connect() as conn:
        outcome = ev.false_matches(conn, 12, 5.0, np.random.default_rng(12))
    assert outcome["false_matches"] == 0, outcome["matches"]
    assert set(outcome["highest_score_by_kind"]) == {*ev.GENERATORS, "shared_media"}
    assert max(outcome["highest_score_by_kind"].values()) < catalog.DEFAULT_MIN_SCORE


def test_an_undegraded_clip_scores_far_above_the_threshold(
    small_catalog: tuple[Any, list[Any]],
) -> None:
    engine, _ = small_catalog
    samples = load_audio(ev.MUSIC_DIR / "freezingpoint.ogg")
    clip = samples[40 * SAMPLE_RATE + 1234 : 45 * SAMPLE_RATE]
    with engine.connect() as conn:
        found = catalog.match(conn, fingerprint(clip, QUERY_PARAMS))
    assert found is not None and found.name == "freezingpoint.ogg"
    assert abs(found.offset_s - (40 + 1234 / SAMPLE_RATE)) <= FRAME_SECONDS
    assert found.score > 10 * catalog.DEFAULT_MIN_SCORE


def test_silence_has_no_landmarks() -> None:
    assert len(fingerprint(np.zeros(5 * SAMPLE_RATE, np.float32))) == 0
    assert len(fingerprint(np.zeros(10, np.float32))) == 0


def test_fingerprint_json_round_trip() -> None:
    samples = load_audio(ev.MUSIC_DIR / "options1-jt.ogg", max_seconds=6)
    assert len(samples) == 6 * SAMPLE_RATE
    original = fingerprint(samples)
    data = original.to_json()
    assert data["count"] == len(original) > 100
    assert data["duration_s"] == 6.0
    back = Fingerprint.from_json(data)
    assert np.array_equal(back.hashes, original.hashes)
    assert np.array_equal(back.offsets, original.offsets)
    assert len(data["hashes"]) < 8 * len(original)  # compressed below raw (hash, offset) pairs
    with pytest.raises(ValueError, match="format"):
        Fingerprint.from_json({**data, "version": 99})


@pytest.mark.parametrize("prefilter_above", [voting.PREFILTER_PAIRS, 0])
def test_vote_finds_the_offset_consistent_reference(prefilter_above: int) -> None:
    """Table test of the scoring: aligned votes beat more numerous scattered ones."""
    query = Fingerprint(
        np.array([1, 2, 3, 4, 5], np.uint32), np.array([0, 3, 5, 9, 12], np.uint32), 1.0
    )
    # ref 7: every hash 100 frames later (one split to the neighbouring bin); ref 8: all five
    # hashes twice, at scattered offsets.
    rows = [(1, 7, 100), (2, 7, 103), (3, 7, 105), (4, 7, 110), (5, 7, 112)]
    rows += [(h, 8, o) for h in range(1, 6) for o in (h * 37, 500 + h * 11)]
    hashes, refs, offsets = (np.array(column) for column in zip(*rows, strict=True))
    best = voting.vote(query, hashes, refs, offsets, prefilter_above)
    assert best is not None
    assert (best.ref_id, best.score) == (7, 5)
    assert best.offset_frames == pytest.approx(100.2)
    assert voting.vote(query, hashes[:0], refs[:0], offsets[:0], prefilter_above) is None


def test_the_vote_prefilter_changes_no_answer(small_catalog: tuple[Any, list[Any]]) -> None:
    """Dropping the hopeless votes first (`voting._contenders`) gives the same reference,
    score and offset as voting over all of them: clips of catalog tracks and foreign audio."""
    engine, references = small_catalog
    rng = np.random.default_rng(13)
    clips = [ev.draw_clip(references, seconds, rng)[2] for seconds in (5.0, 2.0, 5.0, 2.0)]
    clips += [clip for _, clip in ev.non_catalog_clips(8, 5.0, rng)]
    answers = []
    with engine.connect() as conn:
        for clip in clips:
            query = fingerprint(ev.degrade(clip, rng), QUERY_PARAMS)
            rows = catalog.lookup(conn, query.hashes.tolist())
            everything = voting.vote(query, *rows, prefilter_above=10**12)
            assert voting.vote(query, *rows, prefilter_above=0) == everything
            answers.append(everything)
    assert sum(answer is not None for answer in answers) >= 8


def test_query_shifts_pool_the_landmarks_of_a_clip_between_frames() -> None:
    """A clip that starts half a hop off the reference's frames: the landmarks pooled over
    four time shifts agree with the reference more often than those of one, and each hash
    appears once within ±1 frame."""
    samples = load_audio(ev.MUSIC_DIR / "freezingpoint.ogg", max_seconds=50)
    reference = fingerprint(samples)
    rows = (reference.hashes, np.zeros(len(reference), np.int64), reference.offsets)
    start = 40 * SAMPLE_RATE + HOP // 2
    clip = samples[start : start + 5 * SAMPLE_RATE]
    single = voting.vote(fingerprint(clip, replace(QUERY_PARAMS, shifts=1)), *rows)
    pooled_print = fingerprint(clip, QUERY_PARAMS)
    pooled = voting.vote(pooled_print, *rows)
    assert single is not None and pooled is not None
    assert abs(pooled.offset_frames - start / HOP) <= 1
    assert pooled.score > 2 * single.score
    order = np.lexsort((pooled_print.offsets, pooled_print.hashes))
    hashes, offsets = pooled_print.hashes[order], pooled_print.offsets[order].astype(np.int64)
    assert not np.any((hashes[1:] == hashes[:-1]) & (np.diff(offsets) <= 1))
    back = Fingerprint.from_json(pooled_print.to_json())
    assert np.array_equal(back.offsets, pooled_print.offsets)


@pytest.mark.parametrize("shifts", [0, 3])
def test_shifts_that_do_not_divide_the_hop_are_refused(shifts: int) -> None:
    with pytest.raises(ValueError, match="shifts must divide the hop"):
        fingerprint(np.zeros(SAMPLE_RATE, np.float32), replace(QUERY_PARAMS, shifts=shifts))


@pytest.mark.parametrize("chunk", [1024, 960, 4801])
def test_streaming_downsampler_equals_resample_poly(chunk: int) -> None:
    """The analyzer's block-wise 48 kHz → 8 kHz equals resampling the whole signal at once."""
    rng = np.random.default_rng(chunk)
    signal_48k = rng.standard_normal(48_000 * 3 + 777).astype(np.float32)
    downsampler = StreamingDownsampler(48_000, block=48_000)
    for start in range(0, len(signal_48k), chunk):
        downsampler.push(signal_48k[start : start + chunk])
    streamed = downsampler.finish()
    whole = signal.resample_poly(signal_48k, 1, 6, padtype="constant")
    assert len(streamed) == len(whole)
    assert np.max(np.abs(streamed - whole)) < 1e-4


@pytest.mark.parametrize("length", [1, 5, 6, 7, 48_000, 48_127])
@pytest.mark.parametrize("factor", [2, 6])
def test_decimate_equals_resample_poly(length: int, factor: int) -> None:
    x = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    ours = filters.decimate(x, factor)
    scipy_answer = signal.resample_poly(x, 1, factor, padtype="constant")
    assert ours.dtype == np.float32 and ours.shape == scipy_answer.shape
    assert np.max(np.abs(ours - scipy_answer), initial=0.0) < 1e-6


@pytest.fixture(scope="module")
def real_spectrogram(media: Path) -> np.ndarray:
    return spectrogram(load_audio(media / "toothsome-dts.mp4", max_seconds=20))


@pytest.mark.parametrize("size", [(9, 17), (9, 9), (1, 1), (3, 5), (1, 7)])
def test_maximum_filter_equals_ndimage(real_spectrogram: np.ndarray, size: tuple[int, int]) -> None:
    expected = ndimage.maximum_filter(real_spectrogram, size=size, mode="constant", cval=-1e9)
    assert np.array_equal(filters.maximum_filter(real_spectrogram, size), expected)


@pytest.mark.parametrize("size", [1, 3, 129])
def test_moving_mean_equals_uniform_filter1d(real_spectrogram: np.ndarray, size: int) -> None:
    expected = ndimage.uniform_filter1d(real_spectrogram, size, axis=0, mode="nearest")
    ours = filters.moving_mean_rows(real_spectrogram, size)
    assert ours.dtype == expected.dtype
    assert np.max(np.abs(ours - expected)) < 1e-4


def test_even_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        filters.maximum_filter(np.zeros((4, 4), np.float32), (2, 3))
    with pytest.raises(ValueError, match="odd"):
        filters.moving_mean_rows(np.zeros((4, 4), np.float32), 4)


def test_the_transcode_child_does_not_import_scipy() -> None:
    """What every sandboxed transcode child imports, with all analyzers (onnxruntime and
    pdqhash included); SciPy's signal and ndimage would cost it ~1 s before the first frame."""
    modules = "engine.jobs, classifiers.fingerprint, classifiers.pdq, onnxruntime, pdqhash"
    code = f"import sys, {modules}; print(any(m.startswith('scipy') for m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False", out.stderr


def test_load_audio_rejects_files_without_audio(media: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no audio stream"):
        load_audio(media / "sar_2x1.mp4")
    text = tmp_path / "notes.mp3"
    text.write_text("not audio\n")
    with pytest.raises(ValueError):
        load_audio(text)


def test_the_catalog_answers_the_same_on_postgresql(
    small_catalog: tuple[Any, list[Any]], tmp_path: Path
) -> None:
    """The production database: same rows back for the same hashes, same match."""
    sqlite_engine, _ = small_catalog
    samples = load_audio(ev.MUSIC_DIR / "options1-jt.ogg")
    query = fingerprint(samples[3 * SAMPLE_RATE : 8 * SAMPLE_RATE], QUERY_PARAMS)
    with fresh_database() as url:
        settings = Settings(data_dir=tmp_path, database_url=url).resolved()
        engine = sync_engine(settings)
        try:
            create_schema(engine)
            with engine.begin() as conn:
                for name in TRACKS:
                    reference = fingerprint(load_audio(ev.MUSIC_DIR / name))
                    catalog.add_reference(conn, name, "etr", reference, "mute")
            with engine.connect() as conn:
                assert conn.dialect.name == "postgresql"
                pg_rows = catalog.lookup(conn, query.hashes.tolist())
                found = catalog.match(conn, query)
        finally:
            engine.dispose()
    with sqlite_engine.connect() as conn:
        sqlite_rows = catalog.lookup(conn, query.hashes.tolist())
    assert len(pg_rows[0]) > 1000
    assert sorted(zip(*(a.tolist() for a in pg_rows), strict=True)) == sorted(
        zip(*(a.tolist() for a in sqlite_rows), strict=True)
    )
    assert found is not None
    assert (found.name, found.policy) == ("options1-jt.ogg", "mute")
    assert abs(found.offset_s - 3.0) <= FRAME_SECONDS


def _toy(hashes: list[int], offsets: list[int]) -> Fingerprint:
    return Fingerprint(np.array(hashes, np.uint32), np.array(offsets, np.uint32), 1.0)


def _all_postings(conn: Any) -> dict[int, list[tuple[int, int]]]:
    """Every row of the inverted index, decoded: hash → sorted (ref_id, offset) postings."""
    rows = conn.execute(select(audio_postings.c.hash, audio_postings.c.entries)).all()
    return {
        int(hash_): sorted(map(tuple, np.frombuffer(entries, "<u4").reshape(-1, 2).tolist()))
        for hash_, entries in rows
    }


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_postings_are_appended_replaced_and_removed_per_reference(
    database: str, tmp_path: Path
) -> None:
    """The inverted index on both databases: adding appends each reference's postings to the
    rows of its hashes; adding a name again replaces only that reference's postings; removing
    it deletes the rows it alone held."""
    with fresh_database() if database == "postgresql" else nullcontext(None) as url:
        settings = Settings(data_dir=tmp_path, database_url=url).resolved()
        engine = sync_engine(settings)
        try:
            create_schema(engine)
            with engine.begin() as conn:
                a = catalog.add_reference(conn, "a", "o", _toy([5, 7, 7, 9], [1, 2, 8, 3]))
                b = catalog.add_reference(conn, "b", "o", _toy([7, 11], [4, 6]))
                assert _all_postings(conn) == {
                    5: [(a, 1)],
                    7: [(a, 2), (a, 8), (b, 4)],
                    9: [(a, 3)],
                    11: [(b, 6)],
                }
                a2 = catalog.add_reference(conn, "a", "p", _toy([9, 13], [0, 2]))
                assert _all_postings(conn) == {
                    7: [(b, 4)],
                    9: [(a2, 0)],
                    11: [(b, 6)],
                    13: [(a2, 2)],
                }
                assert conn.execute(catalog.count_postings()).scalar_one() == 4
                catalog.remove_reference(conn, b)
                assert _all_postings(conn) == {9: [(a2, 0)], 13: [(a2, 2)]}
                names = conn.execute(select(audio_refs.c.name)).scalars().all()
                assert names == ["a"]
                # References an older version fingerprinted (another format, or none) are
                # stale; removing by name takes all or nothing.
                assert catalog.stale_references(conn) == []
                catalog.add_reference(conn, "c", "o", _toy([21], [1]))
                conn.execute(update(audio_ref_prints).values(version=FORMAT_VERSION - 1))
                conn.execute(audio_refs.insert().values(
                    name="d", owner="o", policy="block", duration_s=1.0, created_at=0
                ))  # fmt: skip
                assert catalog.stale_references(conn) == ["a", "c", "d"]
                assert catalog.remove_by_name(conn, ["c", "zz"]) == ["zz"]
                assert catalog.remove_by_name(conn, ["c", "d", "c"]) == []
                assert catalog.stale_references(conn) == ["a"]
                assert _all_postings(conn) == {9: [(a2, 0)], 13: [(a2, 2)]}
        finally:
            engine.dispose()


def test_queries_skip_hashes_held_by_too_many_references(tmp_path: Path) -> None:
    """Stop-words: a hash with more than `max_postings` postings is not looked up, and the cap
    grows with the catalog, never below `MIN_POSTINGS_CAP`."""
    engine = ev.open_catalog(tmp_path)
    try:
        with engine.begin() as conn:
            assert catalog.postings_cap(conn) == catalog.MIN_POSTINGS_CAP
            for i in range(3):
                catalog.add_reference(conn, f"r{i}", "o", _toy([42, 100 + i], [i, 7]))
            hashes, _, offsets = catalog.lookup(conn, [42, 100, 101], max_postings=2)
            assert sorted(zip(hashes.tolist(), offsets.tolist(), strict=True)) == [
                (100, 7),
                (101, 7),
            ]
            assert len(catalog.lookup(conn, [42, 100, 101], max_postings=3)[0]) == 5
            assert catalog.postings_cap(conn) == catalog.MIN_POSTINGS_CAP
        # A catalog of `mean` postings per hash (over the hash space) caps at STOP_FACTOR × mean.
        mean = 3 * catalog.MIN_POSTINGS_CAP
        space = 1 << HASH_BITS
        with engine.begin() as conn:
            conn.execute(update(audio_ref_prints).values(landmarks=mean * space // 3))
            assert catalog.postings_cap(conn) == catalog.STOP_FACTOR * mean
    finally:
        engine.dispose()
