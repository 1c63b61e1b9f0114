"""The media-test helpers themselves: every generated clip has the property it is named for,
and the output verifier passes a good output and names what is wrong with a broken one.

The good output is made by ffmpeg's DASH muxer (one run for every stream, so they share one
timeline), moved into the engine's layout, with playlists, MPD and report.json written here.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import pytest

from tests.support.clips import GENERATED, ffmpeg
from tests.support.ffprobe import (
    ProbeError,
    RenditionProbe,
    probe_format,
    probe_frames,
    probe_packets,
    probe_rendition,
    probe_streams,
    video_span,
)
from tests.support.verify import (
    Output,
    check_audio,
    check_bitrates,
    check_durations,
    check_geometry,
    check_keyframes,
    check_manifests,
    check_report,
    check_segment_durations,
    delivery_needed,
    measure_output,
    verify_output,
)

# --- generated clips -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_clip_has_its_properties(name: str, clip_dir: Path) -> None:
    clip = GENERATED[name]
    expect, path = clip.expect, clip.build(clip_dir)
    assert path.suffix == expect.suffix
    if not expect.probes:
        with pytest.raises(ProbeError):
            probe_streams(path)
        return
    streams = probe_streams(path)
    videos = [s for s in streams if s.codec_type == "video"]
    audios = [s for s in streams if s.codec_type == "audio"]
    assert [a.channels for a in audios] == [expect.audio_channels][: bool(expect.audio_channels)]
    if expect.sample_rate:
        assert audios[0].sample_rate == expect.sample_rate
    if expect.width is None:
        assert videos == []
        return
    video = videos[0]
    assert (video.width, video.height) == (expect.width, expect.height)
    assert video.display_size == (expect.display or (expect.width, expect.height))
    assert video.rotation == expect.rotation
    if expect.pix_fmt:
        assert video.pix_fmt == expect.pix_fmt
    if expect.frame_rate:
        assert video.r_frame_rate == video.avg_frame_rate == expect.frame_rate
    if expect.duration:
        assert video_span(path) == pytest.approx(expect.duration, abs=0.04)
    if expect.decodes:  # a broken file's packet list ends early; its times prove nothing
        intervals = _frame_intervals(path)
        distinct = {round(i, 3) for i in intervals}
        if expect.vfr:
            assert len(distinct) >= 3 and max(intervals) > 2 * min(intervals), distinct
        else:
            assert len(distinct) == 1, distinct


def _frame_intervals(path: Path) -> list[float]:
    times = sorted(p.pts for p in probe_packets(path) if p.pts is not None)
    return [b - a for a, b in pairwise(times)]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_clip_decodes_only_if_expected(name: str, clip_dir: Path) -> None:
    clip = GENERATED[name]
    path = clip.build(clip_dir)
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    clean = proc.returncode == 0 and not proc.stderr.strip()
    assert clean == clip.expect.decodes, proc.stderr[-2000:]


def test_truncated_faststart_promises_more_than_it_holds(clip_dir: Path) -> None:
    path = GENERATED["truncated_faststart"].build(clip_dir)
    assert float(probe_format(path)["duration"]) == pytest.approx(5, abs=0.05)
    assert video_span(path) < 2.5


def test_garbage_video_probes_but_yields_no_frame(clip_dir: Path) -> None:
    path = GENERATED["garbage_video"].build(clip_dir)
    assert probe_streams(path)[0].codec_name == "h264"
    assert len(probe_packets(path)) == 150
    assert probe_frames(path) == []


# --- a fake engine: ffmpeg's DASH muxer, moved into our layout ---------------------------------

SOURCE_SECONDS = 5
GOP_SECONDS = 2


@dataclass(frozen=True, slots=True)
class FakeRung:
    name: str
    width: int
    height: int
    maxrate: int = 1_200_000
    bufsize: int = 2_400_000
    crf: int = 23
    gop_frames: int = 60  # what the encoder really gets; the report always says GOP_SECONDS
    sar: str = "1"


GOOD_LADDER = (
    FakeRung("v360", 640, 360),
    FakeRung("v180", 320, 180, maxrate=400_000, bufsize=800_000),
)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verify")


@pytest.fixture(scope="module")
def source(work: Path) -> Path:
    path = work / "source.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=30:duration={SOURCE_SECONDS}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SOURCE_SECONDS}",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2", str(path),
    )  # fmt: skip
    return path


def fake_transcode(
    source: Path,
    outdir: Path,
    ladder: tuple[FakeRung, ...] = GOOD_LADDER,
    audio_end: float = 0,
    audio: tuple[str, ...] = ("-ac", "2", "-ar", "48000"),
    audio_offset: float = 0,
) -> Path:
    """What `reelforge transcode` should produce, made without the engine; the keywords
    break the audio: cut it at `audio_end`, encode it with `audio`, delay it `audio_offset`."""
    outdir.mkdir(parents=True)
    args = ["-i", str(source), "-itsoffset", str(audio_offset), "-i", str(source)]
    for i, rung in enumerate(ladder):
        (outdir / str(i)).mkdir()
        args += [
            "-map", "0:v",
            f"-filter:v:{i}", f"scale={rung.width}:{rung.height},setsar={rung.sar}",
            f"-crf:v:{i}", str(rung.crf), f"-maxrate:v:{i}", str(rung.maxrate),
            f"-bufsize:v:{i}", str(rung.bufsize),
            f"-g:v:{i}", str(rung.gop_frames), f"-keyint_min:v:{i}", str(rung.gop_frames),
        ]  # fmt: skip
    args += ["-c:v", "libx264", "-preset", "superfast", "-sc_threshold", "0", "-pix_fmt", "yuv420p"]
    (outdir / str(len(ladder))).mkdir()
    args += ["-map", "1:a", "-c:a", "aac", *audio]
    if audio_end:
        args += ["-af", f"atrim=end={audio_end}"]
    ffmpeg(*args, "-f", "dash", "-seg_duration", str(GOP_SECONDS),
           "-init_seg_name", "$RepresentationID$/init.mp4",
           "-media_seg_name", "$RepresentationID$/$Number%05d$.m4s",
           str(outdir / "ffmpeg.mpd"))  # fmt: skip
    (outdir / "ffmpeg.mpd").unlink()
    for i, rung in enumerate(ladder):
        (outdir / str(i)).rename(outdir / rung.name)
    (outdir / str(len(ladder))).rename(outdir / "audio")
    tracks = {r.name: probe_rendition(outdir / r.name) for r in ladder}
    tracks["audio"] = probe_rendition(outdir / "audio")
    _write_hls(outdir, tracks)
    _write_dash(outdir, tracks)
    _write_report(outdir, source, ladder, tracks)
    ffmpeg("-ss", "1", "-i", str(source), "-frames:v", "1", str(outdir / "poster.jpg"))
    ffmpeg("-i", str(source), "-vf", "fps=1,scale=160:90,tile=5x1", "-frames:v", "1",
           str(outdir / "storyboard.jpg"))  # fmt: skip
    cues = "".join(
        f"\n00:00:{k:02d}.000 --> 00:00:{k + 1:02d}.000\nstoryboard.jpg#xywh={160 * k},0,160,90\n"
        for k in range(SOURCE_SECONDS)
    )
    (outdir / "storyboard.vtt").write_text("WEBVTT\n" + cues)
    return outdir


def _write_hls(outdir: Path, tracks: dict[str, RenditionProbe]) -> None:
    for name, rend in tracks.items():
        target = max(round(s.duration) for s in rend.segments)
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}",
                 "#EXT-X-MEDIA-SEQUENCE:1", "#EXT-X-PLAYLIST-TYPE:VOD",
                 "#EXT-X-INDEPENDENT-SEGMENTS", '#EXT-X-MAP:URI="init.mp4"']  # fmt: skip
        for seg in rend.segments:
            lines += [f"#EXTINF:{seg.duration:.6f},", seg.path.name]
        (outdir / name / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    audio_peak = _peak(tracks["audio"])
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS",
             '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,'
             'CHANNELS="2",URI="audio/index.m3u8"']  # fmt: skip
    for name, rend in tracks.items():
        if name == "audio":
            continue
        st = rend.stream
        bandwidth = round(_peak(rend) + audio_peak)
        lines += [f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={st.width}x{st.height},'
                  f'CODECS="avc1.64001e,mp4a.40.2",AUDIO="aac"', f"{name}/index.m3u8"]  # fmt: skip
    (outdir / "master.m3u8").write_text("\n".join([*lines, ""]))


def _peak(rend: RenditionProbe) -> float:
    return max(s.size * 8 / s.duration for s in rend.segments)


MIN_BUFFER_S = 4.0  # the MPD below says PT4S


def _dash_bandwidth(rend: RenditionProbe) -> int:
    """@bandwidth as ISO/IEC 23009-1 §5.3.5.2 defines it for the MPD's minBufferTime (4 s)."""
    return math.ceil(delivery_needed(rend, MIN_BUFFER_S))


