"""Where each sample of a fragmented track lies and when it is decoded and presented.

ISO/IEC 14496-12 (2015 and later) §8.8: a `moof` holds one `traf` per track; its `tfhd`
(§8.8.7) gives the base data offset and per-fragment defaults, `tfdt` (§8.8.12) the decode
time of its first sample, and each `trun` (§8.8.8) the samples themselves: duration, size,
flags and composition offset, falling back to the `tfhd` and then the `trex` (§8.8.3)
defaults. `read_fragment_samples` turns that into one `SampleRef` per sample, so a muxer can
copy each sample's bytes with its exact times (packager/progressive.py). Pure: bytes in,
plain data out.
"""

from __future__ import annotations

from dataclasses import dataclass

from packager.errors import MalformedSegmentError
from packager.isobmff import Bytes, find_box, iter_boxes, read_full_box, require_box

# Sample flags (§8.8.3.1): sample_is_non_sync_sample.
NON_SYNC = 0x00010000

# tfhd flags (§8.8.7.1).
_BASE_DATA_OFFSET = 0x000001
_SAMPLE_DESCRIPTION = 0x000002
_DEFAULT_DURATION = 0x000008
_DEFAULT_SIZE = 0x000010
_DEFAULT_FLAGS = 0x000020
_DEFAULT_BASE_IS_MOOF = 0x020000

# trun flags (§8.8.8.1).
_DATA_OFFSET = 0x001
_FIRST_SAMPLE_FLAGS = 0x004
_SAMPLE_DURATION = 0x100
_SAMPLE_SIZE = 0x200
_SAMPLE_FLAGS = 0x400
_SAMPLE_CTS = 0x800


@dataclass(frozen=True, slots=True)
class SampleDefaults:
    """Per-sample defaults: the `trex` values (§8.8.3), overridden per fragment by `tfhd`."""

    duration: int = 0
    size: int = 0
    flags: int = 0


@dataclass(frozen=True, slots=True)
class SampleRef:
    """One sample: its times in the track's timescale and its bytes in the fragment file."""

    decode_time: int
    duration: int
    composition_offset: int  # signed (trun version 1); presentation = decode + offset
    offset: int  # byte offset of the sample data in the file the fragment was read from
    size: int
    sync: bool

    @property
    def presentation_time(self) -> int:
        return self.decode_time + self.composition_offset


def read_track_defaults(init: Bytes, track_id: int) -> SampleDefaults:
    """The `trex` defaults (§8.8.3) an init segment declares for `track_id`."""
    mvex = find_box(require_box(init, "moov", "init segment").payload, "mvex")
    for box in iter_boxes(mvex.payload if mvex is not None else b""):
        if box.type != "trex":
            continue
        _, _, r = read_full_box(box.payload, "trex")
        if r.uint(4) != track_id:
            continue
        r.skip(4)  # default_sample_description_index
        return SampleDefaults(duration=r.uint(4), size=r.uint(4), flags=r.uint(4))
    return SampleDefaults()


def _fragment_defaults(
    payload: Bytes, defaults: SampleDefaults
) -> tuple[int, int | None, bool, SampleDefaults]:
    """(track_id, base_data_offset or None, default-base-is-moof, defaults) of a tfhd."""
    _, flags, r = read_full_box(payload, "tfhd")
    track_id = r.uint(4)
    base = r.uint(8) if flags & _BASE_DATA_OFFSET else None
    if flags & _SAMPLE_DESCRIPTION:
        r.skip(4)
    duration = r.uint(4) if flags & _DEFAULT_DURATION else defaults.duration
    size = r.uint(4) if flags & _DEFAULT_SIZE else defaults.size
    sample_flags = r.uint(4) if flags & _DEFAULT_FLAGS else defaults.flags
    merged = SampleDefaults(duration, size, sample_flags)
    return track_id, base, bool(flags & _DEFAULT_BASE_IS_MOOF), merged


