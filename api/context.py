"""What every request handler needs, built once at start-up and passed in (never globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from api.cache import Cache
from api.settings import Settings
from cdn.storage import Storage


class JobQueue(Protocol):
    """Where the API hands work to the workers (Dramatiq in both modes)."""

    def enqueue_transcode(self, video_id: str, lane: str) -> None: ...
    def enqueue_cleanup(self, video_id: str) -> None: ...
    def check(self) -> None: ...


@dataclass
class AppContext:
    settings: Settings
    db: AsyncEngine
    storage: Storage
    cache: Cache
    jobs: JobQueue
