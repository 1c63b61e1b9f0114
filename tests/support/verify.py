"""Check a `reelforge transcode` output folder against the files it really contains.

`verify_output(outdir, source)` measures every rendition once with ffprobe and runs each check
in `CHECKS`; each returns human-readable problems, and an empty list means the output is good.
A test that cares about one property measures once and calls one check:

    out = measure_output(outdir, source)
    assert check_keyframes(out) == []

Times are presentation times as ffprobe reports them, so edit lists are honoured and negative
times (AAC priming) count as hidden.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import accumulate, combinations, pairwise
from pathlib import Path
from typing import Any

import m3u8  # type: ignore[import-untyped]
from mpegdash.parser import MPEGDASHParser  # type: ignore[import-untyped]

from tests.support.ffprobe import (
    ProbeError,
    RenditionProbe,
    Stream,
    probe_rendition,
    probe_streams,
    video_span,
)

SYNC_TOLERANCE = 0.050  # s: rendition durations against each other and the source
REPORT_TOLERANCE = 0.001  # s: report and manifest durations against the media
AAC_FRAME = 1024  # samples per AAC-LC frame
VBV_SLACK = 1.02  # x264 keeps its VBV to within a frame; leave 2% for that
# s: where audio starts against video, segment by segment. Looser than SYNC_TOLERANCE because
# ffprobe reads one or two frames of B-frame delay into a video start that is not there: with
# signed `trun` offsets (CT of the first frame 0) the mov demuxer adds its dts_shift to every
# pts, and those files read exactly like ones whose first frame really shows at the delay.
# ffmpeg's own muxers also cut audio at the video key frame's decode time, the same delay
# before its pts. 100 ms still catches a real offset and is within ITU-R BT.1359's
# acceptability for late audio.
START_TOLERANCE = 0.100
AAC_FRAME = 1024  # samples per AAC-LC frame
VBV_SLACK = 1.02  # x264 keeps its VBV to within a frame; leave 2% for that


@dataclass(frozen=True, slots=True)
class Output:
    """One output folder measured once: the report, the source, every rendition."""

    outdir: Path
    source: Path
    report: dict[str, Any]
    source_video: Stream
    source_has_audio: bool
    source_duration: float  # the source's video span, the duration the output must have
    video: dict[str, RenditionProbe]  # ladder order
    audio: RenditionProbe | None
    problems: tuple[str, ...] = field(default=())  # found while measuring

    @property
    def frame_rate(self) -> Fraction:
        text = (self.report.get("output") or {}).get("frame_rate")
        if text:
            return Fraction(text)
        first = next(iter(self.video.values()), None)
        return first.stream.r_frame_rate if first else Fraction(0)

    def rung(self, name: str) -> dict[str, Any]:
        """The report's ladder entry for a video rendition ({} when missing)."""
        rungs = (self.report.get("ladder") or {}).get("video") or []
        return next((r for r in rungs if r.get("name") == name), {})

    def gop(self, name: str) -> Fraction:
        """The rendition's GOP in seconds, a whole number of output frames."""
        rate = self.frame_rate
        seconds = Fraction(str(self.rung(name).get("gop_seconds", 0)))
        return Fraction(round(seconds * rate)) / rate if rate else Fraction(0)


def measure_output(outdir: Path, source: Path) -> Output:
    problems: list[str] = []
    try:
        report = json.loads((outdir / "report.json").read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"report.json unreadable: {exc}")
        report = {}
    streams = probe_streams(source)
    source_video = next((s for s in streams if s.codec_type == "video"), None)
    if source_video is None:
        raise ValueError(f"{source} has no video stream: nothing to verify against")
    names = [r.get("name", "?") for r in (report.get("ladder") or {}).get("video") or []]
    found = sorted(p.parent.name for p in outdir.glob("*/init.mp4") if p.parent.name != "audio")
    if not names:
        names = found
    for extra in sorted(set(found) - set(names)):
        problems.append(f"{extra}/: rendition folder not in the report's ladder")
    video: dict[str, RenditionProbe] = {}
    for name in names:
        try:
            video[name] = probe_rendition(outdir / name)
        except (ProbeError, OSError) as exc:
            problems.append(f"{name}/: cannot be read: {exc}")
    audio = None
    if (outdir / "audio").exists():
        try:
            audio = probe_rendition(outdir / "audio")
        except (ProbeError, OSError) as exc:
            problems.append(f"audio/: cannot be read: {exc}")
    return Output(
        outdir=outdir,
        source=source,
        report=report,
        source_video=source_video,
        source_has_audio=any(s.codec_type == "audio" for s in streams),
        source_duration=video_span(source),
        video=video,
        audio=audio,
        problems=tuple(problems),
    )


