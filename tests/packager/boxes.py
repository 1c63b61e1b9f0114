"""Build ISO BMFF boxes byte by byte, so parser tests need no media file."""

from __future__ import annotations

import struct


def box(kind: str, *children: bytes) -> bytes:
    payload = b"".join(children)
    return struct.pack(">I4s", 8 + len(payload), kind.encode("latin-1")) + payload


def full_box(kind: str, version: int, flags: int, *children: bytes) -> bytes:
    return box(kind, struct.pack(">I", version << 24 | flags), *children)


def u32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def tfhd(track_id: int, default_duration: int | None = None) -> bytes:
    flags = 0x020000 | (0x08 if default_duration is not None else 0)
    tail = u32(default_duration) if default_duration is not None else b""
    return full_box("tfhd", 0, flags, u32(track_id), tail)


def tfdt(time: int, version: int = 1) -> bytes:
    return full_box("tfdt", version, 0, struct.pack(">Q" if version else ">I", time))


def trun(durations: list[int] | None, count: int | None = None) -> bytes:
    """A trun with data_offset and sample sizes, and durations when given."""
    count = len(durations) if durations is not None else count or 0
    flags = 0x001 | 0x200 | (0x100 if durations is not None else 0)
    samples = b"".join(
        (u32(durations[i]) if durations is not None else b"") + u32(100) for i in range(count)
    )
    return full_box("trun", 0, flags, u32(count), struct.pack(">i", 0), samples)


def fragment(
    track_id: int,
    start: int,
    durations: list[int] | None,
    *,
    default: int | None = None,
    count: int | None = None,
    mdat: bytes = b"x",
) -> bytes:
    traf = box("traf", tfhd(track_id, default), tfdt(start), trun(durations, count))
    return box("moof", full_box("mfhd", 0, 0, u32(1)), traf) + box("mdat", mdat)


def avcc(profile: int, constraints: int, level: int) -> bytes:
    return box("avcC", bytes([1, profile, constraints, level, 0xFF, 0xE0, 0x00]))


def visual_entry(kind: str, width: int, height: int, *children: bytes) -> bytes:
    head = bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", width, height)
    tail = u32(0x00480000, 0x00480000, 0) + struct.pack(">H", 1) + bytes(32)
    return box(kind, head, tail, struct.pack(">Hh", 0x18, -1), *children)


def descriptor(tag: int, payload: bytes) -> bytes:
    """An MPEG-4 descriptor with a 4-byte expandable size, as FFmpeg writes it."""
    n = len(payload)
    size = bytes(
        [0x80 | (n >> 21) & 0x7F, 0x80 | (n >> 14) & 0x7F, 0x80 | (n >> 7) & 0x7F, n & 0x7F]
    )
    return bytes([tag]) + size + payload


def esds(asc: bytes, object_type: int = 0x40) -> bytes:
    config = descriptor(
        0x04, bytes([object_type, 0x15]) + bytes(3) + u32(128000, 128000) + descriptor(0x05, asc)
    )
    es = descriptor(0x03, struct.pack(">HB", 1, 0) + config + descriptor(0x06, b"\x02"))
    return full_box("esds", 0, 0, es)


def audio_entry(channels: int, rate: int, *children: bytes) -> bytes:
    head = bytes(6) + struct.pack(">H", 1) + bytes(8)
    return box("mp4a", head, struct.pack(">HHHH", channels, 16, 0, 0), u32(rate << 16), *children)


def init_segment(
    entry: bytes,
    *,
    handler: str = "vide",
    timescale: int = 15360,
    width: int = 0,
    height: int = 0,
    trex_duration: int = 0,
    language: int = 0x55C4,
) -> bytes:
    tkhd = full_box(
        "tkhd",
        0,
        3,
        u32(0, 0, 1, 0, 0),
        bytes(8),
        bytes(8),
        bytes(36),
        u32(width << 16, height << 16),
    )
    mdhd = full_box("mdhd", 0, 0, u32(0, 0, timescale, 0), struct.pack(">HH", language, 0))
    hdlr = full_box("hdlr", 0, 0, u32(0), handler.encode(), bytes(12), b"h\x00")
    stsd = full_box("stsd", 0, 0, u32(1), entry)
    stbl = box("stbl", stsd)
    mdia = box("mdia", mdhd, hdlr, box("minf", stbl))
    mvex = box("mvex", full_box("trex", 0, 0, u32(1, 1, trex_duration, 0, 0)))
    ftyp = box("ftyp", b"iso6", u32(0x200), b"iso6cmfc")
    return ftyp + box("moov", full_box("mvhd", 0, 0, bytes(96)), box("trak", tkhd, mdia), mvex)
