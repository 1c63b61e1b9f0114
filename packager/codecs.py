"""Sample entries and the RFC 6381 codec strings manifests advertise.

A sample entry (ISO/IEC 14496-12 §8.5.2) names the codec; its configuration box holds what the
codec string is made of: `avcC` for H.264 (ISO/IEC 14496-15 §5.3.3.1), `esds` for AAC
(ISO/IEC 14496-14 §5.6, carrying an ES_Descriptor of ISO/IEC 14496-1 §7.2.6.5 whose
DecoderSpecificInfo is the AudioSpecificConfig of ISO/IEC 14496-3 §1.6.2.1). Parsers are
registered by sample entry type; anything else raises `UnsupportedMediaError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from packager.errors import MalformedSegmentError, UnsupportedMediaError
from packager.isobmff import Box, Bytes, Reader, read_full_box, require_box

# ISO/IEC 14496-3 Table 1.16, samplingFrequencyIndex 0x0-0xC.
AAC_SAMPLE_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
MPEG4_AUDIO = 0x40  # objectTypeIndication of ISO/IEC 14496-3 audio (14496-1 Table 5)


@dataclass(frozen=True, slots=True)
class SampleDescription:
    """What one sample entry says about a track."""

    codecs: str
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0


def describe_sample_entry(entry: Box) -> SampleDescription:
    """Describe a sample entry box found in `stsd`."""
    describe = _SAMPLE_ENTRIES.get(entry.type)
    if describe is None:
        raise UnsupportedMediaError(f"sample entry {entry.type!r} is not supported")
    return describe(entry)


def parse_visual_sample_entry(payload: Bytes, what: str) -> tuple[int, int, memoryview]:
    """VisualSampleEntry (ISO/IEC 14496-12 §12.1.3): width, height and the child boxes."""
    r = Reader(payload, what)
    r.skip(8)  # SampleEntry: reserved(6), data_reference_index
    r.skip(16)  # pre_defined, reserved, pre_defined[3]
    width, height = r.uint(2), r.uint(2)
    r.skip(50)  # resolutions, reserved, frame_count, compressorname, depth, pre_defined
    return width, height, r.rest()


def parse_audio_sample_entry(payload: Bytes, what: str) -> tuple[int, int, memoryview]:
    """AudioSampleEntry (ISO/IEC 14496-12 §12.2.3): channels, sample rate, child boxes.

    QuickTime's version 1 and 2 sound descriptions reuse the first reserved bytes as a version
    and append 16 or 36 bytes; they are skipped so the child boxes are still found.
    """
    r = Reader(payload, what)
    r.skip(8)  # SampleEntry: reserved(6), data_reference_index
    version = r.uint(2)
    r.skip(6)
    channels = r.uint(2)
    r.skip(6)  # samplesize, pre_defined, reserved
    sample_rate = r.uint(4) >> 16
    r.skip({0: 0, 1: 16, 2: 36}.get(version, 0))
    return channels, sample_rate, r.rest()


def parse_avcc(payload: Bytes) -> tuple[int, int, int]:
    """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1).

    Returns profile_idc, the constraint-flag byte and level_idc.
    """
    r = Reader(payload, "avcC")
    if r.uint(1) != 1:
        raise MalformedSegmentError("avcC: configurationVersion is not 1")
    return r.uint(1), r.uint(1), r.uint(1)


def _descriptor(r: Reader) -> tuple[int, Reader]:
    """One descriptor (ISO/IEC 14496-1 §8.3.3): tag, then an expandable size."""
    tag = r.uint(1)
    size = 0
    for _ in range(4):
        byte = r.uint(1)
        size = size << 7 | byte & 0x7F
        if not byte & 0x80:
            break
    return tag, Reader(r.take(size), f"descriptor 0x{tag:02x}")


def parse_esds(payload: Bytes) -> tuple[int, bytes]:
    """ESDBox (ISO/IEC 14496-14 §5.6): objectTypeIndication and DecoderSpecificInfo bytes."""
    _, _, r = read_full_box(payload, "esds")
    tag, es = _descriptor(r)
    if tag != 0x03:
        raise MalformedSegmentError(f"esds: expected ES_Descriptor, found tag 0x{tag:02x}")
    es.skip(2)  # ES_ID
    flags = es.uint(1)
    if flags & 0x80:
        es.skip(2)  # dependsOn_ES_ID
    if flags & 0x40:
        es.skip(es.uint(1))  # URLstring
    if flags & 0x20:
        es.skip(2)  # OCR_ES_Id
    while es.left:
        tag, config = _descriptor(es)
        if tag == 0x04:  # DecoderConfigDescriptor (§7.2.6.6)
            object_type = config.uint(1)
            config.skip(12)  # streamType, bufferSizeDB, maxBitrate, avgBitrate
            while config.left:
                tag, info = _descriptor(config)
                if tag == 0x05:  # DecoderSpecificInfo
                    return object_type, bytes(info.rest())
            return object_type, b""
    raise MalformedSegmentError("esds: no DecoderConfigDescriptor")


@dataclass(frozen=True, slots=True)
class AudioSpecificConfig:
    object_type: int  # 2 is AAC LC
    sample_rate: int
    channels: int  # 0 when a program_config_element defines them


def parse_audio_specific_config(data: Bytes) -> AudioSpecificConfig:
    """The leading fields of AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1)."""
    bits = int.from_bytes(data, "big")
    left = len(data) * 8

    def take(n: int) -> int:
        nonlocal left
        if n > left:
            raise MalformedSegmentError("AudioSpecificConfig: truncated")
        left -= n
        return bits >> left & (1 << n) - 1

    object_type = take(5)
    if object_type == 31:
        object_type = 32 + take(6)
    index = take(4)
    if index == 0xF:
        sample_rate = take(24)
    elif index < len(AAC_SAMPLE_RATES):
        sample_rate = AAC_SAMPLE_RATES[index]
    else:
        raise MalformedSegmentError(f"AudioSpecificConfig: reserved frequency index {index}")
    config = take(4)
    channels = 8 if config == 7 else config if config < 7 else 0
    return AudioSpecificConfig(object_type, sample_rate, channels)


def _describe_avc(entry: Box) -> SampleDescription:
    width, height, children = parse_visual_sample_entry(entry.payload, entry.type)
    profile, constraints, level = parse_avcc(require_box(children, "avcC", entry.type).payload)
    codecs = f"{entry.type}.{profile:02x}{constraints:02x}{level:02x}"
    return SampleDescription(codecs, width=width, height=height)


def _describe_mp4a(entry: Box) -> SampleDescription:
    channels, sample_rate, children = parse_audio_sample_entry(entry.payload, entry.type)
    object_type, info = parse_esds(require_box(children, "esds", entry.type).payload)
    if object_type != MPEG4_AUDIO or not info:
        return SampleDescription(
            f"mp4a.{object_type:02x}", sample_rate=sample_rate, channels=channels
        )
    asc = parse_audio_specific_config(info)
    return SampleDescription(
        f"mp4a.40.{asc.object_type}",
        sample_rate=asc.sample_rate or sample_rate,
        channels=asc.channels or channels,
    )


_SAMPLE_ENTRIES: dict[str, Callable[[Box], SampleDescription]] = {
    "avc1": _describe_avc,
    "avc3": _describe_avc,
    "mp4a": _describe_mp4a,
}