def _t(seconds: float | Fraction) -> str:
    return f"{float(seconds):.3f} s"


def check_keyframes(out: Output) -> list[str]:
    """(a) Key frames sit exactly at segment starts, at the same times in every rendition;
    no segment shows a frame before its key frame (closed GOPs), and every sample flagged
    as sync really decodes as an I frame. The last segment may hold one more key frame: a
    short last GOP merged into it (issue 13), at least half a GOP after its start."""
    problems: list[str] = []
    half_frame = 1 / (2 * out.frame_rate) if out.frame_rate else 0.001
    reference: tuple[str, list[float]] | None = None
    for name, rend in out.video.items():
        decoded = [f.pts for f in rend.keyframes if f.pict_type == "I" and f.pts is not None]
        times: list[float] = []
        gop = float(out.gop(name) or 0)
        for index, seg in enumerate(rend.segments):
            where = f"{name}/{seg.path.name}"
            if not seg.packets:
                problems.append(f"{where}: holds no samples")
                continue
            first = seg.packets[0]
            if not first.keyframe:
                problems.append(f"{where}: starts with a non-key frame")
            inner = [pkt for pkt in seg.packets[1:] if pkt.keyframe]
            merged_tail = (
                index == len(rend.segments) - 1
                and index > 0
                and len(inner) == 1
                and (inner[0].pts or 0) - (first.pts or 0) >= gop - half_frame
            )
            for pkt in [] if merged_tail else inner:
                problems.append(f"{where}: key frame at {_t(pkt.pts or 0)} inside the segment")
            shown = [p.pts for p in seg.packets if p.pts is not None]
            if first.pts is not None and min(shown) < first.pts - half_frame:
                problems.append(f"{where}: shows frames before its key frame (open GOP)")
            for pkt in seg.packets:
                if pkt.keyframe and pkt.pts is not None:
                    times.append(pkt.pts)
                    if not any(abs(pkt.pts - d) < half_frame for d in decoded):
                        problems.append(
                            f"{where}: sample at {_t(pkt.pts)} is flagged sync "
                            "but does not decode as a key I frame"
                        )
        if reference is None:
            reference = (name, times)
            continue
        ref_name, ref_times = reference
        mismatch = len(times) != len(ref_times) or any(
            abs(a - b) > half_frame for a, b in zip(times, ref_times, strict=False)
        )
        if mismatch:
            problems.append(
                f"{name}: key frames at {_times(times)} but {ref_name} has them at "
                f"{_times(ref_times)}"
            )
    return problems


def _times(values: list[float], limit: int = 8) -> str:
    shown = ", ".join(f"{v:.3f}" for v in values[:limit])
    return f"[{shown}{', …' if len(values) > limit else ''}] s"


