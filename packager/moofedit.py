"""Byte-level edits of fragmented MP4 files (ISO/IEC 14496-12 §8.8): shift every `tfdt`
(§8.8.12), rebuild a `moof` whose `trun` (§8.8.8) carries new sample durations and composition
offsets (moving `trun.data_offset` by the growth), and replace a file atomically. The timing
policy that decides the numbers is packager/timeline.py's."""

from __future__ import annotations

import struct
from pathlib import Path

from packager.errors import MalformedSegmentError, PackagerError, UnsupportedMediaError
from packager.isobmff import Box, Bytes, find_box, iter_boxes, parse_trun, read_full_box


def tfdt_positions(data: Bytes) -> list[tuple[int, int]]:
    """(absolute offset of the baseMediaDecodeTime field, tfdt version) for every tfdt."""
    found = []
    for moof in iter_boxes(data):
        if moof.type != "moof":
            continue
        moof_body = moof.offset + moof.size - len(moof.payload)
        for traf in iter_boxes(moof.payload):
            if traf.type != "traf":
                continue
            traf_body = moof_body + traf.offset + traf.size - len(traf.payload)
            for box in iter_boxes(traf.payload):
                if box.type == "tfdt":
                    version, _, _ = read_full_box(box.payload, "tfdt")
                    body = traf_body + box.offset + box.size - len(box.payload)
                    found.append((body + 4, version))
    return found


def replace_file(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.partial")
    temp.write_bytes(data)
    temp.replace(path)


def _track_trafs(moof_payload: Bytes, track_id: int) -> list[Box]:
    found = []
    for traf in iter_boxes(moof_payload):
        if traf.type != "traf":
            continue
        tfhd = find_box(traf.payload, "tfhd")
        if tfhd is None:
            raise MalformedSegmentError("traf: no tfhd")
        _, _, r = read_full_box(tfhd.payload, "tfhd")
        if r.uint(4) == track_id:
            found.append(traf)
    return found


def sample_count(moof_payload: Bytes, track_id: int) -> int:
    trafs = _track_trafs(moof_payload, track_id)
    runs = [b for t in trafs for b in iter_boxes(t.payload) if b.type == "trun"]
    if len(trafs) != 1 or len(runs) != 1:
        raise UnsupportedMediaError("the first fragment must hold one traf with one trun")
    return parse_trun(runs[0].payload)[0]


def rebuild_moof(moof: bytes, durations: list[int], offsets: list[int]) -> bytes:
    """The first `moof` with its `trun` rewritten: per-sample durations and composition
    offsets given (version 0, so every offset must be >= 0), data_offset moved by the
    growth so it still points at the same bytes of the `mdat` that follows."""
    if any(offset < 0 for offset in offsets):
        raise PackagerError("negative composition offset in a version 0 trun")
    children = []
    for child in iter_boxes(memoryview(moof)[8:]):
        raw = bytes(memoryview(moof)[8 + child.offset : 8 + child.offset + child.size])
        if child.type == "traf":
            raw = _rebuild_traf(child.payload, durations, offsets)
        children.append(raw)
    body = b"".join(children)
    growth = 8 + len(body) - len(moof)
    rebuilt = _box("moof", body)
    return _move_data_offset(rebuilt, growth)


def _rebuild_traf(traf: Bytes, durations: list[int], offsets: list[int]) -> bytes:
    parts = []
    for child in iter_boxes(traf):
        if child.type == "tfhd":
            _, flags, _ = read_full_box(child.payload, "tfhd")
            if flags & 0x000001:
                raise UnsupportedMediaError("tfhd with an explicit base_data_offset")
        if child.type == "trun":
            parts.append(_rebuild_trun(child.payload, durations, offsets))
        else:
            parts.append(
                struct.pack(">I4s", child.size, child.type.encode()) + bytes(child.payload)
            )
    return _box("traf", b"".join(parts))


def _rebuild_trun(payload: Bytes, durations: list[int], offsets: list[int]) -> bytes:
    _, flags, r = read_full_box(payload, "trun")
    count = r.uint(4)
    if count != len(durations):
        raise PackagerError(f"trun holds {count} samples, {len(durations)} given")
    head = struct.pack(">I", count)
    if flags & 0x001:
        head += struct.pack(">i", r.sint(4))
    if flags & 0x004:
        head += struct.pack(">I", r.uint(4))
    entries = []
    for index in range(count):
        if flags & 0x100:
            r.skip(4)
        size = r.uint(4) if flags & 0x200 else None
        sample_flags = r.uint(4) if flags & 0x400 else None
        if flags & 0x800:
            r.skip(4)
        entry = struct.pack(">I", durations[index])
        entry += struct.pack(">I", size) if size is not None else b""
        entry += struct.pack(">I", sample_flags) if sample_flags is not None else b""
        entries.append(entry + struct.pack(">I", offsets[index]))
    new_flags = flags | 0x100 | 0x800
    return _box("trun", struct.pack(">I", new_flags & 0xFFFFFF) + head + b"".join(entries))


def _move_data_offset(moof: bytes, growth: int) -> bytes:
    """Add `growth` to the data_offset of every trun in a moof (sizes unchanged)."""
    data = bytearray(moof)
    moof_body = 8
    for traf in iter_boxes(memoryview(moof)[8:]):
        if traf.type != "traf":
            continue
        traf_body = moof_body + traf.offset + 8
        for run in iter_boxes(traf.payload):
            if run.type != "trun":
                continue
            _, flags, _ = read_full_box(run.payload, "trun")
            if flags & 0x001:
                at = traf_body + run.offset + 8 + 8  # box header, version/flags, sample_count
                value = int.from_bytes(data[at : at + 4], "big", signed=True) + growth
                data[at : at + 4] = value.to_bytes(4, "big", signed=True)
    return bytes(data)


def _box(kind: str, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind.encode()) + payload


def shift_tfdts(data: bytes, ticks: int) -> bytes:
    """`data` (moof/mdat boxes) with `ticks` added to every tfdt."""
    out = bytearray(data)
    for offset, version in tfdt_positions(out):
        width = 8 if version == 1 else 4
        value = int.from_bytes(out[offset : offset + width], "big") + ticks
        if value < 0:
            raise MalformedSegmentError(f"tfdt {value} would be negative")
        if value >= 1 << (8 * width):
            raise MalformedSegmentError(f"tfdt {value} overflows {width} bytes")
        out[offset : offset + width] = value.to_bytes(width, "big")
    return bytes(out)


def renumber_fragments(data: bytes, first: int) -> bytes:
    """`data` (moof/mdat boxes) with the `mfhd` sequence numbers (§8.8.5) of its fragments set
    to `first`, `first + 1`, ... in order; box sizes do not change."""
    out = bytearray(data)
    number = first
    for moof in iter_boxes(data):
        if moof.type != "moof":
            continue
        moof_body = moof.offset + moof.size - len(moof.payload)
        mfhd = next((b for b in iter_boxes(moof.payload) if b.type == "mfhd"), None)
        if mfhd is None or len(mfhd.payload) < 8:
            raise MalformedSegmentError("moof without a well-formed mfhd")
        field_at = moof_body + mfhd.offset + mfhd.size - len(mfhd.payload) + 4
        out[field_at : field_at + 4] = number.to_bytes(4, "big")
        number += 1
    return bytes(out)
