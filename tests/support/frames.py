"""Decoded frames of a real clip, fed to analyzers the way the engine's taps are."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av

# Audio-only files in tests/media: nothing to look at (the engine rejects them).
AUDIO_ONLY = frozenset({"multiple-aac-tracks.mp4", "toothsome-dts.mp4"})


def decoded_frames(path: Path) -> Iterator[tuple[Any, float]]:
    """(frame, seconds from the first frame) of every decoded video frame."""
    with av.open(str(path)) as container:
        stream: Any = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * stream.time_base)
            start = t if start is None else start
            yield frame, t - start