def check_segment_durations(out: Output) -> list[str]:
    """(b) Every video segment lasts one GOP (the report's gop_seconds rounded to whole output
    frames) within one frame; the last one, when there are several, at least half a GOP and
    less than one and a half (issue 13: a short tail is merged into the segment before it);
    segments follow each other without gaps. Audio segments may not line up to the sample
    with video (AAC frames are 1024 samples) but must not outgrow the GOP by more than one
    AAC frame, nor wander from the video segment boundaries by more than `START_TOLERANCE`."""
    problems: list[str] = []
    if not out.frame_rate:
        return ["report.json: no output frame_rate, so the GOP cannot be checked"]
    frame = 1 / out.frame_rate
    for name, rend in out.video.items():
        gop = out.gop(name)
        if not gop:
            problems.append(f"{name}: report gives no gop_seconds")
            continue
        problems += _check_track(name, rend, gop, frame)
    first = next(iter(out.video.values()), None)
    if out.audio and first and out.audio.stream.sample_rate:
        name = next(iter(out.video))
        gop = out.gop(name)
        aac = Fraction(AAC_FRAME, out.audio.stream.sample_rate)
        problems += _check_track("audio", out.audio, gop, aac, tolerance_low=gop)
        if len(out.audio.segments) != len(first.segments):
            problems.append(
                f"audio: {len(out.audio.segments)} segments but {name} has {len(first.segments)}"
            )
        for a_seg, v_seg in zip(out.audio.segments, first.segments, strict=False):
            a0, v0 = max(a_seg.first_pts or 0, 0), max(v_seg.first_pts or 0, 0)
            if abs(a0 - v0) > START_TOLERANCE:
                problems.append(
                    f"audio/{a_seg.path.name}: starts at {_t(a0)}, "
                    f"{name}/{v_seg.path.name} at {_t(v0)}"
                )
    return problems


def _check_track(
    name: str,
    rend: RenditionProbe,
    gop: Fraction,
    tolerance: Fraction,
    tolerance_low: Fraction | None = None,
) -> list[str]:
    problems: list[str] = []
    low = tolerance if tolerance_low is None else tolerance_low
    eps = 1e-6
    last = len(rend.segments) - 1
    for i, seg in enumerate(rend.segments):
        where = f"{name}/{seg.path.name}"
        d = seg.duration
        if i < last and not (gop - low - eps <= d <= gop + tolerance + eps):
            problems.append(f"{where}: lasts {_t(d)}, the GOP is {_t(gop)}")
        if i == last and last == 0 and not 0 < d <= gop + tolerance + eps:
            problems.append(f"{where}: the only segment lasts {_t(d)}, the GOP is {_t(gop)}")
        if i == last and last > 0 and not gop / 2 - low - eps <= d < gop * 3 / 2 + tolerance:
            problems.append(
                f"{where}: the last segment lasts {_t(d)}, not within [0.5, 1.5) GOPs of {_t(gop)}"
            )
    for a, b in pairwise(rend.segments):
        if a.start is not None and b.start is not None:
            gap = b.start - (a.start + a.duration)
            if abs(gap) > REPORT_TOLERANCE:
                problems.append(f"{name}/{b.path.name}: starts {gap * 1000:+.1f} ms off the end "
                                f"of {a.path.name}")  # fmt: skip
    return problems


def check_geometry(out: Output) -> list[str]:
    """(c) Each rendition keeps the source's display aspect ratio: its long side is within
    1 px of short side x display ratio; it is upright (no rotation, same orientation as the
    source's display), has square pixels and yuv420p, and is no larger than the source."""
    problems: list[str] = []
    dw, dh = out.source_video.display_size
    for name, rend in out.video.items():
        st = rend.stream
        w, h = st.width, st.height
        if st.rotation:
            problems.append(f"{name}: carries a {st.rotation}° display rotation; must be upright")
        if st.sample_aspect_ratio != 1:
            sar = st.sample_aspect_ratio
            problems.append(f"{name}: SAR {sar.numerator}:{sar.denominator}, not square pixels")
        if st.pix_fmt != "yuv420p":
            problems.append(f"{name}: pixel format {st.pix_fmt}, not yuv420p")
        if (w > h) != (dw > dh) or (w < h) != (dw < dh):
            problems.append(f"{name}: {w}x{h} is not oriented like the {dw}x{dh} source display")
            continue
        short = min(w, h)
        ideal = Fraction(short * max(dw, dh), min(dw, dh))
        if abs(max(w, h) - ideal) > 1:
            problems.append(
                f"{name}: {w}x{h} distorts the {dw}x{dh} display: the long side "
                f"should be {float(ideal):.1f} px for a {short} px short side"
            )
        if w > dw or h > dh:
            problems.append(f"{name}: {w}x{h} is larger than the {dw}x{dh} source")
    return problems


