"""The packager's error tree.

Bad media is an error class of its own (`MalformedSegmentError`), so the job system can tell
"this input can never be packaged" from a transient failure and never retry it.
"""

from __future__ import annotations


class PackagerError(Exception):
    """Base class of every error the packager raises."""


class MalformedSegmentError(PackagerError, ValueError):
    """An ISO BMFF byte stream or file is truncated, garbage, or not what CMAF allows."""


class UnsupportedMediaError(PackagerError, ValueError):
    """Well-formed media the packager cannot describe (a codec or handler it does not know)."""
