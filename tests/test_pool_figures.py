"""The pool benchmark's pure parts (bench/pool_figures.py, bench/pool_table.py; issue 15
"Benchmark"): CPU lists, /proc CPU time, the ratios and the worker-count estimate. Nothing is
timed: the benchmark itself runs on a quiet machine, never in the suite."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from bench import pool_figures
from bench.make_source import CLIPS, FPS, MEDIA_DIR, plan_pieces, probe_clip
from bench.pool_figures import (
    derive,
    estimate,
    fit_serial,
    parse_cpus,
    publish_time,
    stat_cpu_ticks,
    summarize,
    tree_cpu_seconds,
    workers_needed,
)
from bench.pool_table import render


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0", [0]), ("0-3", [0, 1, 2, 3]), ("0-1,4,6-7", [0, 1, 4, 6, 7]), ("3,1,1-2", [1, 2, 3])],
)
def test_cpu_lists_read_as_taskset_writes_them(text: str, cpus: list[int]) -> None:
    assert parse_cpus(text) == cpus


@pytest.mark.parametrize("text", ["", "3-1", "-1", "a"])
def test_bad_cpu_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cpus(text)


def test_stat_ticks_skip_a_command_name_with_spaces_and_parentheses() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime ...
    stat = "42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 7 5 30 11 20 0 1 0"
    assert stat_cpu_ticks(stat) == 7 + 5 + 30 + 11


BURN = """
import sys, time
while time.process_time() < 0.5:
    pass