def check_bitrates(out: Output) -> list[str]:
    """(d) The encoder's rate cap holds on the real streams.

    Under the H.264 HRD (Annex C) a buffer of `bufsize` bits fills at `maxrate` and each frame
    is drawn from it; it can hold at most `bufsize`, so the frames of any stretch of T seconds
    carry at most maxrate x T + bufsize bits. Hence a 2 s segment may reach
    maxrate + bufsize / 2 s, and even the whole clip's average may exceed maxrate by
    bufsize / duration, which is large for a short clip. Every run of consecutive segments is
    held to that bound (elementary-stream bytes, no container), the worst one reported."""
    problems: list[str] = []
    for name, rend in out.video.items():
        rung = out.rung(name)
        maxrate, bufsize = rung.get("maxrate"), rung.get("bufsize")
        if not maxrate or not bufsize:
            problems.append(f"{name}: report gives no maxrate/bufsize")
            continue
        bits = list(accumulate((seg.payload * 8 for seg in rend.segments), initial=0))
        secs = list(accumulate((seg.duration for seg in rend.segments), initial=0.0))
        worst: tuple[float, int, int] | None = None
        for i, j in combinations(range(len(bits)), 2):  # segments i..j-1
            ratio = (bits[j] - bits[i]) / ((maxrate * (secs[j] - secs[i]) + bufsize) * VBV_SLACK)
            if ratio > 1 and (worst is None or ratio > worst[0]):
                worst = (ratio, i, j)
        if worst:
            _, i, j = worst
            rate = (bits[j] - bits[i]) / (secs[j] - secs[i])
            span = f"{rend.segments[i].path.name}..{rend.segments[j - 1].path.name}"
            problems.append(
                f"{name}/{span}: {rate / 1000:.0f} kbit/s over {secs[j] - secs[i]:.2f} s, above "
                f"maxrate {maxrate / 1000:.0f} kbit/s + bufsize {bufsize / 1000:.0f} kbit "
                "over that time"
            )
    return problems


def check_audio(out: Output) -> list[str]:
    """(e) Audio exists exactly when the source has some, and is AAC-LC stereo 48 kHz."""
    if out.audio is None:
        return ["audio/: missing, the source has audio"] if out.source_has_audio else []
    if not out.source_has_audio:
        return ["audio/: present, but the source has no audio"]
    st = out.audio.stream
    problems = []
    if (st.codec_name, st.profile) != ("aac", "LC"):
        problems.append(f"audio: {st.codec_name} {st.profile}, not AAC-LC")
    if st.channels != 2:
        problems.append(f"audio: {st.channels} channels ({st.channel_layout}), not stereo")
    if st.sample_rate != 48_000:
        problems.append(f"audio: {st.sample_rate} Hz, not 48000 Hz")
    return problems


def check_durations(out: Output) -> list[str]:
    """(e) Every rendition lasts as long as the source's video (its span, which holds for
    containers without a duration and with edit lists) within `SYNC_TOLERANCE`, and audio
    starts with video within `START_TOLERANCE`."""
    problems = []
    tracks = dict(out.video) | ({"audio": out.audio} if out.audio else {})
    for name, rend in tracks.items():
        start, end = rend.span
        if abs((end - start) - out.source_duration) > SYNC_TOLERANCE:
            problems.append(
                f"{name}: lasts {_t(end - start)}, the source video {_t(out.source_duration)}"
            )
    if out.audio and out.video:
        (vname, vrend), (astart, aend) = next(iter(out.video.items())), out.audio.span
        vstart, vend = vrend.span
        if abs((aend - astart) - (vend - vstart)) > SYNC_TOLERANCE:
            problems.append(f"audio: lasts {_t(aend - astart)}, {vname} {_t(vend - vstart)}")
        if abs(astart - vstart) > START_TOLERANCE:
            problems.append(f"audio: starts at {_t(astart)}, {vname} at {_t(vstart)}")
    return problems


