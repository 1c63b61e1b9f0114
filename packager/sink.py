"""A file object that cuts a fragmented MP4 byte stream into CMAF files as it arrives.

The muxer writes top-level boxes (ISO/IEC 14496-12 §4.2) in order: `ftyp` `moov`, then one
`[styp] moof mdat` per fragment, then maybe `mfra`. Box boundaries and write() calls do not
line up (a box may be split across calls, several may share one), so the sink follows box
headers itself and streams each box's bytes into the file it belongs to.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from packager.errors import MalformedSegmentError
from packager.isobmff import BoxHeader, read_box_header
from packager.model import INIT_NAME, segment_name

INIT_BOXES = frozenset({"ftyp", "moov"})
# Boxes that may open a CMAF segment ahead of its moof (ISO/IEC 23000-19 §7.3.3).
SEGMENT_PREFIX_BOXES = frozenset({"styp", "sidx", "prft", "emsg"})
_OWNED_FILE = re.compile(r"^(init\.mp4|\d{5}\.m4s|\..*\.partial)$")


class _PendingFile:
    """A file written under a hidden temporary name and renamed into place when complete.

    A crash leaves at most a `.NAME.partial` file, never a complete-looking `NAME`.
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        self.temp = final.with_name(f".{final.name}.partial")
        self._file: BinaryIO = self.temp.open("wb")

    def write(self, data: memoryview) -> None:
        self._file.write(data)

    def commit(self) -> None:
        self._file.close()
        self.temp.replace(self.final)

    def discard(self) -> None:
        self._file.close()
        self.temp.unlink(missing_ok=True)


class FragmentSink:
    """Write target for PyAV's mp4 muxer: `av.open(FragmentSink(dir), "w", format="mp4")`.

    `ftyp`+`moov` become `init.mp4`; each `[styp|sidx|prft|emsg] moof mdat` becomes the next
    numbered segment (`00001.m4s`, ...); any other top-level box (`mfra`, `free`) is dropped.
    The sink is deliberately not seekable (no seek/tell), so the muxer can never go back and
    rewrite bytes already committed. Starting a sink removes the init and segment files an
    earlier run left in `track_dir`, so two runs are never mixed. Closing it checks that the
    stream ended on a box boundary; leaving its `with` block on an exception discards the
    unfinished file instead.
    """

    def __init__(self, track_dir: Path) -> None:
        self.track_dir = Path(track_dir)
        self.track_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.track_dir.iterdir():
            if _OWNED_FILE.match(stale.name) and stale.is_file():
                stale.unlink()
        self._pending_header = bytearray()
        self._box: BoxHeader | None = None
        self._remaining = 0
        self._target: _PendingFile | None = None
        self._init: _PendingFile | None = None
        self._segment: _PendingFile | None = None
        self._segment_has_moof = False
        self._init_written = False
        self._segment_count = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def segment_count(self) -> int:
        """How many segment files have been committed so far."""
        return self._segment_count

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed FragmentSink")
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            if self._box is None:
                if self._pending_header:  # a header split across calls: join the pieces
                    view = memoryview(bytes(self._pending_header + view))
                    self._pending_header.clear()
                header = read_box_header(view)
                if header is None:
                    self._pending_header += view
                    break
                self._start_box(header)  # the header bytes stay in `view` and go to the file
                continue
            taken = min(self._remaining, len(view))
            if self._target is not None:
                self._target.write(view[:taken])
            self._remaining -= taken
            view = view[taken:]
            if not self._remaining:
                self._end_box()
        return size

    def flush(self) -> None:
        """Nothing to do: complete files are committed as soon as their last box ends."""

    def close(self) -> None:
        """Finish: raise `MalformedSegmentError` if the stream stopped inside a box or segment."""
        if self._closed:
            return
        unfinished = self._box or self._pending_header or self._segment or self._init
        self.abort()
        if unfinished:
            raise MalformedSegmentError(f"{self.track_dir}: stream ended inside a box or segment")

    def abort(self) -> None:
        """Drop whatever file is unfinished and refuse further writes."""
        for pending in (self._init, self._segment):
            if pending is not None:
                pending.discard()
        self._closed = True

    def __enter__(self) -> FragmentSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _start_box(self, header: BoxHeader) -> None:
        kind = header.type
        if not kind.isascii() or not kind.isprintable():
            raise MalformedSegmentError(f"{self.track_dir}: garbage box type {kind!r}")
        if header.size == 0:
            raise MalformedSegmentError(f"{kind!r}: a box of unknown size cannot be streamed")
        self._box, self._remaining, self._target = header, header.size, None
        if kind in INIT_BOXES:
            if self._init_written:
                raise MalformedSegmentError(f"{self.track_dir}: {kind!r} after the init segment")
            if self._init is None:
                self._init = _PendingFile(self.track_dir / INIT_NAME)
            self._target = self._init
        elif kind in SEGMENT_PREFIX_BOXES or kind in ("moof", "mdat"):
            self._target = self._segment_target(kind)

    def _segment_target(self, kind: str) -> _PendingFile:
        if not self._init_written:
            raise MalformedSegmentError(f"{self.track_dir}: {kind!r} before the moov box")
        if kind == "mdat" and not self._segment_has_moof:
            raise MalformedSegmentError(f"{self.track_dir}: mdat without a moof")
        if kind == "moof":
            if self._segment_has_moof:
                raise MalformedSegmentError(f"{self.track_dir}: two moof boxes without an mdat")
            self._segment_has_moof = True
        if self._segment is None:
            self._segment = _PendingFile(self.track_dir / segment_name(self._segment_count + 1))
        return self._segment

    def _end_box(self) -> None:
        assert self._box is not None
        kind, self._box, self._target = self._box.type, None, None
        if kind == "moov" and self._init is not None:
            self._init.commit()
            self._init, self._init_written = None, True
        elif kind == "mdat" and self._segment is not None:
            self._segment.commit()
            self._segment, self._segment_has_moof = None, False
            self._segment_count += 1
