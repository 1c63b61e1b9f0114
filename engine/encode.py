"""Encoders that each run on their own thread and mux into a CMAF fragment sink.

PyAV releases the GIL while libx264/AAC encode, so one thread per rendition lets the
encoders of every rung overlap with decoding and filtering, as separate ffmpeg processes
would, but fed from one decode.
"""

from __future__ import annotations

import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from engine.encoders import EncoderSettings
from engine.errors import EngineError
from ladders.model import AudioRung, Rung
from packager.cmaf import FragmentSink, muxer_options
from packager.model import TrackKind

_STOP = object()


class TrackEncoder:
    """Owns one output track: encoder + mp4 muxer writing CMAF fragments into `track_dir`."""

    def __init__(
        self, track_dir: Path, kind: TrackKind, fragment_seconds: float, queue_size: int = 8
    ):
        track_dir.mkdir(parents=True, exist_ok=True)
        self.track_dir = track_dir
        self.sink = FragmentSink(track_dir)
        self.container: Any = av.open(  # type: ignore[call-overload]
            self.sink, mode="w", format="mp4", options=muxer_options(kind, fragment_seconds)
        )
        self.stream: Any = None
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.error: BaseException | None = None
        self.stopping = False
        self.thread = threading.Thread(
            target=self._run, name=f"encode-{track_dir.name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def put(self, frame: Any) -> None:
        if self.error is not None:
            raise EngineError(f"encoder {self.track_dir.name} failed: {self.error}") from self.error
        self.queue.put(frame)

    def stop(self) -> None:
        """Ask the thread to flush the encoder and close the muxer (see `finish`)."""
        if not self.stopping:
            self.stopping = True
            self.queue.put(_STOP)

    def finish(self) -> None:
        """Wait for the flush; raise what the thread hit."""
        self.stop()
        self.thread.join()
        if self.error is not None:
            raise EngineError(f"encoder {self.track_dir.name} failed: {self.error}") from self.error

    def prepare(self, frame: Any) -> Any:
        return frame

    def _run(self) -> None:
        stopped = False
        try:
            while True:
                frame = self.queue.get()
                if frame is _STOP:
                    stopped = True
                    break
                if self.error is None:
                    self.container.mux(self.stream.encode(self.prepare(frame)))
            self.container.mux(self.stream.encode(None))
            self.container.close()
            self.sink.close()
        except BaseException as exc:  # reported to the pipeline thread by put()/finish()
            self.error = exc
            while not stopped:  # drain until the stop so the producer never blocks
                stopped = self.queue.get() is _STOP


class VideoEncoder(TrackEncoder):
    """One ladder rung. An IDR is forced every GOP and nowhere else."""

    def __init__(
        self, track_dir: Path, rung: Rung, settings: EncoderSettings, fragment_seconds: float
    ) -> None:
        super().__init__(track_dir, "video", fragment_seconds)
        self.rung = rung
        self.settings = settings
        rate = settings.frame_rate
        self.stream = self.container.add_stream(
            settings.encoder, rate=rate, options=settings.options
        )
        self.stream.width, self.stream.height = rung.width, rung.height
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = Fraction(1) / rate
        ctx = self.stream.codec_context
        ctx.color_range = av.video.reformatter.ColorRange.MPEG
        ctx.colorspace = av.video.reformatter.Colorspace.ITU709
        ctx.color_primaries = av.video.reformatter.ColorPrimaries.BT709
        ctx.color_trc = av.video.reformatter.ColorTrc.BT709
        ctx.thread_type = "FRAME"

    def prepare(self, frame: Any) -> Any:
        # The decoder's picture type survives filtering and x264 obeys it: reset it, and
        # force an I (IDR, with forced-idr) exactly at every GOP start.
        index = frame.pts
        if index % self.settings.gop_frames == 0:
            frame.pict_type = av.video.frame.PictureType.I
        else:
            frame.pict_type = av.video.frame.PictureType.NONE
        return frame


class AudioEncoder(TrackEncoder):
    def __init__(self, track_dir: Path, rung: AudioRung, fragment_seconds: float) -> None:
        super().__init__(track_dir, "audio", fragment_seconds, queue_size=64)
        self.rung = rung
        self.stream = self.container.add_stream(rung.codec, rate=rung.sample_rate)
        self.stream.bit_rate = rung.bitrate
        self.stream.layout = "stereo"
        self.stream.format = "fltp"
        self.stream.time_base = Fraction(1, rung.sample_rate)
