"""Hand-built Track data for renderer tests: no media file involved."""

from __future__ import annotations

from fractions import Fraction

from packager.model import Segment, Track


def segments(durations: list[int], sizes: list[int], start: int = 0) -> tuple[Segment, ...]:
    result = []
    for number, (duration, size) in enumerate(zip(durations, sizes, strict=True), start=1):
        result.append(Segment(number, start, duration, size))
        start += duration
    return tuple(result)


def video(
    track_id: str,
    width: int,
    height: int,
    sizes: list[int],
    *,
    timescale: int = 30000,
    frame: int = 1001,
    gop: int = 60,
    last: int = 30,
    codecs: str = "avc1.64001f",
) -> Track:
    durations = [gop * frame] * (len(sizes) - 1) + [last * frame]
    return Track(
        id=track_id,
        kind="video",
        codecs=codecs,
        timescale=timescale,
        segments=segments(durations, sizes),
        init_size=800,
        width=width,
        height=height,
        frame_rate=Fraction(timescale, frame),
    )


def audio(sizes: list[int], *, language: str = "und", channels: int = 2) -> Track:
    durations = [94 * 1024] * (len(sizes) - 1) + [40 * 1024]
    return Track(
        id="audio",
        kind="audio",
        codecs="mp4a.40.2",
        timescale=48000,
        segments=segments(durations, sizes),
        init_size=700,
        sample_rate=48000,
        channels=channels,
        language=language,
    )


# A 9.009 s 29.97 fps vertical ladder (listed out of order on purpose) with English audio.
LADDER = [
    video("v720", 720, 1280, [600_000, 550_000, 620_000, 580_000, 300_000], codecs="avc1.64001f"),
    video(
        "v1080",
        1080,
        1920,
        [1_200_000, 1_100_000, 1_250_000, 1_150_000, 600_000],
        codecs="avc1.640028",
    ),
    video("v360", 360, 640, [150_000, 140_000, 160_000, 145_000, 70_000], codecs="avc1.4d401e"),
]
LADDER_AUDIO = audio([32_100, 32_000, 32_050, 32_000, 13_700], language="eng")

# One 30 fps 4:3 rendition at timescale 15360, no audio.
VIDEO_ONLY = [video("v240", 320, 240, [5855, 2586, 4000], timescale=15360, frame=512)]

CASES: dict[str, tuple[list[Track], Track | None]] = {
    "ladder_with_audio": (LADDER, LADDER_AUDIO),
    "video_only": (VIDEO_ONLY, None),
}

# The input of the manifests written by hand from the specifications
# (tests/resources/manifests_by_hand/, tests/packager/test_manifests_by_hand.py): one 25 fps
# 360x640 rendition at timescale 90000, no audio, four segments of 2.4, 1.6, 1.6 and 2.0 s
# (60, 40, 40 and 50 frames) and 300,000, 200,000, 200,000 and 275,000 bytes.
BY_HAND = [
    Track(
        id="v360",
        kind="video",
        codecs="avc1.4d401e",
        timescale=90000,
        segments=segments(
            [216_000, 144_000, 144_000, 180_000], [300_000, 200_000, 200_000, 275_000]
        ),
        init_size=800,
        width=360,
        height=640,
        frame_rate=Fraction(25),
    )
]