def _write_dash(outdir: Path, tracks: dict[str, RenditionProbe]) -> None:
    total = max(r.span[1] - r.span[0] for r in tracks.values())
    sets = []
    for name, rend in tracks.items():
        st = rend.stream
        scale = int(1 / st.time_base)
        timeline = "".join(f'<S d="{round(s.duration * scale)}"/>' for s in rend.segments)
        timeline = timeline.replace("<S ", '<S t="0" ', 1)
        if name == "audio":
            attrs = 'mimeType="audio/mp4" codecs="mp4a.40.2" audioSamplingRate="48000"'
        else:
            attrs = f'mimeType="video/mp4" codecs="avc1.64001e" width="{st.width}" ' \
                    f'height="{st.height}" frameRate="30" sar="1:1"'  # fmt: skip
        sets.append(
            f'<AdaptationSet contentType="{st.codec_type}" segmentAlignment="true">'
            f'<Representation id="{name}" bandwidth="{_dash_bandwidth(rend)}" {attrs}>'
            f'<SegmentTemplate timescale="{scale}" initialization="$RepresentationID$/init.mp4" '
            f'media="$RepresentationID$/$Number%05d$.m4s" startNumber="1">'
            f"<SegmentTimeline>{timeline}</SegmentTimeline></SegmentTemplate>"
            "</Representation></AdaptationSet>"
        )
    (outdir / "manifest.mpd").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
        'profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT4S" '
        f'mediaPresentationDuration="PT{total:.3f}S"><Period id="0" start="PT0S">'
        + "".join(sets)
        + "</Period></MPD>\n"
    )


