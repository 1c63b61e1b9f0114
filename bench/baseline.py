"""The ffmpeg commands reelforge is measured against, built from the engine's own settings.

The rungs come from `ladders.choose_ladder`, the x264 options from the engine's encoder
profile (`X264Profile.ffmpeg_args`), the audio from `AudioRung`: the baseline cannot drift
from what the engine encodes. The filter graph is the one a user writes: `split`, then each
rung scaled from the source with the engine's scale options (the engine itself may do less
work, e.g. scale as a cascade; that is what is being measured). The thumbnail sizes follow
`engine.thumbnails.ThumbnailTap` by hand.

Three commands:

- `ladder_command`: what a user would run instead of `reelforge transcode`: ONE ffmpeg process
  that decodes once, `fps` → `split` → `scale,format,setsar` per rung, the same x264 options
  per rung, AAC, and FFmpeg's `dash` muxer with `hls_playlist=1`, which writes fMP4 segments
  with a DASH manifest and HLS playlists over the same segments (the closest to our CMAF
  folder + master.m3u8 + manifest.mpd). With `thumbnails=True` the poster and the storyboard
  sprite are two more outputs of the same command, fed from the same `split`: the way a user
  who knows ffmpeg avoids decoding the source three times.
- `raw_prepare_command`: decode + scale the source once to raw yuv420p per rung (untimed).
- `floor_command`: x264 alone: the same encoders fed the raw files, output thrown away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from engine.encoders import (
    DEFAULT_PRESET,
    EncoderProfile,
    EncoderSettings,
    gop_frames_for,
    select_encoder,
)
from engine.source import SourceInfo, probe
from engine.thumbnails import (
    THUMB_COLUMNS,
    THUMB_INTERVAL,
    THUMB_LONG_SIDE,
    THUMB_MAX,
    thumb_size,
)
from ladders import AudioRung, Rung, choose_ladder

SEGMENT_SECONDS = 2.0  # the CLI's default --segment-seconds
# Poster: the most detailed frame sampled every 0.5 s over the first 3 s (engine.thumbnails).
POSTER_WINDOW = 3.0
POSTER_QUALITY = 2
STORYBOARD_QUALITY = 4
QUIET = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y")


@dataclass(frozen=True, slots=True)
class LadderPlan:
    """What the engine will encode for one source, as the engine itself decides it."""

    source: SourceInfo
    rungs: list[Rung]
    settings: list[EncoderSettings]
    profile: EncoderProfile
    frame_rate: Fraction
    segment_seconds: float
    audio: AudioRung | None

    @property
    def expected_frames(self) -> int:
        """Output frames at the CFR output rate (engine.pipeline.run_single_pass)."""
        duration = Fraction(self.source.duration).limit_denominator(100000)
        return max(1, round(duration * self.frame_rate))

    @property
    def thumbnail_count(self) -> int:
        """Storyboard frames: one for each interval that starts before the last frame."""
        last = (self.expected_frames - 1) / self.frame_rate
        return min(THUMB_MAX, math.floor(last / THUMB_INTERVAL) + 1)

    @property
    def thumbnail_size(self) -> tuple[int, int]:
        return thumb_size(self.rungs[0].width, self.rungs[0].height, THUMB_LONG_SIDE)

    @property
    def storyboard_grid(self) -> tuple[int, int]:
        columns = min(THUMB_COLUMNS, self.thumbnail_count)
        return columns, math.ceil(self.thumbnail_count / columns)


def newest_ffmpeg() -> str:
    """The static ffmpeg 9 of the `imageio-ffmpeg` wheel (a dev extra): the newest CLI, which
    runs each encoder on a thread of its own (ffmpeg >= 7)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise FileNotFoundError(
            "no ffmpeg 9: `pip install -e '.[dev]'` (imageio-ffmpeg) or pass --ffmpeg9 PATH"
        ) from exc
    exe: str = imageio_ffmpeg.get_ffmpeg_exe()
    return exe


def plan_ladder(
    source_path: str | Path,
    preset: str = DEFAULT_PRESET,
    segment_seconds: float = SEGMENT_SECONDS,
) -> LadderPlan:
    source = probe(source_path)
    rungs = choose_ladder(source)
    profile = select_encoder("libx264")
    frame_rate = source.output_frame_rate
    gop = gop_frames_for(frame_rate, segment_seconds)
    settings = [profile.settings(rung, frame_rate, gop, preset) for rung in rungs]
    audio = AudioRung() if source.audio is not None else None
    return LadderPlan(source, rungs, settings, profile, frame_rate, segment_seconds, audio)


def rate_text(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}"


def rung_filter(rung: Rung) -> str:
    """One rung from the source: BT.709 limited range, 4:2:0 8-bit, square pixels, the
    engine's scaler (bicubic).

    `scale` converts the matrix (BT.2020 of an HDR source included; no tone mapping) and
    `format` the bit depth. `setparams` labels the frames BT.709: since ffmpeg 7 the encoder
    takes primaries and transfer from the frames, over `-color_primaries`/`-color_trc`, so
    without it ffmpeg 9 tags an HLG source's rungs BT.2020/HLG (5.1 obeys the options; the
    label costs nothing, and both binaries run the same graph)."""
    return (
        f"scale=w={rung.width}:h={rung.height}:flags=bicubic:out_color_matrix=bt709:"
        f"out_range=tv,format=pix_fmts=yuv420p,"
        f"setparams=color_primaries=bt709:color_trc=bt709,setsar=1"
    )


