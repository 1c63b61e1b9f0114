"""The worker's side of processing progress (issue 15, "Progress"): one run's writes to its
`video_progress` row (api/core/progress.py has the stages and the arithmetic).

Best effort, always: a write that fails (a database hiccup, a lock) is logged and skipped, and
never fails or slows the job by more than that one statement. Fractions are written at most
once per `interval_s` per run; stage changes and counted parts are written at once.

A run is one delivery of a video's job: `RunProgress.begin` makes (or takes over) the row with
a fresh `run_id`. Another process working on the same run (a chunk job, the audio job, the
assembly step) joins it with `RunProgress(db, video_id, run_id)`; every write names the run, so
the writes of a delivery that lost its row to a newer one match nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, update

from api.core import progress as p
from api.core.db import dialect_insert, new_id, now_ms
from api.core.tables import video_progress

log = logging.getLogger("reelforge.progress")


class RunProgress:
    """Writes one run's progress; every method returns normally whatever the database does."""

    def __init__(
        self,
        db: Engine,
        video_id: str,
        run_id: str,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db, self.video_id, self.run_id = db, video_id, run_id
        self.throttle = p.Throttle(interval_s)
        self.clock = clock
        self.stage_now = p.QUEUED

    @classmethod
    def begin(
        cls, db: Engine, video_id: str, attempt: int, parts_total: int = 1, **kw: Any
    ) -> RunProgress:
        """A new run of the video's job, at `downloading`; it replaces any earlier run's row."""
        run = cls(db, video_id, new_id("p"), **kw)
        now = now_ms()
        values = {
            "run_id": run.run_id,
            "attempt": attempt,
            "stage": p.DOWNLOADING,
            "parts_done": 0,
            "parts_total": max(1, parts_total),
            "fraction": 0.0,
            "started_at": now,
            "updated_at": now,
        }

        def upsert(conn: Any) -> Any:
            insert = dialect_insert(conn.dialect.name)(video_progress)
            return conn.execute(
                insert.values(video_id=video_id, **values).on_conflict_do_update(
                    index_elements=[video_progress.c.video_id], set_=values
                )
            )

        if run._write(upsert) is not None:
            run.stage_now = p.DOWNLOADING
        return run

    # -- what a job reports -------------------------------------------------------------

    def stage(self, stage: str) -> None:
        """Move on to a running `stage` (never backwards: a late writer cannot undo a later
        stage another process reached); its fraction starts at 0."""
        moved = self._update(
            {"stage": stage, "fraction": 0.0},
            video_progress.c.stage.in_(p.reachable_from(stage)),
        )
        if moved:
            self.stage_now = stage
        self.throttle.mark(self.clock())

    def fraction(self, value: float) -> None:
        """How far the current stage's work in flight is (of one part); throttled, and never
        lower than what is stored (parts running at once report in any order)."""
        now = self.clock()
        if not self.throttle.due(now):
            return
        self.throttle.mark(now)
        value = min(1.0, max(0.0, float(value)))
        self._update({"fraction": value}, video_progress.c.fraction < value)

    def engine_fraction(self, value: float) -> None:
        """The engine's progress callback (frames out / frames expected) for the single pass:
        the first frame ends `probing`; the last one starts `packaging` (what is left in the
        engine: flushing the encoders, collecting the analysis, packaging)."""
        if self.stage_now == p.PROBING:
            self.stage(p.TRANSCODING)
        if value >= 1.0:
            self._work_done(p.PACKAGING)
        elif self.stage_now == p.TRANSCODING:
            self.fraction(value)

    def engine_done(self) -> None:
        """The engine returned: its part counts as done (if its last frame was not reported)
        and the job moves on to the safety checks (`analysing`)."""
        self._work_done(p.ANALYSING)

    def _work_done(self, next_stage: str) -> None:
        if p.rank(self.stage_now) <= p.rank(p.WORK):
            self.part_done()
        self.stage(next_stage)

    def plan(self, parts_total: int) -> None:
        """How many parts the work has, once it is known (a chunked job, after probing)."""
        self._update({"parts_total": max(1, parts_total)})

    def part_done(self) -> int | None:
        """Count one part done, atomically (`parts_done = parts_done + 1` in SQL, never past
        `parts_total`); returns the new count, or None when nothing was counted.

        Not idempotent by itself: a part job delivered twice must count once, so chunked
        jobs call it only after their own part's compare-and-set succeeded."""
        statement = (
            update(video_progress)
            .where(
                video_progress.c.video_id == self.video_id,
                video_progress.c.run_id == self.run_id,
                video_progress.c.parts_done < video_progress.c.parts_total,
            )
            .values(parts_done=video_progress.c.parts_done + 1, fraction=0.0, updated_at=now_ms())
            .returning(video_progress.c.parts_done)
        )
        result = self._write(lambda conn: conn.execute(statement).scalar())
        return None if result is None else int(result)

    def requeued(self) -> None:
        """This delivery failed and will be retried: back to `queued` (the next run restarts)."""
        self._update({"stage": p.QUEUED, "fraction": 0.0, "parts_done": 0})
        self.stage_now = p.QUEUED

    def finish(self, status: str) -> None:
        """The run ended with the video in `status` (published, in_review, rejected, failed)."""
        self._update({"stage": status, "fraction": 0.0})
        self.stage_now = status

    # -- writes -------------------------------------------------------------------------

    def _update(self, values: dict[str, Any], *conditions: Any) -> bool:
        statement = (
            update(video_progress)
            .where(
                video_progress.c.video_id == self.video_id,
                video_progress.c.run_id == self.run_id,
                *conditions,
            )
            .values(**values, updated_at=now_ms())
        )
        result = self._write(lambda conn: conn.execute(statement).rowcount)
        return bool(result)

    def _write(self, execute: Callable[[Any], Any]) -> Any:
        """Run one statement in its own transaction; None (logged) when it failed."""
        try:
            with self.db.begin() as conn:
                return execute(conn)
        except Exception as exc:  # progress is a courtesy: never fail the job for it
            log.warning("video %s: progress not recorded (%r)", self.video_id, exc)
            return None
