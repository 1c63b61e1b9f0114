"""The input policy: what the engine accepts, checked before any encoding."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import (
    StillImageError,
    TooLargeError,
    TooLongError,
    TooShortError,
    TooSmallError,
)
from engine.source import SourceInfo

GIB = 1024**3
# How far past `max_duration` a source may run (container rounding, a last long frame).
DURATION_SLACK = 0.5


def image_container(name: str) -> bool:
    """FFmpeg's demuxers for single pictures: `image2` and the `*_pipe` ones (`png_pipe`,
    `jpeg_pipe`, `webp_pipe`...), which FFmpeg picks from the bytes whatever the file name."""
    return any(part == "image2" or part.endswith("_pipe") for part in name.split(","))


@dataclass(frozen=True, slots=True)
class InputPolicy:
    """Limits on uploads and on the resources spent decoding one.

    `max_duration` caps the longest stream (audio included: audio past the video's end is
    trimmed, but a 2 s video over an hour of audio is still an hour-long upload to read);
    `min_duration` applies to the video, which is what gets published. The decode limits
    bound hostile files: a job that runs past `max_wall_seconds` or tries to allocate more
    than `max_memory_bytes` is stopped and the input rejected.
    """

    max_duration: float = 600.0
    min_duration: float = 1.0
    max_side: int = 4096
    min_side: int = 144
    max_file_size: int = 2 * GIB
    max_wall_seconds: float = 1800.0
    max_memory_bytes: int = 4 * GIB

    def check_file_size(self, size: int) -> None:
        if size > self.max_file_size:
            raise TooLargeError(
                f"file too large: {size} bytes, the limit is {self.max_file_size} bytes"
            )

    def enforce(self, source: SourceInfo) -> None:
        """Raise an `InputRejected` subclass naming the first limit `source` breaks."""
        self.check_file_size(source.file_size)
        if source.frame_count <= 1 or image_container(source.container):
            raise StillImageError(
                f"still image: the file holds one picture ({source.video_codec}), not a video"
            )
        if source.longest_duration > self.max_duration + DURATION_SLACK:
            raise TooLongError(
                f"video too long: {length_text(source)}, the limit is {self.max_duration:g} s"
            )
        if round(source.duration, 2) < self.min_duration:
            raise TooShortError(
                f"video too short: {source.duration:.2f} s, the minimum is {self.min_duration:g} s"
            )
        sides = (
            source.coded_width,
            source.coded_height,
            source.display_width,
            source.display_height,
        )
        if max(sides) > self.max_side:
            raise TooLargeError(
                f"frame too large: {source.display_width}x{source.display_height}, "
                f"the limit is {self.max_side} px on a side"
            )
        if min(source.display_width, source.display_height) < self.min_side:
            raise TooSmallError(
                f"frame too small: {source.display_width}x{source.display_height}, "
                f"the minimum is {self.min_side} px on a side"
            )


def length_text(source: SourceInfo) -> str:
    """The source's length, truthfully: measured when the scan read it all; else the length
    the container declares when it is at least what was read; else "over N s"."""
    measured = source.longest_duration
    if source.scanned_to_end:
        return f"{measured:.1f} s"
    declared = source.declared_duration
    if declared is not None and declared >= measured:
        return f"{declared:.1f} s"
    return f"over {math.floor(measured)} s"
