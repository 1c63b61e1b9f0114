"""The shared services a process builds once from its settings: the object store and the
cache (Redis in production, this process's memory in the embedded default)."""

from __future__ import annotations

from api.core.cache import Cache, MemoryCache, RedisCache
from api.core.settings import Settings
from cdn.storage import Storage, build_storage


def make_storage(settings: Settings) -> Storage:
    return build_storage(
        settings.storage,
        root=settings.origin_dir,
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        bucket=settings.s3_bucket,
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


def make_cache(settings: Settings) -> Cache:
    return RedisCache(settings.redis_url) if settings.redis_url else MemoryCache()