def _write_report(
    outdir: Path, source: Path, ladder: tuple[FakeRung, ...], tracks: dict[str, RenditionProbe]
) -> None:
    def stats(rend: RenditionProbe) -> dict[str, object]:
        sizes = [s.size for s in rend.segments]
        durations = [s.duration for s in rend.segments]
        return {
            "average_bitrate": round(sum(sizes) * 8 / sum(durations)),
            "peak_bitrate": round(_peak(rend)),
            "segment_count": len(sizes),
            "segment_durations": durations,
            "bytes": sum(sizes),
        }

    video = probe_streams(source)[0]
    report = {
        "source": {"duration": video_span(source), "display_width": video.display_size[0],
                   "display_height": video.display_size[1], "rotation": video.rotation},
        "output": {"frame_rate": "30/1"},
        "ladder": {
            "video": [{"name": r.name, "width": r.width, "height": r.height, "encoder": "libx264",
                       "preset": "superfast", "crf": r.crf, "maxrate": r.maxrate,
                       "bufsize": r.bufsize, "gop_seconds": GOP_SECONDS} for r in ladder],
            "audio": {"name": "audio", "codec": "aac", "bitrate": 128_000,
                      "sample_rate": 48_000, "channels": 2},
        },
        "renditions": {name: stats(rend) for name, rend in tracks.items()},
    }  # fmt: skip
    (outdir / "report.json").write_text(json.dumps(report, indent=2))


@pytest.fixture(scope="module")
def good(work: Path, source: Path) -> Path:
    return fake_transcode(source, work / "good")