def video_encoder_args(plan: LadderPlan) -> list[str]:
    """Per output video stream: the profile's x264 options and the engine's BT.709 tags."""
    args: list[str] = []
    for index, settings in enumerate(plan.settings):
        args += plan.profile.ffmpeg_args(settings, index)
        args += [
            f"-color_primaries:v:{index}", "bt709", f"-color_trc:v:{index}", "bt709",
            f"-colorspace:v:{index}", "bt709", f"-color_range:v:{index}", "tv",
        ]  # fmt: skip
    return args


def audio_args(audio: AudioRung) -> list[str]:
    return [
        "-c:a", audio.codec, "-b:a", str(audio.bitrate),
        "-ar", str(audio.sample_rate), "-ac", str(audio.channels),
    ]  # fmt: skip


def dash_args(plan: LadderPlan) -> list[str]:
    """FFmpeg's dash muxer: fMP4 segments of one GOP, DASH + HLS (master.m3u8) over them."""
    sets = "id=0,streams=v" + (" id=1,streams=a" if plan.audio is not None else "")
    return [
        "-f", "dash",
        "-seg_duration", f"{plan.segment_seconds:g}",
        "-use_template", "1", "-use_timeline", "1",
        "-hls_playlist", "1",
        "-adaptation_sets", sets,
    ]  # fmt: skip


def ladder_command(
    plan: LadderPlan, outdir: Path, thumbnails: bool = True, ffmpeg: str = "ffmpeg"
) -> list[str]:
    """The one-process ffmpeg equivalent of `reelforge transcode` (see the module docstring)."""
    rungs = plan.rungs
    branches = [f"[r{i}]" for i in range(len(rungs))]
    if thumbnails:
        branches += ["[p]", "[s]"]
    graph = [f"[0:v:0]fps={rate_text(plan.frame_rate)},split={len(branches)}{''.join(branches)}"]
    graph += [f"[r{i}]{rung_filter(rung)}[v{i}]" for i, rung in enumerate(rungs)]
    if thumbnails:
        # The poster: FFmpeg's `thumbnail` filter over frames every 0.5 s of the first 3 s.
        samples = round(POSTER_WINDOW * 2) + 1
        graph.append(
            f"[p]trim=end={POSTER_WINDOW + 0.5:g},fps=2,thumbnail={samples},"
            f"trim=end_frame=1[poster]"
        )
        (tw, th), (columns, rows) = plan.thumbnail_size, plan.storyboard_grid
        graph.append(f"[s]fps=1/{THUMB_INTERVAL:g},scale={tw}:{th},tile={columns}x{rows}[sprite]")
    command = [ffmpeg, *QUIET, "-i", plan.source.path, "-filter_complex", ";".join(graph)]
    for i in range(len(rungs)):
        command += ["-map", f"[v{i}]"]
    if plan.audio is not None:
        command += ["-map", "0:a:0", *audio_args(plan.audio)]
    command += [*video_encoder_args(plan), *dash_args(plan), str(outdir / "manifest.mpd")]
    if thumbnails:
        command += ["-map", "[poster]", "-frames:v", "1", "-q:v", str(POSTER_QUALITY)]
        command += ["-update", "1", str(outdir / "poster.jpg")]
        command += ["-map", "[sprite]", "-frames:v", "1", "-q:v", str(STORYBOARD_QUALITY)]
        command += ["-update", "1", str(outdir / "storyboard.jpg")]
    return command


def raw_paths(plan: LadderPlan, rawdir: Path) -> list[Path]:
    return [rawdir / f"{rung.name}-{rung.width}x{rung.height}.yuv" for rung in plan.rungs]


def raw_prepare_command(plan: LadderPlan, rawdir: Path, ffmpeg: str = "ffmpeg") -> list[str]:
    """Decode + fps + scale once, each rung to a raw yuv420p file (the floor's input)."""
    n = len(plan.rungs)
    graph = [
        f"[0:v:0]fps={rate_text(plan.frame_rate)},split={n}{''.join(f'[r{i}]' for i in range(n))}"
    ]
    graph += [f"[r{i}]{rung_filter(rung)}[v{i}]" for i, rung in enumerate(plan.rungs)]
    command = [ffmpeg, *QUIET, "-i", plan.source.path, "-filter_complex", ";".join(graph)]
    for i, path in enumerate(raw_paths(plan, rawdir)):
        command += ["-map", f"[v{i}]", "-f", "rawvideo", "-pix_fmt", "yuv420p", str(path)]
    return command


def floor_command(plan: LadderPlan, rawdir: Path, ffmpeg: str = "ffmpeg") -> list[str]:
    """x264 alone: every rung's encoder fed its raw file in one process, output discarded."""
    command = [ffmpeg, *QUIET]
    for rung, path in zip(plan.rungs, raw_paths(plan, rawdir), strict=True):
        command += [
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", f"{rung.width}x{rung.height}",
            "-framerate", rate_text(plan.frame_rate), "-i", str(path),
        ]  # fmt: skip
    for i in range(len(plan.rungs)):
        command += ["-map", f"{i}:v:0"]
    return [*command, *video_encoder_args(plan), "-f", "null", "-"]
