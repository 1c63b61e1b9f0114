"""Encode generated clips with PyAV straight into a FragmentSink, as the engine does."""

from __future__ import annotations

import av
import numpy as np

from packager.cmaf import muxer_options
from packager.sink import FragmentSink


def encode_video(
    sink: FragmentSink,
    width: int,
    height: int,
    seconds: float,
    *,
    fps: int = 30,
    gop: int = 60,
) -> bytes:
    """A moving bar through libx264 with an IDR forced every `gop` frames.

    Returns the encoder's extradata (to check the codec string against).
    """
    with av.open(sink, "w", format="mp4", options=muxer_options("video", gop / fps)) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
            "forced-idr": "1",
            "preset": "veryfast",
        }
        for i in range(round(fps * seconds)):
            pixels = np.full((height, width, 3), 40, np.uint8)
            bar = (i * 5) % (width - width // 8)
            pixels[:, bar : bar + width // 8] = (250, 200, 30)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            frame.pict_type = (
                av.video.frame.PictureType.I if i % gop == 0 else av.video.frame.PictureType.NONE
            )
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        return bytes(stream.codec_context.extradata or b"")


def encode_audio(sink: FragmentSink, seconds: float, *, rate: int = 48000) -> None:
    """A 440 Hz stereo sine as AAC-LC, fragmented every 2 s."""
    with av.open(sink, "w", format="mp4", options=muxer_options("audio", 2.0)) as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo")
        stream.bit_rate = 96_000
        t = np.arange(round(rate * seconds)) / rate
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(wave), 1024):
            chunk = np.ascontiguousarray(np.stack([wave[start : start + 1024]] * 2))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def sps_profile_level(extradata: bytes) -> bytes:
    """profile_idc, constraint flags, level_idc from the encoder's own SPS (H.264 §7.3.2.1.1).

    PyAV hands libx264's extradata over in Annex B form (start codes), not as avcC.
    """
    if extradata[:1] == b"\x01":  # already an AVCDecoderConfigurationRecord
        return extradata[1:4]
    start = extradata.index(b"\x00\x00\x01\x67") + 4
    return extradata[start : start + 3]