def check_manifests(out: Output) -> list[str]:
    """(f) master.m3u8 and manifest.mpd parse, point at files that exist and at every
    segment, agree with the media, and ffmpeg plays both without an error."""
    tracks = dict(out.video) | ({"audio": out.audio} if out.audio else {})
    return [
        *check_hls(out.outdir, tracks),
        *check_dash(out.outdir, tracks),
        *play_with_ffmpeg(out.outdir / "master.m3u8"),
        *play_with_ffmpeg(out.outdir / "manifest.mpd"),
    ]


def check_hls(outdir: Path, tracks: dict[str, RenditionProbe]) -> list[str]:
    """RFC 8216: a version 7 multivariant playlist whose variants and audio rendition point at
    media playlists that list every segment of their folder, with its real duration."""
    path = outdir / "master.m3u8"
    try:
        master = m3u8.load(str(path))
    except Exception as exc:  # the parser raises bare exceptions of several kinds
        return [f"master.m3u8: cannot be read: {exc}"]
    problems: list[str] = []
    if not master.is_variant:
        problems.append("master.m3u8: not a multivariant playlist")
    if master.version != 7:
        problems.append(f"master.m3u8: EXT-X-VERSION {master.version}, not 7")
    audio_peak = rfc_peak(tracks["audio"]) if "audio" in tracks else 0.0
    listed = [m.uri for m in master.media if m.uri] + [v.uri for v in master.playlists]
    for uri in listed:
        problems += _check_media_playlist(outdir, uri, tracks)
    for variant in master.playlists:
        info, rend = variant.stream_info, tracks.get(Path(variant.uri).parent.name)
        if rend is None:
            continue
        # §4.3.4.2: BANDWIDTH is the peak segment bit rate of the variant with its audio,
        # neither below it nor more than 10 % above (an overstated one makes players pick
        # renditions lower than the connection allows).
        peak = rfc_peak(rend) + (audio_peak if info.audio else 0.0)
        if not peak * 0.99 <= (info.bandwidth or 0) <= peak * 1.1:
            problems.append(
                f"master.m3u8: {variant.uri} BANDWIDTH {info.bandwidth}, measured peak {peak:.0f}"
            )
        if info.resolution != (rend.stream.width, rend.stream.height):
            problems.append(f"master.m3u8: {variant.uri} RESOLUTION {info.resolution}, "
                            f"the stream {rend.stream.width}x{rend.stream.height}")  # fmt: skip
    for name in sorted(set(tracks) - {Path(uri).parent.name for uri in listed}):
        problems.append(f"master.m3u8: {name} is not listed")
    return problems


def rfc_peak(rend: RenditionProbe) -> float:
    """Peak segment bit rate (RFC 8216 §4.3.4.2): the highest bit rate of any run of
    consecutive segment files lasting 0.5-1.5 target durations (the largest rounded
    duration); the whole track's when no run is long enough."""
    segs = [(s.size * 8, s.duration) for s in rend.segments]
    target = max([1, *(int(d + 0.5) for _, d in segs)])
    rates = [
        sum(b for b, _ in segs[i:j]) / sum(d for _, d in segs[i:j])
        for i in range(len(segs))
        for j in range(i + 1, len(segs) + 1)
        if 0.5 * target - 1e-6 <= sum(d for _, d in segs[i:j]) <= 1.5 * target + 1e-6
    ]
    total = sum(d for _, d in segs)
    return max(rates, default=sum(b for b, _ in segs) / total if total else 0.0)


