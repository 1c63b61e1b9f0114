"""HDR → SDR: our tone mapping against ffmpeg 9's, and what it costs the whole job.

    .venv/bin/python bench/hdr_bench.py [--rounds 3] [--seconds 10] [--no-quality] [--no-cost]

**Quality.** Real SDR footage (a 4 s cut of tests/media/cockatoo.mp4 at 640x360, and the
first 4 s of the 1080x1920 bench source, scaled to 540x960) is made into HLG, PQ and PQ with
HDR10 metadata (tests/support/hdr.py, the RECIPES.md recipe: diffuse white at 203 nits). Each
HDR clip is rendered to SDR by `reelforge transcode` (top rung), by ffmpeg 9's
`zscale` + `tonemap=hable` and `tonemap=mobius`, and compared with the original SDR clip:
mean luma ratio, mean saturation ratio, SSIM (ffmpeg's `ssim`, all planes).

**Cost.** The 1080x1920 30 fps bench source (bench/make_source.py, `--seconds` long) as PQ
with HDR10 metadata; jobs run one after another, in an order reversed every other round:
`reelforge transcode` (whole job, tone-mapped), `--no-thumbnails` (the ladder, tone-mapped),
`--no-thumbnails --no-tone-map` (the same without the LUT step) and ffmpeg 9's plain ladder
command (bench/baseline.py with ffmpeg 9: no tone mapping). Medians of wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.baseline import ladder_command, plan_ladder  # noqa: E402
from bench.make_source import MEDIA_DIR, WORK_DIR, build_source  # noqa: E402
from bench.measure import run_measured  # noqa: E402
from tests.support.ffprobe import joined_rendition  # noqa: E402
from tests.support.hdr import (  # noqa: E402
    FFMPEG9,
    looks,
    make_hdr_version,
    make_sdr_reference,
    run9,
    ssim,
)

VARIANTS = {"hlg": ("hlg", False), "pq": ("pq", False), "pq+hdr10": ("pq", True)}
FFMPEG_TONEMAPS = ("hable", "mobius")
REELFORGE = [sys.executable, "-m", "cli", "transcode"]


def ffmpeg_tonemap(hdr: Path, dest: Path, curve: str) -> Path:
    """ffmpeg 9: zscale to linear (100 nits = 1.0), BT.709 primaries, `tonemap`, BT.709."""
    run9(
        "-i", str(hdr), "-an",
        "-vf", "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
        f"tonemap=tonemap={curve}:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "12", str(dest),
    )  # fmt: skip
    return dest


def ours(hdr: Path, outdir: Path) -> Path:
    """reelforge's top rung, joined into one file (kept beside `outdir`)."""
    proc = run_measured([*REELFORGE, str(hdr), str(outdir), "--no-thumbnails"], cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"reelforge failed on {hdr}")
    report = json.loads((outdir / "report.json").read_text())
    top = report["ladder"]["video"][0]["name"]
    joined = outdir.with_suffix(".mp4")
    with joined_rendition(outdir / top) as path:
        shutil.copyfile(path, joined)
    return joined


def score(candidate: Path, reference: Path, size: tuple[int, int]) -> dict[str, float]:
    ref, got = looks(reference, *size), looks(candidate, *size)
    return {
        "luma_ratio": round(got.luma / ref.luma, 4),
        "saturation_ratio": round(got.saturation / ref.saturation, 4),
        "ssim": round(ssim(candidate, reference, *size), 4),
    }


def quality(work: Path) -> list[dict[str, Any]]:
    bench_src = build_source(10.0)
    refs = {
        "cockatoo": (MEDIA_DIR / "cockatoo.mp4", (640, 360), 2.0),
        "bench-source": (bench_src, (540, 960), 0.0),
    }
    rows: list[dict[str, Any]] = []
    for clip, (source, size, start) in refs.items():
        sdr = make_sdr_reference(source, work / f"{clip}-sdr.mp4", 4, *size, start=start)
        for variant, (transfer, metadata) in VARIANTS.items():
            hdr = make_hdr_version(sdr, work / f"{clip}-{variant}.mov", transfer, metadata)
            row: dict[str, Any] = {"clip": clip, "variant": variant}
            row["reelforge"] = score(ours(hdr, work / f"{clip}-{variant}-out"), sdr, size)
            for curve in FFMPEG_TONEMAPS:
                made = ffmpeg_tonemap(hdr, work / f"{clip}-{variant}-{curve}.mp4", curve)
                row[f"ffmpeg9 {curve}"] = score(made, sdr, size)
            rows.append(row)
    return rows


