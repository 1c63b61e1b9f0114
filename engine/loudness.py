"""Loudness normalization: measure the source's audio, plan one static gain, check the output.

Loudness is ITU-R BS.1770-4 integrated loudness with EBU R128 gating (absolute gate −70 LUFS,
relative gate −10 LU), loudness range per EBU Tech 3342 and true peak per BS.1770-4 Annex 2
(4× oversampled), all as FFmpeg's `ebur128` filter computes them.

- `plan_source`: an audio-only pre-pass inside the job. It demuxes the audio stream only (the
  video packets are read from the file but never decoded), converts to 48 kHz stereo exactly as
  the encoder path does (a mono or 5.1 source is measured as it will sound) and measures.
  `plan_gain` turns that into a static gain to the target (none for silence or near-silence,
  at most `MAX_GAIN_DB`) and a look-ahead limiter where the gained true peak would pass the
  limiter's ceiling; where the limiter acts, the plan is tried on the source and the gain
  raised by what limiting took off. engine/graphs.py AudioGraph applies the plan.
- `measure_track`: the output as it was encoded (the AAC CMAF track decoded after the job).
  `correct_plan` says whether it missed the target (±`CORRECTION_TOLERANCE_LU`) or the
  true-peak ceiling, and with what plan engine/audiopass.py should encode the audio again.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.error
import av.filter

from engine.graphs import add_audio_source
from packager.model import INIT_NAME

# Integrated loudness that ebur128 reports when no block passes the absolute gate (silence).
ABSOLUTE_GATE_LUFS = -70.0
# Sources quieter than this are near-silence (room tone, a muted phone): left as they are, so
# their noise floor is not lifted to speech level.
QUIET_FLOOR_LUFS = -50.0
# Most gain a source gets: enough for a −44 LUFS source to reach −14 LUFS; more would mostly
# lift hiss and hum.
MAX_GAIN_DB = 30.0
# The limiter holds sample peaks this far under the true-peak ceiling: room for the peaks
# between samples and for the AAC encoder's overshoot (bench/loudness_bench.py measures the
# encoded true peak of hard cases against it).
LIMITER_MARGIN_DB = 1.5
LIMITER_ATTACK_MS = 5.0  # its look-ahead; `latency=1` takes the delay back out
LIMITER_RELEASE_MS = 100.0
# Where the limiter acts, tries of the plan on the source to win back what it took off.
LIMITED_TRIALS = 2
LIMITED_TOLERANCE_LU = 0.3
# The encoded track is encoded again (audio only) when it misses the target by more than this
# (the AAC encoder's 16 kHz cut takes ~0.4 LU off pink-noise-like sources, more off brighter
# ones: left alone within the tolerance, so most tracks are encoded once), or passes the
# true-peak ceiling; the limiter then sits this much further under the overshoot.
CORRECTION_TOLERANCE_LU = 0.7
CORRECTION_SLACK_DB = 0.5


@dataclass(frozen=True, slots=True)
class LoudnessSpec:
    """What the job normalizes to (settings REELFORGE_LOUDNESS_*, CLI --loudness-*)."""

    enabled: bool = True
    target_lufs: float = -14.0
    true_peak_dbtp: float = -1.0

    def __post_init__(self) -> None:
        if not -40.0 <= self.target_lufs <= -5.0:
            raise ValueError(f"loudness target must be -40..-5 LUFS, not {self.target_lufs}")
        if not -9.0 <= self.true_peak_dbtp <= 0.0:
            raise ValueError(f"true-peak ceiling must be -9..0 dBTP, not {self.true_peak_dbtp}")

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "target_lufs": self.target_lufs,
            "true_peak_ceiling_dbtp": self.true_peak_dbtp,
        }


@dataclass(frozen=True, slots=True)
class Loudness:
    """One measurement. `true_peak_dbtp` is None for digital silence (−∞)."""

    integrated_lufs: float
    lra_lu: float
    true_peak_dbtp: float | None

    @property
    def silent(self) -> bool:
        return self.integrated_lufs <= ABSOLUTE_GATE_LUFS

    def to_json(self) -> dict[str, Any]:
        peak = self.true_peak_dbtp
        return {
            "integrated_lufs": round(self.integrated_lufs, 2),
            "lra_lu": round(self.lra_lu, 2),
            "true_peak_dbtp": None if peak is None else round(peak, 2),
        }


@dataclass(frozen=True, slots=True)
class GainPlan:
    """A static gain, and the limiter's sample-peak ceiling in dBFS when one is needed."""

    gain_db: float
    limit_dbfs: float | None
    rule: str  # "normalized", "capped", "quiet" (below QUIET_FLOOR_LUFS) or "silent"
    trials: int = 0  # passes that raised the gain for what the limiter took off
    corrected: bool = False  # the audio was encoded again after the output check

    def filters(self) -> list[tuple[str, str]]:
        """The FFmpeg filters that apply the plan (`volume`, then `alimiter`)."""
        chain: list[tuple[str, str]] = []
        if self.gain_db != 0.0:
            chain.append(("volume", f"volume={self.gain_db:.4f}dB:precision=float"))
        if self.limit_dbfs is not None:
            limit = 10 ** (self.limit_dbfs / 20)
            # level=0: no auto make-up gain (it would undo the ceiling); latency=1: the
            # look-ahead delay is compensated, so the first sample stays where it was.
            chain.append(
                (
                    "alimiter",
                    f"limit={limit:.6f}:attack={LIMITER_ATTACK_MS}:release={LIMITER_RELEASE_MS}"
                    ":level=0:latency=1:asc=0",
                )
            )
        return chain

    def to_json(self) -> dict[str, Any]:
        return {
            "gain_db": round(self.gain_db, 2),
            "limiter_dbfs": self.limit_dbfs,
            "rule": self.rule,
            "limited_trials": self.trials,
            "corrected": self.corrected,
        }


