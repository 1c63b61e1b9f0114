"""A small async key-value cache with counters: Redis in production, process memory embedded.

Used for rate-limit windows, the ranked/trending feed cache, viewers' seen sets and other
short-lived state; never for anything the database must keep.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Sequence
from typing import Protocol


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Several `get`s in one round trip."""
        ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def incr_window(self, key: str, ttl_seconds: int) -> tuple[int, float]:
        """Increment a counter that expires `ttl_seconds` after its first increment;
        returns (count, seconds until it resets)."""
        ...

    async def sadd(self, key: str, members: Sequence[str], ttl_seconds: float) -> None:
        """Add `members` to the set at `key` and make the whole set expire `ttl_seconds`
        from now."""
        ...

    async def smembers(self, key: str) -> builtins.set[str]:
        """The members of the set at `key` (empty when there is none)."""
        ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """Process-local cache (embedded mode: one process)."""

    def __init__(self, max_items: int = 100_000) -> None:
        self._data: dict[str, tuple[float, bytes | int | set[str]]] = {}
        self._max = max_items
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> tuple[float, bytes | int | set[str]] | None:
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

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [await self.get(key) for key in keys]

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

    async def sadd(self, key: str, members: Sequence[str], ttl_seconds: float) -> None:
        if not members:
            return
        item = self._live(key)
        if item is None or not isinstance(item[1], set):
            self._evict()
            current: set[str] = set()
        else:
            current = item[1]
        current.update(members)
        self._data[key] = (time.monotonic() + ttl_seconds, current)

    async def smembers(self, key: str) -> builtins.set[str]:
        item = self._live(key)
        return set(item[1]) if item is not None and isinstance(item[1], set) else set()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


# KEYS[1]: the counter; ARGV[1]: its window in ms. Returns {count, ms until it resets}.
_INCR_WINDOW = """
local count = redis.call('INCR', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
if pttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  pttl = tonumber(ARGV[1])
end
return {count, pttl}
"""


class RedisCache:
    """Shared cache for every API process (production)."""

    def __init__(self, url: str, prefix: str = "reelforge:") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._incr_window = self._redis.register_script(_INCR_WINDOW)

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._prefix + key)
        return value.encode() if isinstance(value, str) else value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        values = await self._redis.mget([self._prefix + key for key in keys])
        return [value.encode() if isinstance(value, str) else value for value in values]

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_seconds * 1000)))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def incr_window(self, key: str, ttl_seconds: int) -> tuple[int, float]:
        # One script call (INCR, set the expiry if the key has none, PTTL): one command for
        # the client to encode and parse on every mutating request, atomic on the server.
        count, pttl = await self._incr_window(keys=[self._prefix + key], args=[ttl_seconds * 1000])
        return int(count), int(pttl) / 1000 if int(pttl) > 0 else float(ttl_seconds)

    async def sadd(self, key: str, members: Sequence[str], ttl_seconds: float) -> None:
        if not members:
            return
        full = self._prefix + key
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(full, *members)
        pipe.pexpire(full, max(1, int(ttl_seconds * 1000)))
        await pipe.execute()

    async def smembers(self, key: str) -> builtins.set[str]:
        members = await self._redis.smembers(self._prefix + key)
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