def cost(work: Path, seconds: float, rounds: int) -> dict[str, Any]:
    sdr = build_source(seconds)
    hdr = make_hdr_version(sdr, WORK_DIR / f"source-{seconds:g}s-pq-hdr10.mov", "pq", True)
    plan = plan_ladder(hdr)
    jobs = {
        "reelforge (tone-mapped)": lambda out: [*REELFORGE, str(hdr), str(out)],
        "reelforge ladder (tone-mapped)": lambda out: [
            *REELFORGE, str(hdr), str(out), "--no-thumbnails"],
        "reelforge ladder (no tone map)": lambda out: [
            *REELFORGE, str(hdr), str(out), "--no-thumbnails", "--no-tone-map"],
        "ffmpeg9 ladder (no tone map)": lambda out: ladder_command(
            plan, out, thumbnails=False, ffmpeg=FFMPEG9),
    }  # fmt: skip
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in jobs}
    for index in range(rounds):
        order = list(jobs) if index % 2 == 0 else list(jobs)[::-1]
        for name in order:
            out = work / f"cost-{index}-{len(runs[name])}-{name.split()[0]}"
            shutil.rmtree(out, ignore_errors=True)
            if name.startswith("ffmpeg"):
                out.mkdir(parents=True)
            measured = run_measured(jobs[name](out), cwd=REPO_ROOT)
            if measured.returncode != 0:
                raise RuntimeError(f"{name} failed ({measured.returncode})")
            runs[name].append({"wall_s": measured.wall_s, "cpu_s": measured.cpu_s,
                               "others_cpu_s": measured.others_cpu_s})  # fmt: skip
            shutil.rmtree(out, ignore_errors=True)
    summary = {
        name: {
            "wall_s": round(statistics.median(r["wall_s"] for r in rs), 3),
            "cpu_s": round(statistics.median(r["cpu_s"] for r in rs), 3),
            "others_cpu_s": round(statistics.median(r["others_cpu_s"] for r in rs), 3),
        }
        for name, rs in runs.items()
    }

    def ratio(a: str, b: str, key: str) -> float:
        return round(summary[a][key] / summary[b][key], 4)

    ratios = {
        f"{a} / {b}": {"wall": ratio(a, b, "wall_s"), "cpu": ratio(a, b, "cpu_s")}
        for a, b in (
            ("reelforge ladder (tone-mapped)", "reelforge ladder (no tone map)"),
            ("reelforge (tone-mapped)", "ffmpeg9 ladder (no tone map)"),
            ("reelforge ladder (tone-mapped)", "ffmpeg9 ladder (no tone map)"),
            ("reelforge ladder (no tone map)", "ffmpeg9 ladder (no tone map)"),
        )
    }
    return {"source": str(hdr), "seconds": seconds, "rounds": rounds, "summary": summary,
            "ratios": ratios, "runs": runs}  # fmt: skip


def table(rows: list[dict[str, Any]], costs: dict[str, Any] | None) -> str:
    tools = ["reelforge", *(f"ffmpeg9 {c}" for c in FFMPEG_TONEMAPS)]
    lines = ["| clip | HDR version | tool | luma ratio | saturation ratio | SSIM |",
             "| --- | --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for row in rows:
        for tool in tools:
            s = row[tool]
            lines.append(f"| {row['clip']} | {row['variant']} | {tool} | {s['luma_ratio']:.3f} | "
                         f"{s['saturation_ratio']:.3f} | {s['ssim']:.4f} |")  # fmt: skip
    if costs:
        lines += ["", f"Cost on {costs['seconds']:g} s of 1080x1920 PQ HDR10, "
                  f"{costs['rounds']} rounds (medians):", "",
                  "| job | wall s | CPU s | other processes CPU s |",
                  "| --- | ---: | ---: | ---: |"]  # fmt: skip
        for name, s in costs["summary"].items():
            lines.append(f"| {name} | {s['wall_s']:.2f} | {s['cpu_s']:.2f} | "
                         f"{s['others_cpu_s']:.2f} |")  # fmt: skip
        lines += ["", "| ratio | wall | CPU |", "| --- | ---: | ---: |"]
        for name, r in costs["ratios"].items():
            lines.append(f"| {name} | {r['wall']:.3f} | {r['cpu']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--no-cost", action="store_true")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "hdr_results.json")
    args = parser.parse_args(argv)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hdr-bench-", dir=WORK_DIR) as tmp:
        work = Path(tmp)
        rows = [] if args.no_quality else quality(work)
        costs = None if args.no_cost else cost(work, args.seconds, args.rounds)
    text = table(rows, costs)
    print(text)
    args.results.write_text(
        json.dumps({"ffmpeg9": FFMPEG9, "quality": rows, "cost": costs, "table": text}, indent=2)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
