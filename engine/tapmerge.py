"""Split and stitch, the merge of the chunks' frame taps (engine/rangetaps.py) into what the
single pass's taps produce (issue 15): the same `analysis` (moderation, PDQ) and the same
poster, storyboard and report fields, from the chunks' records alone (no frame is decoded).

The sampler is replayed over every frame's recorded facts in timeline order
(classifiers/sampling.py `FrameSampler.decide`: the periodic grid, the keyframe and scene
samples, the gap, the budget, the cap), which gives the single pass's sampled times; each of
them is among the frames its chunk analysed, so the results are the chunk's for that frame.
The poster's choice is replayed over the candidates, the storyboard's slots are put together
in order, and `write_thumbnails` writes them as the single pass's tap does.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.moderation.analyzer import summarize
from classifiers.sampling import FrameFacts, FrameSampler
from engine.analysis import AnalysisSpec, build_fingerprint
from engine.errors import EngineError
from engine.rangetaps import ARTIFACTS, TAPS_FILE, THUMBS_FILE
from engine.thumbnails import Storyboard, write_thumbnails


def _records(folders: Sequence[Path]) -> list[tuple[Path, dict[str, Any]]]:
    loaded = [(folder, json.loads((folder / TAPS_FILE).read_text())) for folder in folders]
    return sorted(loaded, key=lambda item: int(item[1]["start_frame"]))


def merge_taps(
    folders: Sequence[Path],
    spec: AnalysisSpec | None,
    duration: float,
    output_duration: float,
    audio: bool,
    thumbs_out: Path | None,
    artifacts_out: Path,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the analysis, the thumbnail fields) of the chunks whose taps are in `folders`; the
    poster and storyboard are written into `thumbs_out` (None: no thumbnails), the worst
    frames' images into `artifacts_out`. `duration` is the probed source's (the sampler's),
    `output_duration` the presentation's; `audio`: whether the audio job fingerprints."""
    records = _records(folders)
    analysis: dict[str, Any] = {}
    if spec is not None and (spec.moderation is not None or spec.pdq is not None):
        sampler = FrameSampler(spec.sampling, duration=duration)
        chosen = [
            time
            for _, record in records
            for time, lone, distance in record["facts"]
            if sampler.decide(FrameFacts(time, lone, distance))
        ]
        sampling = {**sampler.reasons, "interval": round(sampler.interval, 3)}
        if spec.moderation is not None:
            analysis["moderation"] = _moderation(spec, records, chosen, sampling, artifacts_out)
        if spec.pdq is not None:
            analysis["pdq"] = _pdq(spec, records, chosen)
    if spec is not None and spec.fingerprint is not None and not audio:
        analysis["fingerprint"] = build_fingerprint(spec.fingerprint).result()  # saw no audio
    thumbs = _thumbnails(records, thumbs_out, output_duration) if thumbs_out is not None else {}
    return (analysis or None), thumbs


def _sum_timing(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for timing in parts:
        for key, value in timing.items():
            if isinstance(value, float | int) and not isinstance(value, bool):
                total[key] = round(total.get(key, 0) + value, 4)
            else:
                total.setdefault(key, value)
    return total


def _moderation(
    spec: AnalysisSpec,
    records: list[tuple[Path, dict[str, Any]]],
    chosen: list[float],
    sampling: dict[str, Any],
    artifacts_out: Path,
) -> dict[str, Any]:
    assert spec.moderation is not None
    parts = [(folder, record["moderation"]) for folder, record in records]
    rows: dict[float, np.ndarray] = {}
    images: dict[float, Path] = {}
    for folder, part in parts:
        for time, row in part["samples"]:
            rows[time] = np.array(row, dtype=part["dtype"])
        for time, name in part["images"]:
            images[time] = folder / ARTIFACTS / name
    error = next((part["error"] for _, part in parts if part["error"] is not None), None)
    missing = [time for time in chosen if time not in rows]
    if missing and error is None:
        raise EngineError(f"the chunks scored no frame at {missing[:3]}, sampled by the merge")
    times = [time for time in chosen if time in rows]

    def write_images(worst: set[float]) -> dict[float, str]:
        found = {round(t, 3): images[round(t, 3)] for t in worst if round(t, 3) in images}
        if found:
            artifacts_out.mkdir(parents=True, exist_ok=True)
        for path in found.values():
            shutil.copyfile(path, artifacts_out / path.name)
        return {time: path.name for time, path in found.items()}

    return summarize(
        spec.moderation, times, [rows[t] for t in times], sampling, spec.worst_frames,
        spec.confirm_window, write_images, _sum_timing([p["timing"] for _, p in parts]), error,
    )  # fmt: skip


def _pdq(
    spec: AnalysisSpec, records: list[tuple[Path, dict[str, Any]]], chosen: list[float]
) -> dict[str, Any]:
    assert spec.pdq is not None
    hashes: dict[float, dict[str, Any]] = {}
    skipped_at: set[float] = set()
    for _, record in records:
        hashes.update((time, entry) for time, entry in record["pdq"]["hashes"])
        skipped_at.update(round(t, 3) for t in record["pdq"]["skipped_at"])
    found = [hashes[round(t, 3)] for t in chosen if round(t, 3) in hashes]
    skipped = sum(1 for t in chosen if round(t, 3) in skipped_at)
    if len(found) + skipped != len(chosen):
        raise EngineError("the chunks hashed fewer frames than the merge sampled")
    return {
        "hashes": found,
        "min_quality": spec.pdq.min_quality,
        "skipped": skipped,
        "timing": _sum_timing([record["pdq"]["timing"] for _, record in records]),
    }


def _thumbnails(
    records: list[tuple[Path, dict[str, Any]]], outdir: Path, output_duration: float
) -> dict[str, Any]:
    """The storyboard's slots in order, the poster replayed as engine/thumbnails.py
    `ThumbnailTap.on_video` chooses it (a better score by 5 %, or the first)."""
    thumbs: list[np.ndarray] = []
    poster: tuple[float, float, Path] | None = None
    size, interval, columns = (0, 0), 0.0, 1
    for folder, record in records:
        part = record["thumbs"]
        if part["count"]:
            if part["first_slot"] != len(thumbs):
                raise EngineError(f"{folder}: storyboard slot {part['first_slot']} out of order")
            thumbs.extend(np.load(folder / THUMBS_FILE))
            size = (int(part["size"][0]), int(part["size"][1]))
        interval, columns = float(part["interval"]), int(part["columns"])
        for time, score, name in part["posters"]:
            if poster is None or score > poster[1] * 1.05:
                poster = (time, score, folder / name)
    if poster is None:
        return {}
    outdir.mkdir(parents=True, exist_ok=True)
    board = Storyboard(thumbs, size, interval, columns)
    return write_thumbnails(outdir, poster[2].read_bytes(), poster[0], board, output_duration)
