"""Demux and decode an upload exactly once, yielding video and audio frames in one stream.

Frames come out with their timestamps moved so the video starts at zero (the audio keeps its
offset to the video, so edit lists and start offsets stay in sync). A packet that fails to
decode is counted and skipped, as players do; a stream where nothing decodes is rejected.

Audio that starts after the video's end is trimmed from the output anyway, so its packets
are not decoded, and once every video packet is in, the demuxing stops at the first of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
import av.error

from engine.errors import NotMediaError, ResourceLimitError, UndecodableError
from engine.source import SourceInfo, pick_video_stream


@dataclass(slots=True)
class DecodeStats:
    video_frames: int = 0
    audio_frames: int = 0
    packets: int = 0
    errors: int = 0
    last_error: str = ""
    audio_packets_skipped: int = 0  # past the video's end: not decoded


class SingleDecode:
    """Opens the source once; iterate `frames()` for ("video"|"audio", frame) pairs."""

    def __init__(self, source: SourceInfo, deadline: float | None = None) -> None:
        try:
            self.container: Any = av.open(source.path, mode="r", metadata_errors="ignore")
        except (av.error.FFmpegError, ValueError) as exc:
            raise NotMediaError(f"not a media file: {exc}") from exc
        self.video: Any = pick_video_stream(self.container)
        self.video.thread_type = "AUTO"
        self.audio: Any = self.container.streams.audio[0] if self.container.streams.audio else None
        if source.audio is None:
            self.audio = None
        self.deadline = deadline
        self.stats = DecodeStats()
        self.video_shift = round(source.start_time / self.video.time_base)
        self.audio_shift = (
            round(source.start_time / self.audio.time_base) if self.audio is not None else 0
        )
        # The first audio pts (unshifted) that lies past the video's end, and how many video
        # packets the probe counted: once all are in, nothing after that audio pts is needed.
        self.audio_stop = (
            math.ceil((source.start_time + source.duration) / self.audio.time_base)
            if self.audio is not None
            else 0
        )
        self.video_packets = source.frame_count

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> SingleDecode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode(self, packet: Any) -> list[Any]:
        try:
            return list(packet.decode())
        except av.error.MemoryError:
            raise
        except av.error.FFmpegError as exc:
            self.stats.errors += 1
            self.stats.last_error = str(exc)
            return []

    def _flush(self) -> list[tuple[bool, Any]]:
        """What the decoders still hold when the demuxing stops before the end of the file."""
        held: list[tuple[bool, Any]] = []
        for stream in (self.video, self.audio):
            if stream is None:
                continue
            try:
                held += [(stream is self.video, f) for f in stream.codec_context.decode(None)]
            except av.error.FFmpegError as exc:
                self.stats.errors += 1
                self.stats.last_error = str(exc)
        return held

    def _packets(self) -> Iterator[tuple[bool, Any]]:
        """(is_video, frame) for every frame to keep, in decode order."""
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        video_seen = 0
        for packet in self.container.demux(*streams):
            self.stats.packets += 1
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise ResourceLimitError("decoding took longer than the policy allows")
            is_video = packet.stream is self.video
            if is_video:
                video_seen += packet.pts is not None
            elif packet.pts is not None and packet.pts >= self.audio_stop:
                self.stats.audio_packets_skipped += 1
                if video_seen >= self.video_packets:
                    yield from self._flush()
                    return
                continue
            for frame in self._decode(packet):
                yield is_video, frame

    def frames(self) -> Iterator[tuple[str, Any]]:
        try:
            for is_video, frame in self._packets():
                if frame.pts is None:
                    continue
                if is_video:
                    frame.pts -= self.video_shift
                    self.stats.video_frames += 1
                    yield "video", frame
                else:
                    frame.pts -= self.audio_shift
                    self.stats.audio_frames += 1
                    yield "audio", frame
        except av.error.FFmpegError as exc:
            if self.stats.video_frames == 0:
                raise UndecodableError(f"undecodable video stream: {exc}") from exc
            self.stats.errors += 1
            self.stats.last_error = str(exc)
        if self.stats.video_frames == 0:
            detail = f": {self.stats.last_error}" if self.stats.last_error else ""
            raise UndecodableError(f"undecodable video stream: no frame decoded{detail}")
