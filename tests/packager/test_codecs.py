"""Sample entries to RFC 6381 codec strings, on entries built in the test."""

from __future__ import annotations

import pytest

from packager.codecs import describe_sample_entry, parse_audio_specific_config, parse_esds
from packager.errors import MalformedSegmentError, UnsupportedMediaError
from packager.isobmff import Box, iter_boxes
from tests.packager.boxes import audio_entry, avcc, box, esds, visual_entry


def entry(data: bytes) -> Box:
    (only,) = iter_boxes(data)
    return only


@pytest.mark.parametrize(
    ("kind", "profile", "constraints", "level", "codecs"),
    [
        ("avc1", 0x64, 0x00, 0x1F, "avc1.64001f"),
        ("avc1", 0x42, 0xC0, 0x1E, "avc1.42c01e"),
        ("avc3", 0x4D, 0x40, 0x28, "avc3.4d4028"),
    ],
)
def test_avc_codec_string(
    kind: str, profile: int, constraints: int, level: int, codecs: str
) -> None:
    description = describe_sample_entry(
        entry(visual_entry(kind, 1280, 720, avcc(profile, constraints, level)))
    )
    assert (description.codecs, description.width, description.height) == (codecs, 1280, 720)


def asc(object_type: int, frequency_index: int, channels: int, rate: int = 0) -> bytes:
    """AudioSpecificConfig leading fields (ISO/IEC 14496-3 §1.6.2.1), zero-padded to bytes."""
    fields = [(31, 5), (object_type - 32, 6)] if object_type >= 31 else [(object_type, 5)]
    fields.append((frequency_index, 4))
    if frequency_index == 0xF:
        fields.append((rate, 24))
    fields.append((channels, 4))
    value, width = 0, 0
    for field, bits in fields:
        value, width = value << bits | field, width + bits
    pad = -width % 8
    return (value << pad).to_bytes((width + pad) // 8, "big")


@pytest.mark.parametrize(
    ("config", "codecs", "rate", "channels"),
    [
        (bytes([0x11, 0x90]), "mp4a.40.2", 48000, 2),  # what FFmpeg writes for LC 48k stereo
        (asc(2, 4, 1), "mp4a.40.2", 44100, 1),
        (asc(5, 6, 2), "mp4a.40.5", 24000, 2),  # HE-AAC, explicit hierarchical signalling
        (asc(2, 3, 7), "mp4a.40.2", 48000, 8),  # channelConfiguration 7 is 7.1
        (asc(42, 0xF, 2, rate=48000), "mp4a.40.42", 48000, 2),  # escape AOT, explicit rate
    ],
)
def test_aac_codec_string(config: bytes, codecs: str, rate: int, channels: int) -> None:
    description = describe_sample_entry(entry(audio_entry(6, 8000, esds(config))))
    assert (description.codecs, description.sample_rate, description.channels) == (
        codecs,
        rate,
        channels,
    )


def test_channels_from_sample_entry_when_asc_defers_to_a_pce() -> None:
    description = describe_sample_entry(entry(audio_entry(6, 48000, esds(asc(2, 3, 0)))))
    assert (description.codecs, description.channels) == ("mp4a.40.2", 6)


def test_non_mpeg4_audio_object_type() -> None:
    description = describe_sample_entry(entry(audio_entry(2, 44100, esds(b"", 0x6B))))
    assert (description.codecs, description.sample_rate) == ("mp4a.6b", 44100)


def test_unsupported_sample_entry() -> None:
    with pytest.raises(UnsupportedMediaError, match="'hvc1'"):
        describe_sample_entry(entry(visual_entry("hvc1", 64, 64)))


def test_missing_configuration_box() -> None:
    with pytest.raises(MalformedSegmentError, match="no avcC"):
        describe_sample_entry(entry(visual_entry("avc1", 64, 64)))


def test_truncated_esds_and_asc() -> None:
    full = esds(bytes([0x11, 0x90]))[8:]
    for cut in range(len(full) - 2):
        with pytest.raises(MalformedSegmentError):
            parse_esds(full[:cut])
    with pytest.raises(MalformedSegmentError, match="truncated"):
        parse_audio_specific_config(b"\x11")
    with pytest.raises(MalformedSegmentError, match="not 1"):
        describe_sample_entry(entry(visual_entry("avc1", 8, 8, box("avcC", b"\x00\x64\x00\x1f"))))