@pytest.fixture
def good_copy(good: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "out"
    shutil.copytree(good, copy)
    yield copy


def _edit_report(outdir: Path, edit: dict[str, object]) -> None:
    path = outdir / "report.json"
    report = json.loads(path.read_text())
    for dotted, value in edit.items():
        *keys, last = dotted.split(".")
        node = report
        for key in keys:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    path.write_text(json.dumps(report))


def _has(problems: list[str], *fragments: str) -> bool:
    return any(all(f in p for f in fragments) for p in problems)


# --- the verifier passes a good output ------------------------------------------------------------


def test_good_output_has_no_problem(good: Path, source: Path) -> None:
    problems = verify_output(good, source)
    assert problems == [], "\n".join(problems)


def test_good_output_really_is_cmaf_in_our_layout(good: Path) -> None:
    out = measure_output(good, good.parent / "source.mp4")
    assert list(out.video) == ["v360", "v180"] and out.audio is not None
    for rend in [*out.video.values(), out.audio]:
        assert [s.path.name for s in rend.segments] == ["00001.m4s", "00002.m4s", "00003.m4s"]
    v360 = out.video["v360"]
    # superfast uses B-frames: decode order differs from presentation order
    assert any(p.pts != p.dts for p in v360.packets)
    assert [round(s.duration, 6) for s in v360.segments] == [2, 2, 1]


# --- and names what is wrong in a broken one ----------------------------------------------------


def test_misaligned_gop_is_reported(work: Path, source: Path) -> None:
    ladder = (GOOD_LADDER[0], replace(GOOD_LADDER[1], gop_frames=45))
    out = measure_output(fake_transcode(source, work / "gop45", ladder), source)
    problems = check_keyframes(out)
    assert _has(problems, "v180: key frames at [0.000, 1.500, 3.000, 4.500] s", "v360 has")
    assert _has(problems, "v180/00001.m4s: key frame at 1.500 s inside the segment")
    assert _has(check_segment_durations(out), "v180/00001.m4s: lasts 3.000 s, the GOP is 2.000")
    assert check_keyframes(replace(out, video={"v360": out.video["v360"]})) == []


def test_wrong_geometry_is_reported(work: Path, source: Path) -> None:
    ladder = (
        FakeRung("v396", 704, 396),  # upscaled
        FakeRung("v240", 320, 240),  # 4:3 from a 16:9 source
        FakeRung("v180", 320, 180, sar="2"),  # anamorphic
        FakeRung("v9x16", 180, 320),  # turned
    )
    out = measure_output(fake_transcode(source, work / "geometry", ladder), source)
    problems = check_geometry(out)
    assert _has(problems, "v396: 704x396 is larger than the 640x360 source")
    assert _has(problems, "v240: 320x240 distorts", "should be 426.7 px")
    assert _has(problems, "v180: SAR 2:1, not square pixels")
    assert _has(problems, "v9x16: 180x320 is not oriented like the 640x360 source display")
    assert len(problems) == 4, problems


def test_rotated_source_needs_upright_renditions(work: Path, source: Path, clip_dir: Path) -> None:
    """The `rotated` clip is stored 1280x720 and displayed 720x1280; ffmpeg turns it upright."""
    rotated = GENERATED["rotated"].build(clip_dir)
    ladder = (FakeRung("v360", 360, 640), FakeRung("v180", 180, 320), FakeRung("bad", 320, 180))
    outdir = fake_transcode(rotated, work / "rotated", ladder)
    problems = verify_output(outdir, rotated)
    assert problems == ["bad: 320x180 is not oriented like the 720x1280 source display"], problems


def test_short_audio_is_reported(work: Path, source: Path) -> None:
    out = measure_output(fake_transcode(source, work / "short-audio", audio_end=4.8), source)
    problems = check_durations(out)
    assert _has(problems, "audio: lasts 4.800 s, the source video 5.000 s")
    assert _has(problems, "audio: lasts 4.800 s, v360 5.000 s")
    assert check_audio(out) == []


def test_wrong_audio_format_is_reported(work: Path, source: Path) -> None:
    outdir = fake_transcode(source, work / "mono", audio=("-ac", "1", "-ar", "44100"))
    problems = check_audio(measure_output(outdir, source))
    assert problems == ["audio: 1 channels (mono), not stereo", "audio: 44100 Hz, not 48000 Hz"]


def test_late_audio_is_reported(work: Path, source: Path) -> None:
    outdir = fake_transcode(source, work / "late-audio", audio_offset=0.2)
    problems = check_durations(measure_output(outdir, source))
    # 0.178 s: ffmpeg puts the 1024 priming samples in front instead of editing them out
    assert problems == ["audio: starts at 0.178 s, v360 at 0.000 s"]


def test_missing_segment_is_reported(good_copy: Path, source: Path) -> None:
    (good_copy / "v180" / "00002.m4s").unlink()
    problems = verify_output(good_copy, source)
    assert _has(problems, "v180/index.m3u8: segment 00002.m4s does not exist")
    assert _has(problems, "manifest.mpd: v180: segment v180/00002.m4s does not exist")
    assert _has(problems, "master.m3u8: ffmpeg exit 0: [hls", "Failed to open segment 2")
    assert _has(problems, "manifest.mpd: ffmpeg exit 0: [dash", "Failed to open fragment")
    assert _has(problems, "report.json: v180 has 3 segments, the folder 2")


def test_missing_audio_is_reported(good_copy: Path, source: Path) -> None:
    shutil.rmtree(good_copy / "audio")
    out = measure_output(good_copy, source)
    assert check_audio(out) == ["audio/: missing, the source has audio"]
    assert _has(check_manifests(out), "master.m3u8: audio/index.m3u8 does not exist")


def test_report_disagreeing_with_files_is_reported(good_copy: Path, source: Path) -> None:
    _edit_report(good_copy, {"renditions.v360.segment_count": 4,
                             "renditions.v360.segment_durations": [2, 2, 2],
                             "renditions.audio.bytes": 1,
                             "ladder.video.1.width": 322,
                             "source.duration": 6.0})  # fmt: skip
    problems = check_report(measure_output(good_copy, source))
    assert _has(problems, "v360 has 4 segments, the folder 3")
    assert _has(problems, "v360 segment_durations [2.000, 2.000, 2.000] s")
    assert _has(problems, "audio bytes 1")
    assert _has(problems, "v180 is 322x180, the stream 320x180")
    assert _has(problems, "source duration 6.0, measured 5.000 s")
    assert len(problems) == 5, problems


def test_rate_cap_breach_is_reported(good_copy: Path, source: Path) -> None:
    _edit_report(good_copy, {"ladder.video.0.maxrate": 100_000, "ladder.video.0.bufsize": 100_000})
    problems = check_bitrates(measure_output(good_copy, source))
    assert len(problems) == 1 and problems[0].startswith("v360/"), problems
    assert "above maxrate 100 kbit/s + bufsize 100 kbit" in problems[0]


def test_rate_bound_allows_the_vbv_buffer_but_no_more() -> None:
    """A 2 s segment of maxrate x 2 s + bufsize bits is legal; 3% more is not."""
    from tests.support.ffprobe import Packet, SegmentProbe, Stream

    def output(bits: int) -> Output:
        pkt = Packet(pts=0, dts=0, duration=2.0, size=bits // 8, pos=0, keyframe=True,
                     discard=False)  # fmt: skip
        seg = SegmentProbe(1, Path("v/00001.m4s"), bits // 8, (pkt,), (2.0,))
        stream = Stream(0, "video", "h264")
        rend = RenditionProbe(Path("v"), 0, stream, (seg,), (pkt,))
        ladder = {"video": [{"name": "v", "maxrate": 1_000_000, "bufsize": 2_000_000}]}
        return Output(Path("."), Path("s"), {"ladder": ladder}, stream, False, 2.0,
                      {"v": rend}, None)  # fmt: skip

    assert check_bitrates(output(4_000_000)) == []
    assert check_bitrates(output(int(4_000_000 * 1.03))) != []


def test_gop_is_rounded_to_whole_frames(good: Path, source: Path) -> None:
    out = measure_output(good, source)
    ntsc = replace(out, report={**out.report, "output": {"frame_rate": "30000/1001"}})
    assert ntsc.gop("v360") == Fraction(60 * 1001, 30000)
