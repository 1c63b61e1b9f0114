"""Whether a keyframe really starts a picture sequence of its own.

A chunk job (engine/chunked.py) seeks to the keyframe at or before its start and decodes from
there, which gives the single pass's pictures only when that keyframe decodes without the
frames before it. The container's flag does not promise that: a sync sample of an MP4
(ISO/IEC 14496-12 §8.6.2) or an H.264 IDR (ITU-T H.264 §3.69) may still fail to decode alone
in a damaged or oddly muxed file (seen: an IDR whose slices use intra modes against blocks
that only exist when the previous picture was decoded), and FFmpeg then conceals the errors
into a wrong, often green, picture that no later check catches. So the keyframe's packet is
first decoded alone, by a fresh decoder with FFmpeg's error detection set to fail on any
error (`err_detect=explode`), and a keyframe that does not pass is not a place to start.
"""

from __future__ import annotations

from typing import Any

import av
import av.error

from engine.errors import EngineError
from engine.source import pick_video_stream


def decodes_alone(path: str, packet: Any) -> bool:
    """True when the video keyframe `packet` of the file at `path` decodes into a picture by
    itself, without a decoding error (a fresh decoder for the file's video stream, one
    thread, errors fatal)."""
    try:
        container: Any = av.open(path, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError):
        return False
    try:
        stream: Any = pick_video_stream(container)
        stream.thread_type = "NONE"
        stream.codec_context.options = {"err_detect": "explode"}
        frames = [*stream.codec_context.decode(packet), *stream.codec_context.decode(None)]
    except (av.error.FFmpegError, ValueError, EngineError):
        return False
    finally:
        container.close()
    return bool(frames)
