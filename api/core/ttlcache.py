"""A bounded in-process map whose entries expire: the API's short-lived copies of hot rows.

Each API process keeps its own (tokens, video views, followee lists, creators' newest videos):
nothing here is shared, so a change made through another process is seen here once the
entry expires, and a change made through this process evicts the entry at once. A TTL of 0
disables the cache (every `get` misses, `put` keeps nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class TTLCache(Generic[K, V]):
    """key → value for `ttl_seconds` after it was put, at most `max_items` entries (the
    oldest go first). Lookups are plain dict reads: this sits on every request's path."""

    def __init__(
        self,
        ttl_seconds: float,
        max_items: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = max(0.0, ttl_seconds)
        self.max_items = max_items
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """The live value, or `default` (never put, expired or evicted)."""
        entry = self._entries.get(key)
        if entry is None:
            return default
        if entry[0] <= self._clock():
            self._entries.pop(key, None)
            return default
        return entry[1]

    def put(self, key: K, value: V, ttl_seconds: float | None = None) -> None:
        """Keep `value` for the cache's TTL, or for `ttl_seconds` when that is shorter."""
        ttl = self.ttl if ttl_seconds is None else min(self.ttl, ttl_seconds)
        if ttl <= 0:
            return
        self._entries.pop(key, None)  # re-inserted last: the eviction order is put order
        if len(self._entries) >= self.max_items:
            self._shrink()
        self._entries[key] = (self._clock() + ttl, value)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def pop_many(self, keys: Iterable[K]) -> None:
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def _shrink(self) -> None:
        now = self._clock()
        self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
        # Still full of live entries: drop the oldest tenth, so the next puts are cheap.
        excess = len(self._entries) - self.max_items + max(1, self.max_items // 10)
        if excess > 0:
            for key in list(self._entries)[:excess]:
                del self._entries[key]