def plan_gain(measured: Loudness, spec: LoudnessSpec) -> GainPlan:
    """The gain that brings `measured` to `spec.target_lufs` (EBU R128 §2: normalize the
    programme's integrated loudness), the limiter where gained peaks would pass the ceiling."""
    if measured.silent:
        return GainPlan(0.0, None, "silent")
    if measured.integrated_lufs < QUIET_FLOOR_LUFS:
        return GainPlan(0.0, None, "quiet")
    return _gain_plan(measured, spec.target_lufs - measured.integrated_lufs, None, spec)


def _gain_plan(
    measured: Loudness, gain: float, limit: float | None, spec: LoudnessSpec, **extra: Any
) -> GainPlan:
    """`gain` capped, and the limiter (at `limit`, or the default ceiling) if peaks need it."""
    rule = "normalized"
    if gain > MAX_GAIN_DB:
        gain, rule = MAX_GAIN_DB, "capped"
    limit = round(spec.true_peak_dbtp - LIMITER_MARGIN_DB if limit is None else limit, 2)
    peak = measured.true_peak_dbtp
    needs_limiter = peak is not None and peak + gain > limit
    return GainPlan(round(gain, 4), limit if needs_limiter else None, rule, **extra)


def correct_plan(
    measured: Loudness, plan: GainPlan, output: Loudness, spec: LoudnessSpec
) -> GainPlan | None:
    """The plan to encode the audio again with when the encoded `output` missed the target
    loudness or passed the true-peak ceiling; None when it is good (or nothing was gained)."""
    if plan.rule in ("silent", "quiet") or output.silent:
        return None
    shortfall = spec.target_lufs - output.integrated_lufs
    peak = -math.inf if output.true_peak_dbtp is None else output.true_peak_dbtp
    overshoot = peak - spec.true_peak_dbtp
    off_target = abs(shortfall) > CORRECTION_TOLERANCE_LU and not (
        plan.rule == "capped" and shortfall > 0
    )
    if not off_target and overshoot <= 0:
        return None
    gain = plan.gain_db + (shortfall if off_target else 0.0)
    limit = plan.limit_dbfs
    if overshoot > 0:
        base = spec.true_peak_dbtp - LIMITER_MARGIN_DB if limit is None else limit
        limit = base - overshoot - CORRECTION_SLACK_DB
    again = _gain_plan(measured, gain, limit, spec, trials=plan.trials, corrected=True)
    if (again.gain_db, again.limit_dbfs) == (plan.gain_db, plan.limit_dbfs):
        return None  # capped already: encoding again would give the same track
    return again


def _to_db(linear: float) -> float | None:
    return 20 * math.log10(linear) if linear > 0 else None


class LoudnessMeter:
    """Frames in (any format) → 48 kHz stereo [→ `level_filters`] → `ebur128` → the measurement.

    The same `aresample`/`aformat` conversion as AudioGraph, so what is measured is what the
    encoder would get (after the gain and limiter when `level_filters` are theirs).
    """

    def __init__(
        self,
        template: Any,
        time_base: Any,
        level_filters: Sequence[tuple[str, str]] = (),
        sample_rate: int = 48_000,
    ) -> None:
        graph = av.filter.Graph()
        src = add_audio_source(graph, template, time_base)
        resample = graph.add("aresample", f"{sample_rate}")
        fmt = graph.add(
            "aformat", f"sample_fmts=fltp:sample_rates={sample_rate}:channel_layouts=stereo"
        )
        level = [graph.add(name, args) for name, args in level_filters]
        meter = graph.add("ebur128", "metadata=1:peak=true")
        sink = graph.add("abuffersink")
        graph.link_nodes(src, resample, fmt, *level, meter, sink)
        graph.configure()
        self.graph, self.src, self.sink = graph, src, sink  # the graph must outlive its nodes
        self.layout = template.layout.name
        self.sample_rate = template.sample_rate
        self.format = template.format.name
        self.metadata: dict[str, str] = {}

    def push(self, frame: Any | None) -> None:
        if frame is not None and (
            frame.sample_rate != self.sample_rate
            or frame.layout.name != self.layout
            or frame.format.name != self.format
        ):
            return  # as AudioGraph: a mid-stream format change is dropped
        self.src.push(frame)
        while True:
            try:
                out = self.sink.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            if out.metadata:  # the running values (peaks: the highest so far); keep the latest
                self.metadata = dict(out.metadata)

    def result(self) -> Loudness:
        md = self.metadata
        if not md:
            return Loudness(ABSOLUTE_GATE_LUFS, 0.0, None)
        return Loudness(
            integrated_lufs=max(ABSOLUTE_GATE_LUFS, float(md["lavfi.r128.I"])),
            lra_lu=float(md["lavfi.r128.LRA"]),
            true_peak_dbtp=_to_db(float(md["lavfi.r128.true_peak"])),
        )