def delivery_needed(rend: RenditionProbe, buffer: float) -> float:
    """The least constant bit rate at which ISO/IEC 23009-1 §5.3.5.2's client, starting at
    any segment and playing `buffer` seconds after the first bit, never waits for a segment:
    a bisection over a simulated channel (an independent check of packager/model.py)."""
    segs = [(s.size * 8, s.duration) for s in rend.segments]

    def enough(rate: float) -> bool:
        for first in range(len(segs)):
            arrived, due = 0.0, buffer
            for bits, seconds in segs[first:]:
                arrived += bits / rate
                if arrived > due + 1e-9:
                    return False
                due += seconds
        return True

    low, high = 1.0, max(b for b, _ in segs) / buffer * len(segs) + 1
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def _check_media_playlist(outdir: Path, uri: str, tracks: dict[str, RenditionProbe]) -> list[str]:
    path = outdir / uri
    if not path.is_file():
        return [f"master.m3u8: {uri} does not exist"]
    playlist = m3u8.load(str(path))
    problems: list[str] = []
    if not playlist.is_endlist:
        problems.append(f"{uri}: no EXT-X-ENDLIST")
    inits = {s.init_section.uri for s in playlist.segments if s.init_section}
    if not inits:
        problems.append(f"{uri}: no EXT-X-MAP")
    for name in sorted(inits):
        if not (path.parent / name).is_file():
            problems.append(f"{uri}: EXT-X-MAP {name} does not exist")
    for seg in playlist.segments:
        if not (path.parent / seg.uri).is_file():
            problems.append(f"{uri}: segment {seg.uri} does not exist")
        # §4.3.3.1: every EXTINF, rounded, is at most EXT-X-TARGETDURATION
        if round(seg.duration) > (playlist.target_duration or 0):
            problems.append(f"{uri}: {seg.uri} EXTINF {seg.duration} over the target duration")
    rend = tracks.get(path.parent.name)
    if rend is not None:
        listed = [(path.parent / s.uri, float(s.duration)) for s in playlist.segments]
        problems += _compare_listing(uri, listed, rend)
    return problems


def _compare_listing(
    where: str, listed: list[tuple[Path, float]], rend: RenditionProbe
) -> list[str]:
    """A manifest's segment list against the folder: same files, same durations."""
    files = [s.path for s in rend.segments]
    if [p.resolve() for p, _ in listed] != [p.resolve() for p in files]:
        return [f"{where}: lists {len(listed)} segments, {rend.folder.name}/ holds {len(files)}"]
    for (p, d), seg in zip(listed, rend.segments, strict=True):
        if abs(d - seg.duration) > REPORT_TOLERANCE:
            return [f"{where}: {p.name} is listed at {_t(d)}, it lasts {_t(seg.duration)}"]
    return []


_TEMPLATE_VAR = re.compile(r"\$(RepresentationID|Number|Time|Bandwidth)(?:%0(\d+)d)?\$")


def _expand(template: str, rep: Any, number: int = 0, time: int = 0) -> str:
    """ISO/IEC 23009-1 §5.3.9.4.4 template identifiers."""
    values = {
        "RepresentationID": rep.id,
        "Number": number,
        "Time": time,
        "Bandwidth": rep.bandwidth,
    }

    def sub(m: re.Match[str]) -> str:
        value = values[m.group(1)]
        return f"{int(value):0{int(m.group(2))}d}" if m.group(2) else str(value)

    return _TEMPLATE_VAR.sub(sub, template).replace("$$", "$")


def xs_seconds(value: str) -> float | None:
    """Seconds of an xs:duration with hours/minutes/seconds only ("PT1M2.5S")."""
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?", value)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def check_dash(outdir: Path, tracks: dict[str, RenditionProbe]) -> list[str]:
    """ISO/IEC 23009-1: a static MPD whose SegmentTemplate + SegmentTimeline (§5.3.9.6) name,
    for each Representation (id = folder), the init segment and every segment of the folder
    with its real duration."""
    path = outdir / "manifest.mpd"
    try:
        mpd = MPEGDASHParser.parse(str(path))
    except Exception as exc:  # the parser raises bare exceptions of several kinds
        return [f"manifest.mpd: cannot be read: {exc}"]
    problems: list[str] = []
    if mpd.type != "static":
        problems.append(f"manifest.mpd: type {mpd.type}, not static")
    seen: set[str] = set()
    buffer = xs_seconds(mpd.min_buffer_time or "")
    if buffer is None or buffer <= 0:
        problems.append(f"manifest.mpd: minBufferTime {mpd.min_buffer_time!r} is not a duration")
    for period in mpd.periods or []:
        for aset in period.adaptation_sets or []:
            for rep in aset.representations or []:
                seen.add(rep.id)
                problems += _check_representation(outdir, aset, rep, tracks.get(rep.id))
                rend = tracks.get(rep.id)
                if rend is None or not buffer or buffer <= 0:
                    continue
                # §5.3.5.2: enough for playout after minBufferTime, and not overstated
                needed = delivery_needed(rend, buffer)
                if not needed * 0.99 <= int(rep.bandwidth or 0) <= needed * 1.1:
                    problems.append(
                        f"manifest.mpd: {rep.id} @bandwidth {rep.bandwidth}, the delivery "
                        f"model needs {needed:.0f} with minBufferTime {buffer} s"
                    )
    for name in sorted(set(tracks) - seen):
        problems.append(f"manifest.mpd: no Representation for {name}")
    return problems


