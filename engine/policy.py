"""The input policy: what the engine accepts, checked before any encoding."""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import TooLargeError, TooLongError, TooSmallError
from engine.source import SourceInfo

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class InputPolicy:
    """Limits on uploads and on the resources spent decoding one.

    The decode limits bound hostile files: a job that runs past `max_wall_seconds` or tries to
    allocate more than `max_memory_bytes` is stopped and the input rejected.
    """

    max_duration: float = 180.0
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
        if source.duration > self.max_duration + 0.5:
            raise TooLongError(
                f"video too long: {source.duration:.1f} s, the limit is {self.max_duration:g} s"
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