def decoded_frames(container: Any, stream: Any) -> Iterator[Any]:
    """Frames of `stream` alone: other streams' packets are demuxed, never decoded. A damaged
    packet is skipped and a broken tail ends the stream, as the transcode's decode does."""
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.MemoryError:
                raise
            except av.error.FFmpegError:
                continue
            yield from (frame for frame in frames if frame.pts is not None)
    except av.error.MemoryError:
        raise
    except av.error.FFmpegError:
        return


def _measure_stream(
    container: Any,
    stream: Any,
    seconds: float | None = None,
    level_filters: Sequence[tuple[str, str]] = (),
) -> Loudness:
    """Measure the first `seconds` of `stream` (all of it when None)."""
    stream.thread_type = "AUTO"
    meter: LoudnessMeter | None = None
    first: int | None = None
    end = None if seconds is None else seconds / stream.time_base
    for frame in decoded_frames(container, stream):
        first = frame.pts if first is None else first
        if end is not None and frame.pts - first >= end:
            break
        if meter is None:
            meter = LoudnessMeter(frame, stream.time_base, level_filters)
        meter.push(frame)
    if meter is None:
        return Loudness(ABSOLUTE_GATE_LUFS, 0.0, None)
    meter.push(None)
    return meter.result()


def measure_source(
    path: str | Path, duration: float, level_filters: Sequence[tuple[str, str]] = ()
) -> Loudness:
    """The pre-pass: the source's first audio stream (the one the job encodes), its first
    `duration` seconds (the output's length), as 48 kHz stereo [after `level_filters`]."""
    with av.open(str(path), mode="r", metadata_errors="ignore") as container:
        return _measure_stream(container, container.streams.audio[0], duration, level_filters)


def plan_source(path: str | Path, duration: float, spec: LoudnessSpec) -> tuple[Loudness, GainPlan]:
    """Measure the source and plan its gain. Where the limiter will act, the plan is tried on
    the source (an audio-only pass again) and the gain raised by what the limiting took off,
    so a source whose loudness sits partly in its peaks (claps, clicks) still reaches the
    target; at most `LIMITED_TRIALS` tries, within `MAX_GAIN_DB`."""
    measured = measure_source(path, duration)
    plan = plan_gain(measured, spec)
    for _ in range(LIMITED_TRIALS):
        if plan.limit_dbfs is None or plan.gain_db >= MAX_GAIN_DB:
            break
        limited = measure_source(path, duration, plan.filters())
        shortfall = spec.target_lufs - limited.integrated_lufs
        if shortfall < LIMITED_TOLERANCE_LU:
            break
        plan = _gain_plan(
            measured, plan.gain_db + shortfall, plan.limit_dbfs, spec, trials=plan.trials + 1
        )
    return measured, plan


def measure_track(track_dir: Path) -> Loudness:
    """Decode an encoded CMAF audio track (init + segments in order, ISO/IEC 23000-19 §7) and
    measure it: the loudness and true peak a player gets, AAC overshoot included."""
    parts = [track_dir / INIT_NAME, *sorted(track_dir.glob("*.m4s"))]
    data = b"".join(part.read_bytes() for part in parts)
    with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
        return _measure_stream(container, container.streams.audio[0])


def loudness_report(
    spec: LoudnessSpec,
    source: Loudness | None,
    plan: GainPlan | None,
    output: Loudness | None,
) -> dict[str, Any]:
    """report.json `loudness`: the spec, and when normalization ran, the source measured by the
    pre-pass, the gain and limiter applied, and the encoded output measured after the job."""
    report = spec.to_json()
    if source is not None and plan is not None and output is not None:
        report.update(
            source=source.to_json(),
            **plan.to_json(),
            output=output.to_json(),
            output_measured_on="encoded AAC track",
        )
    return report
