"""Processing progress as data: the stages, how far along a video is, its ETA, and the write
throttle (issue 15, "Progress"). Pure: the row lives in `tables.video_progress`, the worker
writes it (api/jobs/progress.py) and `GET /v1/videos/{id}` reads it (api/videos/progress.py).

A video's work is `parts_total` parts: 1 for the single pass; for a chunked job, its chunk
jobs and its audio job. Its overall fraction walks through the stages in `ORDER`; each stage
owns a band of it (`BANDS`). In the work stage (`transcoding`) the band fills with
(parts_done + fraction) / parts_total, where `fraction` is how far the part in flight is (of
one part); any other stage may fill its band with `fraction` alone (0 when it cannot tell).
The bands are the shares of a single-pass job's wall time measured on the real clips (see
README "Processing progress"), so that the overall fraction grows about evenly with time,
which the ETA assumes.
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUED = "queued"
DOWNLOADING = "downloading"
PROBING = "probing"
TRANSCODING = "transcoding"
PACKAGING = "packaging"
ANALYSING = "analysing"
STORING = "storing"
PUBLISHED = "published"
IN_REVIEW = "in_review"
REJECTED = "rejected"
FAILED = "failed"

WORK = TRANSCODING
"""The stage whose band is filled by parts."""

ORDER: tuple[str, ...] = (QUEUED, DOWNLOADING, PROBING, TRANSCODING, PACKAGING, ANALYSING, STORING)
"""The running stages, in the order a job goes through them; writers only move forwards."""

FINAL: frozenset[str] = frozenset({PUBLISHED, IN_REVIEW, REJECTED, FAILED})
"""Where a run ends (the video's own status after it)."""

BANDS: dict[str, tuple[float, float]] = {
    QUEUED: (0.0, 0.0),
    DOWNLOADING: (0.0, 0.02),
    PROBING: (0.02, 0.10),
    TRANSCODING: (0.10, 0.88),
    PACKAGING: (0.88, 0.95),
    ANALYSING: (0.95, 0.96),
    STORING: (0.96, 1.0),
    **{stage: (1.0, 1.0) for stage in FINAL},
}
"""Stage → (overall fraction when it starts, when it ends)."""

MIN_DONE_FOR_ETA = 0.05
MIN_ELAPSED_FOR_ETA_S = 3.0
"""No ETA before 5 % is done and 3 s have passed: a rate measured on less is noise."""


def rank(stage: str) -> int:
    """A stage's place in the run (every final stage comes after all running ones)."""
    return ORDER.index(stage) if stage in ORDER else len(ORDER)


def reachable_from(stage: str) -> tuple[str, ...]:
    """The stages a run may be in for a writer to move it to `stage` (itself and before)."""
    return ORDER[: rank(stage) + 1]


def overall(stage: str, parts_done: int, parts_total: int, fraction: float) -> float:
    """How much of the whole run is done, 0..1 (see the module docstring)."""
    start, end = BANDS.get(stage, (0.0, 0.0))
    within = (parts_done + fraction) / max(1, parts_total) if stage == WORK else fraction
    return start + (end - start) * min(1.0, max(0.0, within))


def eta_seconds(elapsed_s: float, done: float) -> float | None:
    """Seconds left, by linear extrapolation: elapsed × (1 − done) / done.

    `elapsed_s` is the time from the run's start to the moment `done` was measured. None
    until there is enough signal (`MIN_DONE_FOR_ETA`, `MIN_ELAPSED_FOR_ETA_S`); 0 once done.
    """
    if done >= 1.0:
        return 0.0
    if done < MIN_DONE_FOR_ETA or elapsed_s < MIN_ELAPSED_FOR_ETA_S:
        return None
    return elapsed_s * (1.0 - done) / done


def eta_now(started_at_ms: int, updated_at_ms: int, now_ms: int, done: float) -> float | None:
    """The ETA of a stored row, read at `now_ms`: the estimate made at its last update, less
    the time since (never below 0). A stalled run counts down to 0 and stays there."""
    left = eta_seconds((updated_at_ms - started_at_ms) / 1000.0, done)
    if left is None:
        return None
    return max(0.0, left - max(0, now_ms - updated_at_ms) / 1000.0)


@dataclass
class Throttle:
    """At most one write per `interval_s`; a stage change is always written (`mark` it)."""

    interval_s: float = 1.0
    last: float | None = None

    def due(self, now: float) -> bool:
        return self.last is None or now - self.last >= self.interval_s

    def mark(self, now: float) -> None:
        self.last = now
