"""Pure ISO BMFF box parsing (ISO/IEC 14496-12, "ISO base media file format").

Only what the packager needs to measure CMAF files: box iteration, the movie boxes that say
what a track is (`tkhd`, `mdhd`, `hdlr`, `stsd`, `trex`) and the fragment boxes that say when
and how long each fragment is (`tfhd`, `tfdt`, `trun`). Section numbers are those of the
2015 and later editions. Every read is bounds-checked: truncated or garbage input raises
`MalformedSegmentError`, never `IndexError` or an endless loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from packager.errors import MalformedSegmentError

Bytes = bytes | bytearray | memoryview


class Reader:
    """A bounds-checked big-endian cursor over one box payload."""

    def __init__(self, data: Bytes, what: str) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._what = what

    @property
    def left(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> memoryview:
        if n < 0 or n > self.left:
            raise MalformedSegmentError(
                f"{self._what}: truncated, needs {n} bytes at offset {self._pos}, has {self.left}"
            )
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def skip(self, n: int) -> None:
        self.take(n)

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def sint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big", signed=True)

    def rest(self) -> memoryview:
        return self.take(self.left)


@dataclass(frozen=True, slots=True)
class BoxHeader:
    """The size/type header every box starts with (§4.2)."""

    type: str
    size: int  # whole box, header included; 0 means "to the end of the file"
    header_size: int


@dataclass(frozen=True, slots=True)
class Box:
    """One box found in a buffer: its type, where it starts, and its body after the header."""

    type: str
    offset: int
    size: int
    payload: memoryview


def read_box_header(data: Bytes) -> BoxHeader | None:
    """Parse a box header (§4.2) at the start of `data`; None if more bytes are needed.

    Handles `size == 1` (64-bit largesize follows) and the 16-byte extended type of `uuid`.
    """
    view = memoryview(data)
    if len(view) < 8:
        return None
    size = int.from_bytes(view[0:4], "big")
    box_type = bytes(view[4:8]).decode("latin-1")
    header_size = 8
    if size == 1:
        if len(view) < 16:
            return None
        size = int.from_bytes(view[8:16], "big")
        header_size = 16
    if box_type == "uuid":
        header_size += 16
        if len(view) < header_size:
            return None
    if size != 0 and size < header_size:
        raise MalformedSegmentError(
            f"box {box_type!r} declares size {size}, smaller than its {header_size}-byte header"
        )
    return BoxHeader(box_type, size, header_size)


def iter_boxes(data: Bytes) -> Iterator[Box]:
    """Yield the consecutive boxes (§4.2) that fill `data` exactly."""
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        header = read_box_header(view[pos:])
        if header is None:
            raise MalformedSegmentError(f"truncated box header at offset {pos}")
        size = header.size or len(view) - pos
        if pos + size > len(view):
            raise MalformedSegmentError(
                f"box {header.type!r} at offset {pos} declares {size} bytes, "
                f"only {len(view) - pos} remain"
            )
        yield Box(header.type, pos, size, view[pos + header.header_size : pos + size])
        pos += size


def find_box(data: Bytes, path: str) -> Box | None:
    """The first box along a slash-separated path of types, e.g. "moov/trak/mdia/mdhd"."""
    first, _, rest = path.partition("/")
    for box in iter_boxes(data):
        if box.type == first:
            return find_box(box.payload, rest) if rest else box
    return None


def require_box(data: Bytes, path: str, what: str) -> Box:
    box = find_box(data, path)
    if box is None:
        raise MalformedSegmentError(f"{what}: no {path} box")
    return box


def read_full_box(payload: Bytes, what: str) -> tuple[int, int, Reader]:
    """Split a FullBox (§4.2) payload into version, flags and a reader over the rest."""
    reader = Reader(payload, what)
    return reader.uint(1), reader.uint(3), reader


@dataclass(frozen=True, slots=True)
class TrackHeader:
    track_id: int
    width: int  # presentation size, integer part of the 16.16 value
    height: int


def parse_tkhd(payload: Bytes) -> TrackHeader:
    """TrackHeaderBox (§8.3.2)."""
    version, _, r = read_full_box(payload, "tkhd")
    r.skip(16 if version == 1 else 8)  # creation_time, modification_time
    track_id = r.uint(4)
    r.skip(4 + (8 if version == 1 else 4))  # reserved, duration
    r.skip(8 + 2 + 2 + 2 + 2 + 36)  # reserved, layer, alternate_group, volume, reserved, matrix
    return TrackHeader(track_id, r.uint(4) >> 16, r.uint(4) >> 16)


@dataclass(frozen=True, slots=True)
class MediaHeader:
    timescale: int
    duration: int
    language: str  # ISO 639-2/T, "und" when unset


def parse_mdhd(payload: Bytes) -> MediaHeader:
    """MediaHeaderBox (§8.4.2): the track's timescale and packed ISO 639-2/T language."""
    version, _, r = read_full_box(payload, "mdhd")
    r.skip(16 if version == 1 else 8)
    timescale = r.uint(4)
    duration = r.uint(8 if version == 1 else 4)
    packed = r.uint(2)
    if timescale == 0:
        raise MalformedSegmentError("mdhd: timescale is 0")
    letters = [(packed >> shift) & 0x1F for shift in (10, 5, 0)]
    language = "".join(chr(c + 0x60) for c in letters) if all(letters) else "und"
    return MediaHeader(timescale, duration, language)


def parse_hdlr(payload: Bytes) -> str:
    """HandlerReferenceBox (§8.4.3): the handler type, e.g. "vide" or "soun"."""
    _, _, r = read_full_box(payload, "hdlr")
    r.skip(4)  # pre_defined
    return bytes(r.take(4)).decode("latin-1")


