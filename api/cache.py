"""A small async key-value cache with counters: Redis in production, process memory embedded.

Used for rate-limit windows, the ranked/trending feed cache and other short-lived state; never
for anything the database must keep.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def incr_window(self, key: str, ttl_seconds: int) -> tuple[int, float]:
        """Increment a counter that expires `ttl_seconds` after its first increment;
        returns (count, seconds until it resets)."""
        ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """Process-local cache (embedded mode: one process)."""

    def __init__(self, max_items: int = 100_000) -> None:
        self._data: dict[str, tuple[float, bytes | int]] = {}
        self._max = max_items
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> tuple[float, bytes | int] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            self._data.pop(key, None)
            return None
        return item

    def _evict(self) -> None:
        if len(self._data) < self._max:
            return
        now = time.monotonic()
        for key in [k for k, (exp, _) in self._data.items() if exp <= now]:
            del self._data[key]
        while len(self._data) >= self._max:
            self._data.pop(next(iter(self._data)))

    async def get(self, key: str) -> bytes | None:
        item = self._live(key)
        if item is None or not isinstance(item[1], bytes):
            return None
        return item[1]

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._evict()
        self._data[key] = (time.monotonic() + ttl_seconds, value)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr_window(self, key: str, ttl_seconds: int) -> tuple[int, float]:
        now = time.monotonic()
        item = self._live(key)
        if item is None or not isinstance(item[1], int):
            self._evict()
            self._data[key] = (now + ttl_seconds, 1)
            return 1, float(ttl_seconds)
        count = item[1] + 1
        self._data[key] = (item[0], count)
        return count, max(0.0, item[0] - now)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """Shared cache for every API process (production)."""

    def __init__(self, url: str, prefix: str = "reelforge:") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._prefix + key)
        return value if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_seconds * 1000)))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def incr_window(self, key: str, ttl_seconds: int) -> tuple[int, float]:
        full = self._prefix + key
        pipe = self._redis.pipeline()
        pipe.incr(full)
        pipe.expire(full, ttl_seconds, nx=True)
        pipe.pttl(full)
        count, _, pttl = await pipe.execute()
        return int(count), max(0.0, int(pttl) / 1000) if int(pttl) > 0 else float(ttl_seconds)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
