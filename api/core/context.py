"""What every request handler needs, built once at start-up and passed in (never globals)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from api.core.cache import Cache
from api.core.identity import User
from api.core.outbox import Relayed
from api.core.settings import Settings
from api.core.ttlcache import TTLCache
from cdn.storage import Storage


class JobQueue(Protocol):
    """Where the API hands work to the workers (Dramatiq in both modes). A processing job goes
    on record in the database first (api/core/outbox.py); `send_queued` and `relay` send it."""

    def enqueue_transcode(self, video_id: str, lane: str) -> None: ...  # on record, then sent
    def send_queued(self, video_id: str) -> None: ...
    def relay(self) -> Relayed: ...
    def enqueue_part(self, video_id: str, run_id: str, kind: str, index: int) -> None: ...
    def enqueue_cleanup(self, video_id: str) -> None: ...
    def enqueue_purge(self, video_id: str) -> None: ...
    def enqueue_sweep(self) -> None: ...
    def enqueue_feed_train(self) -> None: ...
    def warm(self, video_id: str) -> int: ...
    def check(self) -> None: ...


@dataclass
class LocalCaches:
    """This process's short-lived copies of hot rows (TTLs in `Settings`, see there what
    another process may still serve meanwhile)."""

    # token digest → (its user, when the token expires in ms)
    tokens: TTLCache[str, tuple[User, int]]
    # video id → its public view (`api.videos.schemas.VideoOut`) while published and public,
    # None while it is not; typed where it is read (`api.videos.viewcache`)
    videos: TTLCache[str, Any]
    # user id → the ids of the creators they follow
    followees: TTLCache[str, tuple[str, ...]]
    # creator id → their newest published public videos (`api.feed.following.CreatorVideos`)
    creator_videos: TTLCache[str, Any]
    # viewer id → (the version it was read at, the videos they watched or marked)
    seen: TTLCache[str, tuple[bytes, frozenset[str]]]

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalCaches:
        return cls(
            tokens=TTLCache(settings.token_cache_seconds, max_items=100_000),
            videos=TTLCache(settings.video_cache_seconds, max_items=50_000),
            followees=TTLCache(settings.followees_cache_seconds, max_items=50_000),
            creator_videos=TTLCache(settings.creator_videos_cache_seconds, max_items=20_000),
            # Checked against the shared version on every read; the TTL only bounds memory.
            seen=TTLCache(min(settings.seen_cache_seconds, 60), max_items=5_000),
        )

    def forget_videos(self, video_ids: Iterable[str]) -> None:
        """Evict videos this process just changed (deleted, liked, ...)."""
        self.videos.pop_many(video_ids)

    def forget_followees(self, user_id: str) -> None:
        """Evict a viewer's followees after a follow or unfollow through this process."""
        self.followees.pop(user_id)

    def forget_creator(self, owner_id: str) -> None:
        """Evict a creator's newest videos after one of them changed through this process."""
        self.creator_videos.pop(owner_id)


@dataclass
class AppContext:
    settings: Settings
    db: AsyncEngine
    storage: Storage
    cache: Cache
    jobs: JobQueue
    # `db` in autocommit: a read is one round trip (no BEGIN/ROLLBACK around it). For reads
    # only; anything that writes more than one statement takes `db.begin()`.
    reads: AsyncEngine
    local: LocalCaches
