"""A chunk starts decoding only at a keyframe that decodes alone (engine/keyframes.py).

cockatoo.mp4 (real camera footage, H.264 High 4:4:4) flags IDRs at 0, 3.8 and 7.25 s, but
the later two do not decode without the pictures before them: FFmpeg conceals the errors
into green and grey blocks. A chunk that started there gave those pictures to every rung
and to the analysis, and the verifier, which checks structure, not pixels, passed them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np

from engine.chunked import RangeDecode
from engine.keyframes import decodes_alone
from engine.source import probe


def _keyframe_packets(path: Path) -> list[tuple[float, Any]]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return [
            (float(p.pts * video.time_base), p)
            for p in container.demux(video)
            if p.size and p.is_keyframe
        ]


def _pictures(frames: Any, until: float) -> dict[float, np.ndarray]:
    out: dict[float, np.ndarray] = {}
    for frame in frames:
        when = round(float(frame.pts * frame.time_base), 3)
        if when > until:
            break
        out[when] = frame.to_ndarray(format="rgb24")
    return out


def test_only_the_first_idr_of_the_cockatoo_decodes_alone(media: Path) -> None:
    clip = media / "cockatoo.mp4"
    found = {round(t, 2): decodes_alone(str(clip), p) for t, p in _keyframe_packets(clip)}
    assert found == {0.0: True, 3.8: False, 7.25: False}
    # ...and keyframes that do decode alone are not refused (every keyframe of these clips).
    for name in ("edts.mp4", "video-h265.mp4", "transparency.webm", "cursed-vfr.mp4"):
        keyframes = _keyframe_packets(media / name)
        assert len(keyframes) >= 2, name
        assert all(decodes_alone(str(media / name), p) for _, p in keyframes), name


def test_a_range_decode_gives_the_whole_decodes_pictures(media: Path) -> None:
    """From 5 s (after the bad IDR at 3.8 s) the range decode starts further back and its
    pictures from 5 s on are the ones a decode from the start gives, to the byte."""
    source = probe(media / "cockatoo.mp4")
    with RangeDecode(source, 0.0) as whole:
        reference = _pictures(whole.frames(), until=6.0)
    with RangeDecode(source, 5.0) as ranged:
        pictures = _pictures(ranged.frames(), until=6.0)
        stats = ranged.stats
    assert stats.bad_keyframes >= 1 and stats.first_time < 3.8
    checked = [t for t in pictures if t >= 5.0]
    assert len(checked) >= 15
    for when in checked:
        assert np.array_equal(pictures[when], reference[when]), when
