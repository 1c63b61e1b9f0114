"""`reelforge catalog add|match` on the embedded database under REELFORGE_DATA_DIR (issue 5,
"Copyright: audio fingerprints"): the JSON answer, null on no match, exit codes, bad files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api.core.db import create_schema, sync_engine
from api.core.settings import Settings
from api.core.tables import audio_postings, audio_refs
from bench.fingerprint_eval import MUSIC_DIR
from classifiers import catalog
from classifiers.catalog import DEFAULT_MIN_SCORE
from tests.conftest import ROOT

OWNER = "Joseph Toscano"


def reelforge(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REELFORGE_DATA_DIR": str(data_dir)}
    env.pop("REELFORGE_DATABASE_URL", None)
    env.pop("REELFORGE_MODE", None)
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
        check=False,
    )


def aac_clip(source: Path, dest: Path, start: float, seconds: float) -> Path:
    """A piece of `source` re-encoded to AAC 64 kb/s in an MP4, as an upload would carry it."""
    cut = ["-ss", str(start), "-t", str(seconds), "-i", str(source)]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *cut, "-c:a", "aac", "-b:a", "64k", str(dest)],
        check=True,
        timeout=120,
    )
    return dest


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog with two tracks, added in one command."""
    folder = tmp_path_factory.mktemp("reelforge-data")
    tracks = [str(MUSIC_DIR / "race1-jt.ogg"), str(MUSIC_DIR / "start1-jt.ogg")]
    done = reelforge(folder, "catalog", "add", *tracks, "--owner", OWNER, "--policy", "mute")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("added race1-jt.ogg (ref ") and "policy mute" in lines[0]
    return folder


def catalog_rows(data_dir: Path) -> tuple[list[tuple[str, str, str]], int]:
    engine = sync_engine(Settings(data_dir=data_dir).resolved())
    create_schema(engine)
    try:
        with engine.connect() as conn:
            refs = conn.execute(
                select(audio_refs.c.name, audio_refs.c.owner, audio_refs.c.policy).order_by(
                    audio_refs.c.name
                )
            ).all()
            # Postings actually in the index (8 bytes each), not what the references declare.
            size = func.coalesce(func.sum(func.length(audio_postings.c.entries)), 0)
            hashes = conn.execute(select(size)).scalar_one() // catalog.ENTRY_BYTES
    finally:
        engine.dispose()
    return [tuple(row) for row in refs], int(hashes)


def test_add_stores_references_under_the_data_dir(data_dir: Path) -> None:
    assert (data_dir / "reelforge.db").is_file()
    refs, hashes = catalog_rows(data_dir)
    assert refs == [("race1-jt.ogg", OWNER, "mute"), ("start1-jt.ogg", OWNER, "mute")]
    assert hashes > 10_000


