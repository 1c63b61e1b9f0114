"""The engine's error tree.

`InputRejected` and its subclasses are the upload's fault: never retried, reported to the
creator, CLI exit code 2. Everything else under `EngineError` is ours: exit code 1.
"""

from __future__ import annotations


class EngineError(Exception):
    """A failure inside the engine."""


class InputRejected(EngineError, ValueError):
    """The input was refused; the message names why in one line."""

    code = "rejected"


class NotMediaError(InputRejected):
    code = "not_media"


class NoVideoStreamError(InputRejected):
    code = "no_video_stream"


class TooLongError(InputRejected):
    code = "too_long"


class TooShortError(InputRejected):
    """Shorter than the policy's minimum: a sliver, not a video."""

    code = "too_short"


class StillImageError(InputRejected):
    """A picture, not a video: one frame, or an image format (PNG, JPEG, WebP, GIF...)."""

    code = "still_image"


class TooLargeError(InputRejected):
    """File size or frame dimensions over the policy's limits."""

    code = "too_large"


class TooSmallError(InputRejected):
    code = "too_small"


class UndecodableError(InputRejected):
    code = "undecodable"


class ResourceLimitError(InputRejected):
    """Decoding the input went over its wall-time or memory budget (hostile or broken media)."""

    code = "resource_limit"


class EncoderUnavailableError(EngineError):
    """The requested encoder cannot be opened on this machine."""