def read_fragment_samples(data: Bytes, track_id: int, defaults: SampleDefaults) -> list[SampleRef]:
    """Every sample of `track_id` in a file of `moof` + `mdat` pairs, in decode order.

    Sample data offsets follow §8.8.7.1/§8.8.8.1: a trun's data_offset is relative to the
    tfhd's base_data_offset, else to the start of the `moof` (default-base-is-moof, and
    always so for the first traf); a trun without one continues where the previous run's
    data ended. Every sample must lie inside an `mdat` payload.
    """
    view = memoryview(data)
    boxes = list(iter_boxes(view))
    samples: list[SampleRef] = []
    for moof in (box for box in boxes if box.type == "moof"):
        data_end: int | None = None  # where the previous traf's data ended, in this moof
        for traf in (box for box in iter_boxes(moof.payload) if box.type == "traf"):
            header = require_box(traf.payload, "tfhd", "traf").payload
            traf_track, base, from_moof, traf_defaults = _fragment_defaults(header, defaults)
            if base is None:
                base = moof.offset if from_moof or data_end is None else data_end
            tfdt = find_box(traf.payload, "tfdt")
            if traf_track == track_id and tfdt is None:
                raise MalformedSegmentError("traf: no tfdt box")
            time = _read_tfdt(tfdt.payload) if tfdt is not None else 0
            position = base
            for run in (box for box in iter_boxes(traf.payload) if box.type == "trun"):
                # Another track's runs are read too: where their data ends may be our base.
                run_samples = _run_samples(run.payload, time, base, position, traf_defaults)
                if traf_track == track_id:
                    samples.extend(run_samples)
                if run_samples:
                    last = run_samples[-1]
                    time = last.decode_time + last.duration
                    position = last.offset + last.size
            data_end = position
    payloads = [
        (box.offset + box.size - len(box.payload), box.offset + box.size)
        for box in boxes
        if box.type == "mdat"
    ]
    for sample in samples:
        end = sample.offset + sample.size
        if not any(first <= sample.offset and end <= last for first, last in payloads):
            raise MalformedSegmentError(
                f"sample at offset {sample.offset} ({sample.size} bytes) lies outside every mdat"
            )
    return samples


def _read_tfdt(payload: Bytes) -> int:
    version, _, r = read_full_box(payload, "tfdt")
    return r.uint(8 if version == 1 else 4)


def _run_samples(
    payload: Bytes, decode_time: int, base: int, position: int, defaults: SampleDefaults
) -> list[SampleRef]:
    """The samples of one trun (§8.8.8), starting at `decode_time`.

    Their data starts at `base` + data_offset, or at `position` (right after the previous
    run's data) when the run has no data_offset. Composition offsets are signed in version 1
    and unsigned in version 0.
    """
    version, flags, r = read_full_box(payload, "trun")
    count = r.uint(4)
    offset = base + r.sint(4) if flags & _DATA_OFFSET else position
    first_flags = r.uint(4) if flags & _FIRST_SAMPLE_FLAGS else None
    per_sample = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    if count * per_sample > r.left:
        raise MalformedSegmentError(f"trun: {count} samples do not fit in {r.left} bytes")
    samples = []
    for index in range(count):
        duration = r.uint(4) if flags & _SAMPLE_DURATION else defaults.duration
        size = r.uint(4) if flags & _SAMPLE_SIZE else defaults.size
        sample_flags = r.uint(4) if flags & _SAMPLE_FLAGS else defaults.flags
        if index == 0 and first_flags is not None:
            sample_flags = first_flags
        cts = 0
        if flags & _SAMPLE_CTS:
            cts = r.sint(4) if version == 1 else r.uint(4)
        samples.append(
            SampleRef(decode_time, duration, cts, offset, size, not sample_flags & NON_SYNC)
        )
        decode_time += duration
        offset += size
    return samples