def _check_representation(
    outdir: Path, aset: Any, rep: Any, rend: RenditionProbe | None
) -> list[str]:
    where = f"manifest.mpd: {rep.id}"
    templates = rep.segment_templates or aset.segment_templates or []
    if not templates or not templates[0].segment_timelines:
        return [f"{where}: no SegmentTemplate with a SegmentTimeline"]
    tpl = templates[0]
    problems: list[str] = []
    if not (outdir / _expand(tpl.initialization, rep)).is_file():
        problems.append(f"{where}: init {_expand(tpl.initialization, rep)} does not exist")
    timescale, number = int(tpl.timescale or 1), int(tpl.start_number or 1)
    listed: list[tuple[Path, float]] = []
    time = 0
    for s in tpl.segment_timelines[0].Ss:
        time = int(s.t) if s.t is not None else time
        for _ in range(int(s.r or 0) + 1):
            file = outdir / _expand(tpl.media, rep, number, time)
            if not file.is_file():
                problems.append(f"{where}: segment {file.relative_to(outdir)} does not exist")
            listed.append((file, int(s.d) / timescale))
            time, number = time + int(s.d), number + 1
    if rend is None:
        return [*problems, f"{where}: no such rendition folder"]
    if rep.width and (int(rep.width), int(rep.height)) != (rend.stream.width, rend.stream.height):
        problems.append(f"{where}: {rep.width}x{rep.height}, the stream "
                        f"{rend.stream.width}x{rend.stream.height}")  # fmt: skip
    return [*problems, *_compare_listing(where, listed, rend)]


def play_with_ffmpeg(manifest: Path) -> list[str]:
    """Decode every stream the manifest offers with ffmpeg's own HLS or DASH demuxer.

    At `-v error` both demuxers skip a missing segment silently and exit 0 ("Failed to open
    segment" is a warning), so warnings count as problems too. A known one: with signed
    `trun` composition offsets and no edit list, the DASH demuxer (a fresh mov demuxer per
    segment) shifts each segment's pts by that segment's own most negative offset, so
    segments overlap and the null muxer warns of "non monotonically increasing dts"."""
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "warning", "-i", manifest.name,
           "-map", "0", "-f", "null", "-"]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=manifest.parent, capture_output=True, text=True, check=False, timeout=600
    )
    if proc.returncode or proc.stderr.strip():
        lines = proc.stderr.strip().splitlines()[:3]
        return [f"{manifest.name}: ffmpeg exit {proc.returncode}: {' | '.join(lines)}"]
    return []


