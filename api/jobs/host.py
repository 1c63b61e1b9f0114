"""What the job modules use of the worker's runtime (api/jobs/transcode.py `Runtime`), as
protocols, so the chunked jobs (chunking.py, presenting.py) and the publishing tail
(publish.py) depend on these and not on the runtime's module."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine

from api.core.settings import Settings
from api.jobs.progress import RunProgress
from cdn.storage import Storage
from engine.pipeline import TranscodeOptions


class StoreHost(Protocol):
    """The settings, the database and the storage, made once per worker process."""

    settings: Settings

    @property
    def db(self) -> Engine: ...
    @property
    def storage(self) -> Storage: ...


class JobHost(StoreHost, Protocol):
    """All the chunked jobs use: the options of a run, the video's moves, the publishing tail."""

    def options(
        self, artifacts_dir: Path | None = None, encoder: str | None = None
    ) -> TranscodeOptions: ...
    def give_up(self, video_id: str, reason: str = "") -> bool: ...
    def reject(self, video_id: str, reason: str) -> bool: ...
    def sweep_work(self, older_than_s: float | None = None) -> int: ...
    def publish(
        self,
        row: Any,
        outdir: Path,
        report: dict[str, Any],
        artifacts: Path | None = None,
        progress: RunProgress | None = None,
        *,
        early_of: str | None = None,
        replaces: str | None = None,
        growing: str | None = None,
    ) -> bool: ...