def parse_stsd(payload: Bytes) -> list[Box]:
    """SampleDescriptionBox (§8.5.2): the sample entries, each a box of its own."""
    _, _, r = read_full_box(payload, "stsd")
    count = r.uint(4)
    entries = list(iter_boxes(r.rest()))
    if len(entries) != count:
        raise MalformedSegmentError(f"stsd: declares {count} entries, holds {len(entries)}")
    return entries


@dataclass(frozen=True, slots=True)
class TrackExtends:
    track_id: int
    default_sample_duration: int


def parse_trex(payload: Bytes) -> TrackExtends:
    """TrackExtendsBox (§8.8.3): per-track defaults for the fragments."""
    _, _, r = read_full_box(payload, "trex")
    track_id = r.uint(4)
    r.skip(4)  # default_sample_description_index
    return TrackExtends(track_id, r.uint(4))


@dataclass(frozen=True, slots=True)
class FragmentHeader:
    track_id: int
    default_sample_duration: int | None


def parse_tfhd(payload: Bytes) -> FragmentHeader:
    """TrackFragmentHeaderBox (§8.8.7); only the fields durations depend on are kept."""
    _, flags, r = read_full_box(payload, "tfhd")
    track_id = r.uint(4)
    if flags & 0x000001:
        r.skip(8)  # base_data_offset
    if flags & 0x000002:
        r.skip(4)  # sample_description_index
    duration = r.uint(4) if flags & 0x000008 else None
    return FragmentHeader(track_id, duration)


def parse_tfdt(payload: Bytes) -> int:
    """TrackFragmentBaseMediaDecodeTimeBox (§8.8.12): baseMediaDecodeTime."""
    version, _, r = read_full_box(payload, "tfdt")
    return r.uint(8 if version == 1 else 4)


def parse_trun(payload: Bytes) -> tuple[int, tuple[int, ...] | None]:
    """TrackRunBox (§8.8.8): sample_count and the per-sample durations, if present.

    Durations are None when the run leaves them to tfhd/trex defaults (flag 0x100 unset).
    """
    _, flags, r = read_full_box(payload, "trun")
    count = r.uint(4)
    r.skip((4 if flags & 0x001 else 0) + (4 if flags & 0x004 else 0))
    per_sample = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    if count * per_sample > r.left:
        raise MalformedSegmentError(f"trun: {count} samples do not fit in {r.left} bytes")
    if not flags & 0x100:
        return count, None
    durations = []
    for _ in range(count):
        durations.append(r.uint(4))
        r.skip(per_sample - 4)
    return count, tuple(durations)


def parse_trun_composition_offsets(payload: Bytes) -> tuple[int, ...] | None:
    """TrackRunBox (§8.8.8): the per-sample composition offsets, None when absent (flag
    0x800 unset: every offset is 0). Signed in version 1, unsigned in version 0."""
    version, flags, r = read_full_box(payload, "trun")
    if not flags & 0x800:
        return None
    count = r.uint(4)
    r.skip((4 if flags & 0x001 else 0) + (4 if flags & 0x004 else 0))
    per_sample = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    if count * per_sample > r.left:
        raise MalformedSegmentError(f"trun: {count} samples do not fit in {r.left} bytes")
    offsets = []
    for _ in range(count):
        r.skip(per_sample - 4)
        offsets.append(r.sint(4) if version == 1 else r.uint(4))
    return tuple(offsets)


@dataclass(frozen=True, slots=True)
class FragmentTiming:
    base_media_decode_time: int
    sample_durations: tuple[int, ...]
    # the earliest decode time + composition offset of any sample (§8.8.8)
    earliest_presentation: int = 0
    # the last-shown sample's presentation time + its duration
    presentation_end: int = 0

    @property
    def duration(self) -> int:
        return sum(self.sample_durations)


def read_fragment_timing(data: Bytes, track_id: int, trex_duration: int) -> FragmentTiming:
    """Decode time and sample durations of `track_id` in a file of `moof`+`mdat` pairs.

    A sample's duration comes from `trun` (§8.8.8), else the `tfhd` default (§8.8.7), else
    the `trex` default (§8.8.3). The start is the first fragment's `tfdt` (§8.8.12), which
    CMAF requires in every fragment.
    """
    start: int | None = None
    durations: list[int] = []
    earliest: int | None = None
    end = last_shown = 0
    boxes = list(iter_boxes(data))
    if not any(box.type == "mdat" for box in boxes):
        raise MalformedSegmentError("no mdat box")
    for moof in (box for box in boxes if box.type == "moof"):
        for traf in (box for box in iter_boxes(moof.payload) if box.type == "traf"):
            header = parse_tfhd(require_box(traf.payload, "tfhd", "traf").payload)
            if header.track_id != track_id:
                continue
            decode = parse_tfdt(require_box(traf.payload, "tfdt", "traf").payload)
            if start is None:
                start = decode
            fallback = header.default_sample_duration
            if fallback is None:
                fallback = trex_duration
            for run in (box for box in iter_boxes(traf.payload) if box.type == "trun"):
                count, run_durations = parse_trun(run.payload)
                run_durations = (fallback,) * count if run_durations is None else run_durations
                offsets = parse_trun_composition_offsets(run.payload) or (0,) * count
                for duration, offset in zip(run_durations, offsets, strict=True):
                    if earliest is None or decode + offset < earliest:
                        earliest = decode + offset
                    if decode + offset >= last_shown:
                        last_shown, end = decode + offset, decode + offset + duration
                    decode += duration
                durations.extend(run_durations)
    if start is None:
        raise MalformedSegmentError(f"no moof/traf for track {track_id}")
    first = start if earliest is None else earliest
    return FragmentTiming(start, tuple(durations), first, max(end, first))
