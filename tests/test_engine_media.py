"""`reelforge transcode` on every real clip in tests/media and on generated clips.

Rejected files get the right error and exit code 2; every other file gives an output whose
files ffprobe finds correct (tests/support/verify.py): aligned keyframes at every segment
boundary, GOP-long segments, display aspect and rotation kept, bitrates under their caps,
A/V durations in sync with the source, manifests that parse and that ffmpeg decodes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import JobResult, media_files
from tests.support.clips import GENERATED
from tests.support.verify import verify_output

# The real clips the engine must refuse, and the words the one stderr line must carry.
SHARED_REJECTS = {
    "multiple-aac-tracks.mp4": "no video stream",
    "toothsome-dts.mp4": "no video stream",
}


def assert_good_output(result: JobResult, source: Path) -> None:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    problems = verify_output(result.outdir, source)
    assert not problems, "\n".join(problems)


def assert_rejected(result: JobResult, words: str | tuple[str, ...]) -> None:
    assert result.returncode == 2, f"exit {result.returncode}: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    options = (words,) if isinstance(words, str) else words
    assert any(w in lines[0] for w in options), lines[0]
    assert not result.outdir.exists(), "a rejected job left output behind"
    leftovers = list(result.outdir.parent.glob(f".{result.outdir.name}.partial-*"))
    assert not leftovers, leftovers


@pytest.mark.parametrize("name", media_files())
def test_real_media(name: str, media: Path, transcoded: Callable[[Path], JobResult]) -> None:
    source = media / name
    result = transcoded(source)
    if name in SHARED_REJECTS:
        assert_rejected(result, SHARED_REJECTS[name])
    else:
        assert_good_output(result, source)


REJECT_WORDS = {
    "not_media": "not a media file",
    "no_video_stream": "no video stream",
    "too_long": "too long",
    "too_large": ("too large",),
    "too_small": "too small",
    "undecodable": "undecodable",
    "resource_limit": "longer than",
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_clips(
    name: str, generated: Callable[[str], Path], transcoded: Callable[[Path], JobResult]
) -> None:
    clip = GENERATED[name]
    source = generated(name)
    result = transcoded(source)
    if clip.expect.reject:
        words = tuple(
            w
            for code in clip.expect.reject
            for w in (
                (REJECT_WORDS[code],) if isinstance(REJECT_WORDS[code], str) else REJECT_WORDS[code]
            )
        )
        assert_rejected(result, words)
    else:
        assert_good_output(result, source)