print(time.process_time(), flush=True)
time.sleep(30)
"""


def test_a_tree_that_burns_cpu_shows_it() -> None:
    """A child that has burnt 0.5 CPU-s (its own clock, whatever the machine's load) reads as
    that much, and as nothing once it is gone and reaped."""
    busy = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    try:
        assert busy.stdout is not None
        own = float(busy.stdout.readline())
        measured = tree_cpu_seconds([busy.pid])
    finally:
        busy.kill()
        busy.wait(10)
    assert own >= 0.5
    assert own - 0.05 <= measured <= own + 0.2  # + the interpreter's start, in clock ticks
    assert tree_cpu_seconds([busy.pid]) == 0.0


def run(mode: str, n: int, first: float, fully: float, cpu: float, **more: Any) -> dict[str, Any]:
    figures = {"first_playable_s": first, "fully_published_s": fully, "cpu_s": cpu}
    return {"source": "60s", "source_s": 60.0, "mode": mode, "workers": n, **figures, **more}


RUNS = [
    run("single", 1, 100.0, 100.0, 100.0),
    run("single", 2, 100.0, 100.0, 100.0),
    run("chunked", 1, 20.0, 110.0, 108.0, planned_s=1.0, assembly_s=5.0),
    run("chunked", 2, 15.0, 60.0, 110.0, planned_s=1.0, assembly_s=5.0),
    run("chunked", 2, 25.0, 64.0, 112.0, planned_s=1.0, assembly_s=5.0),
]


def test_ratios_are_against_the_single_pass_on_one_worker() -> None:
    summary = summarize(RUNS)
    assert summary["60s"]["chunked"]["2"]["fully_published_s"] == 62.0  # the median of two
    derived = derive(summary)["60s"]
    assert derived["single_n1_fully_published_s"] == 100.0
    assert derived["chunked"]["2"] == {
        "first_playable_share": 0.2,
        "fully_vs_n1": round(62 / 110, 3),
        "speedup": round(100 / 62, 3),
        "efficiency": round(100 / 62 / 2, 3),
    }
    assert derived["single"]["2"]["efficiency"] == 0.5
    assert derived["targets"] == {
        "first_playable_share_le_0.25": True,
        "chunked_n2_vs_n1_le_0.6": True,
    }


MODEL: dict[str, Any] = {
    "upload_s": 600.0,
    "chunk_s": 10.0,
    "cpu_per_media_s": 1.68,
    "serial_per_media_s": 0.05,
    "efficiency": 0.8,
}


@pytest.mark.parametrize(("budget", "workers"), [(300.0, 3), (60.0, 30), (50.0, None)])
def test_workers_needed_by_hand(budget: float, workers: int | None) -> None:
    # 60 chunks of 16.8 CPU-s at 0.8 efficiency: 21 s a wave, after 30 s of serial work.
    assert publish_time(2, **MODEL) == pytest.approx(30 + 15 * 21)
    assert publish_time(3, **MODEL) == pytest.approx(30 + 10 * 21)
    assert workers_needed(budget, **MODEL) == workers


def test_the_preview_bounds_the_publish_time_from_below() -> None:
    """The preview job (one, over the whole video) runs beside the chunks: past the pool where
    the chunks take less, more workers change nothing."""
    model = {**MODEL, "preview_per_media_s": 0.35}
    # By hand: serial 0.05 × 600 = 30 s; one wave of chunks 1.68 × 10 / 0.8 = 21 s; the preview
    # 0.35 × 600 = 210 s on one CPU, 105 s if a worker's two threads halve it.
    assert publish_time(10**6, **model) == pytest.approx(30 + 210)
    assert publish_time(10**6, **model, preview_speedup=2.0) == pytest.approx(30 + 105)
    assert publish_time(1, **model) == pytest.approx(30 + 30 * 21)  # 60 chunks, 2 at a time
    assert workers_needed(60.0, **model, preview_speedup=2.0) is None


def test_the_estimate_uses_the_chunked_runs_of_the_longest_source() -> None:
    runs = [*RUNS, *[{**r, "source": "12s", "source_s": 12.0} for r in RUNS]]
    result = estimate(runs, summarize(runs), chunk_s=10.0)
    assert result is not None
    assert result["from"] == {"source": "60s", "largest_pool": 2}
    model = result["model"]
    assert model["cpu_per_media_s"] == round(110 / 60, 3)  # the median of 108, 110, 112
    assert model["efficiency"] == round(110 / (2 * 62), 3)
    # 6 s of planning and assembly at both lengths: all of it fixed.
    assert (model["serial_fixed_s"], model["serial_per_media_s"]) == (6.0, 0.0)
    assert result["formula"] == pool_figures.FORMULA
    for case, speedup in (("optimistic", 2.0), ("pessimistic", 1.0)):
        needed = workers_needed(300.0, **model, preview_speedup=speedup)
        assert result["workers_needed"][case]["300s"] == needed
    one_worker = [r for r in RUNS if r["workers"] == 1]
    assert estimate(one_worker, summarize(one_worker), chunk_s=10.0) is None


def test_the_table_names_every_row_and_verdict() -> None:
    summary = summarize(RUNS)
    facts = {"nproc": 2, "cpu_model": "x", "commit": "abc", "date": "d",
             "load_average_at_start": ["1", "1", "1"]}  # fmt: skip
    section = {"machine": facts, "summary": summary, "derived": derive(summary), "runs": RUNS,
               "estimate_10min_upload": estimate(RUNS, summary, chunk_s=10.0)}  # fmt: skip
    text = render({"pool": section, "sweep": section})
    assert text.count("| 60s (60 s) | chunked |") == 2
    assert "≤ 0.6× of 1: met" in text
    assert "published within 300s:" in text
    assert "| 60s (60 s), 2 workers | 100.0 s | 62.0 s | 0.62 | 0 |" in text


def test_sources_are_ordered_by_length_not_by_name() -> None:
    runs = [
        {**RUNS[0], "source": "13s", "source_s": 13.0},
        {**RUNS[0], "source": "3s", "source_s": 3.0},
    ]
    assert list(summarize(runs)) == ["3s", "13s"]


@pytest.mark.parametrize("seconds", [3.0, 12.0, 13.0, 60.0, 180.0])
def test_every_source_length_is_planned_to_the_frame(seconds: float) -> None:
    """bench/make_source.py's round robin ends, also when under half a second is left (12 s
    used to loop forever there), and the pieces add up to the length asked for."""
    clips = [probe_clip(MEDIA_DIR / name) for name in CLIPS]
    pieces = plan_pieces(clips, seconds)
    assert sum(piece.frames for piece in pieces) == round(seconds * FPS)
    assert all(piece.frames > 0 for piece in pieces)


@pytest.mark.parametrize(
    ("points", "line"),
    [
        ([(60.0, 12.0), (180.0, 24.0)], (6.0, 0.1)),  # 6 s fixed + 0.1 s per media second
        ([(60.0, 12.0), (60.0, 14.0)], (0.0, 13.0 / 60)),  # one length: proportional
        ([(60.0, 30.0), (180.0, 20.0)], (25.0, 0.0)),  # no negative slope
        ([(60.0, 2.0), (180.0, 30.0)], (0.0, 32.0 / 240)),  # no negative fixed part
    ],
)
def test_the_serial_line(points: list[tuple[float, float]], line: tuple[float, float]) -> None:
    assert fit_serial(points) == pytest.approx(line)