def check_report(out: Output) -> list[str]:
    """(g) report.json's numbers agree with the files: segment counts, durations, sizes and
    bit rates per rendition, rung sizes, frame rate, source duration."""
    problems: list[str] = []
    tracks = dict(out.video) | ({"audio": out.audio} if out.audio else {})
    reported = out.report.get("renditions") or {}
    for name in sorted(set(tracks) - set(reported)):
        problems.append(f"report.json: no renditions entry for {name}")
    for name, entry in reported.items():
        rend = tracks.get(name)
        if rend is None:
            problems.append(f"report.json: rendition {name} has no folder")
            continue
        problems += _compare_rendition(name, entry, rend)
    for name, rend in out.video.items():
        rung = out.rung(name)
        if (rung.get("width"), rung.get("height")) != (rend.stream.width, rend.stream.height):
            problems.append(
                f"report.json: {name} is {rung.get('width')}x{rung.get('height')}, "
                f"the stream {rend.stream.width}x{rend.stream.height}"
            )
        rate = rend.stream.avg_frame_rate or rend.stream.r_frame_rate
        if out.frame_rate and abs(rate / out.frame_rate - 1) > Fraction(1, 1000):
            problems.append(f"report.json: frame_rate {out.frame_rate}, {name} runs at {rate}")
    if ((out.report.get("ladder") or {}).get("audio") is None) != (out.audio is None):
        problems.append("report.json: ladder.audio disagrees with the audio/ folder")
    reported_duration = (out.report.get("source") or {}).get("duration")
    if reported_duration is None or abs(reported_duration - out.source_duration) > SYNC_TOLERANCE:
        problems.append(
            f"report.json: source duration {reported_duration}, measured {_t(out.source_duration)}"
        )
    return problems


def _compare_rendition(name: str, entry: dict[str, Any], rend: RenditionProbe) -> list[str]:
    problems: list[str] = []
    segs = rend.segments
    if entry.get("segment_count") != len(segs):
        problems.append(
            f"report.json: {name} has {entry.get('segment_count')} segments, the folder {len(segs)}"
        )
    durations = entry.get("segment_durations") or []
    if len(durations) != len(segs) or any(
        abs(d - s.duration) > REPORT_TOLERANCE for d, s in zip(durations, segs, strict=False)
    ):
        problems.append(
            f"report.json: {name} segment_durations {_times(durations)}, "
            f"measured {_times([s.duration for s in segs])}"
        )
    sizes = sum(s.size for s in segs)
    if entry.get("bytes") not in (sizes, sizes + rend.init_size):
        problems.append(f"report.json: {name} bytes {entry.get('bytes')}, the files hold {sizes}")
    total = sum(s.duration for s in segs)
    measured = {
        "average_bitrate": sizes * 8 / total if total else 0,
        "peak_bitrate": rfc_peak(rend),
    }
    for key, value in measured.items():
        if abs(entry.get(key, 0) - value) > 0.01 * value:
            problems.append(f"report.json: {name} {key} {entry.get(key)}, measured {value:.0f}")
    return problems


def check_artifacts(out: Output) -> list[str]:
    """The poster and storyboard exist; the poster is an upright JPEG; the VTT is WebVTT."""
    problems: list[str] = []
    for name in ("poster.jpg", "storyboard.jpg", "storyboard.vtt"):
        path = out.outdir / name
        if not path.is_file() or not path.stat().st_size:
            problems.append(f"{name}: missing or empty")
    poster = out.outdir / "poster.jpg"
    if poster.is_file() and poster.stat().st_size:
        try:
            st = probe_streams(poster)[0]
            dw, dh = out.source_video.display_size
            if st.codec_name != "mjpeg" or (st.width > st.height) != (dw > dh):
                problems.append(f"poster.jpg: {st.codec_name} {st.width}x{st.height}, not an "
                                f"upright JPEG for a {dw}x{dh} source")  # fmt: skip
        except ProbeError as exc:
            problems.append(f"poster.jpg: unreadable: {exc}")
    vtt = out.outdir / "storyboard.vtt"
    if vtt.is_file() and not vtt.read_text(errors="replace").startswith("WEBVTT"):
        problems.append("storyboard.vtt: does not start with WEBVTT")
    return problems


Check = Callable[[Output], list[str]]
CHECKS: tuple[Check, ...] = (
    check_keyframes,
    check_segment_durations,
    check_geometry,
    check_bitrates,
    check_audio,
    check_durations,
    check_manifests,
    check_report,
    check_artifacts,
)


def verify_output(outdir: Path, source_path: Path, checks: tuple[Check, ...] = CHECKS) -> list[str]:
    """Every problem found in `outdir`, the transcode of `source_path`; [] when it is good."""
    out = measure_output(outdir, source_path)
    problems = list(out.problems)
    for check in checks:
        problems += check(out)
    return problems