def test_match_json_names_the_reference_and_offset(data_dir: Path, tmp_path: Path) -> None:
    clip = aac_clip(MUSIC_DIR / "start1-jt.ogg", tmp_path / "upload.m4a", 21.5, 5)
    done = reelforge(data_dir, "catalog", "match", str(clip), "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert set(answer) == {"file", "owner", "offset_s", "score"}
    assert answer["file"] == "start1-jt.ogg"
    assert answer["owner"] == OWNER
    assert abs(answer["offset_s"] - 21.5) <= 0.1
    assert isinstance(answer["score"], int) and answer["score"] >= DEFAULT_MIN_SCORE


def test_match_reads_video_files_and_prints_a_line(data_dir: Path, tmp_path: Path) -> None:
    clip = tmp_path / "upload.mp4"
    video = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15"]
    audio = ["-ss", "30", "-i", str(MUSIC_DIR / "race1-jt.ogg")]
    codecs = ["-t", "4", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac"]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *video, *audio, *codecs, "-preset", "ultrafast", str(clip)],
        check=True,
        timeout=120,
    )
    done = reelforge(data_dir, "catalog", "match", str(clip))
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(
        rf"{re.escape(str(clip))}: race1-jt\.ogg \({OWNER}\) from ([0-9.]+) s, "
        r"score (\d+), policy mute\n",
        done.stdout,
    )
    assert match, done.stdout
    assert abs(float(match[1]) - 30.0) <= 0.1


def test_match_answers_null_for_audio_not_in_the_catalog(data_dir: Path, media: Path) -> None:
    done = reelforge(data_dir, "catalog", "match", str(media / "cockatoo.mp4"), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is None
    done = reelforge(data_dir, "catalog", "match", str(media / "cockatoo.mp4"))
    assert done.stdout.strip().endswith("no match")


@pytest.mark.parametrize("kind", ["text", "missing", "no_audio"])
def test_bad_files_exit_2_with_one_line(
    data_dir: Path, tmp_path: Path, media: Path, kind: str
) -> None:
    path = {
        "text": tmp_path / "notes.mp3",
        "missing": tmp_path / "nowhere.ogg",
        "no_audio": media / "sar_2x1.mp4",
    }[kind]
    if kind == "text":
        path.write_text("not audio at all\n")
    for command in (["match", str(path), "--json"], ["add", str(path), "--owner", "x"]):
        done = reelforge(data_dir, "catalog", *command)
        assert done.returncode == 2
        assert done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("reelforge: input rejected: ")
        assert path.name in lines[0]


def test_add_with_one_bad_file_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "broken.ogg"
    bad.write_bytes(b"OggS" + bytes(200))
    done = reelforge(
        tmp_path / "data", "catalog", "add", str(MUSIC_DIR / "wonrace1-jt.ogg"), str(bad),
        "--owner", OWNER,
    )  # fmt: skip
    assert done.returncode == 2
    assert catalog_rows(tmp_path / "data") == ([], 0)


def test_adding_a_file_again_replaces_it(tmp_path: Path) -> None:
    track = str(MUSIC_DIR / "wonrace1-jt.ogg")
    assert reelforge(tmp_path, "catalog", "add", track, "--owner", "a").returncode == 0
    _, first = catalog_rows(tmp_path)
    done = reelforge(tmp_path, "catalog", "add", track, "--owner", "b", "--policy", "allow")
    assert done.returncode == 0, done.stderr
    refs, hashes = catalog_rows(tmp_path)
    assert refs == [("wonrace1-jt.ogg", "b", "allow")]
    assert hashes == first > 0


def test_policy_must_be_one_of_three(tmp_path: Path) -> None:
    track = str(MUSIC_DIR / "wonrace1-jt.ogg")
    done = reelforge(tmp_path, "catalog", "add", track, "--owner", "a", "--policy", "delete")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_remove_takes_references_out_of_the_index(tmp_path: Path) -> None:
    tracks = [str(MUSIC_DIR / "wonrace1-jt.ogg"), str(MUSIC_DIR / "start1-jt.ogg")]
    assert reelforge(tmp_path, "catalog", "add", *tracks, "--owner", "a").returncode == 0
    _, both = catalog_rows(tmp_path)
    # An unknown name: rejected, nothing removed.
    done = reelforge(tmp_path, "catalog", "remove", "start1-jt.ogg", "nope.ogg")
    assert done.returncode == 2 and "nope.ogg" in done.stderr, done.stderr
    assert catalog_rows(tmp_path) == (
        [("start1-jt.ogg", "a", "block"), ("wonrace1-jt.ogg", "a", "block")],
        both,
    )
    done = reelforge(tmp_path, "catalog", "remove", "start1-jt.ogg")
    assert done.returncode == 0 and done.stdout == "removed start1-jt.ogg\n", done.stderr
    refs, left = catalog_rows(tmp_path)
    assert refs == [("wonrace1-jt.ogg", "a", "block")] and 0 < left < both
    clip = aac_clip(MUSIC_DIR / "start1-jt.ogg", tmp_path / "upload.m4a", 21.5, 5)
    done = reelforge(tmp_path, "catalog", "match", str(clip), "--json")
    assert done.returncode == 0 and json.loads(done.stdout) is None, done.stdout


def test_references_of_an_older_format_stop_the_workers(tmp_path: Path) -> None:
    """A reference whose fingerprint this version cannot read (an older format's, or none)
    can never match: `catalog match` warns, workers and the embedded server refuse to start,
    until its file is added again or it is removed."""
    from api.core.settings import SettingsError
    from api.core.tables import audio_ref_prints
    from api.safety.startup import check_catalog
    from worker import build

    track = str(MUSIC_DIR / "wonrace1-jt.ogg")
    assert reelforge(tmp_path, "catalog", "add", track, "--owner", "a").returncode == 0
    settings = Settings(data_dir=tmp_path).resolved()
    check_catalog(settings)  # current format: fine
    engine = sync_engine(settings)
    with engine.begin() as conn:  # as an older version left it
        conn.execute(audio_ref_prints.update().values(version=catalog.FORMAT_VERSION - 1))
    engine.dispose()
    with pytest.raises(
        SettingsError, match=r"1 reference\(s\) fingerprinted by an older .*wonrace1-jt\.ogg"
    ):
        check_catalog(settings)
    with pytest.raises(SettingsError, match="older version"):
        build(settings)
    clip = aac_clip(MUSIC_DIR / "wonrace1-jt.ogg", tmp_path / "upload.m4a", 10, 5)
    done = reelforge(tmp_path, "catalog", "match", str(clip), "--json")
    assert done.returncode == 0 and "older version" in done.stderr, done.stderr
    served = reelforge(tmp_path, "serve", "--port", "0")
    assert served.returncode == 2 and "older version" in served.stderr, served.stderr

    assert reelforge(tmp_path, "catalog", "add", track, "--owner", "a").returncode == 0
    check_catalog(settings)  # added again: fine
    check_catalog(Settings(data_dir=tmp_path, fingerprint_enabled=False).resolved())
