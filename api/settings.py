"""Service settings: read once from `REELFORGE_*` environment variables into a typed object.

Everything that differs between the embedded default (SQLite, a local origin directory, jobs
in-process) and production (PostgreSQL, Redis, MinIO/S3, `dramatiq worker` pools) lives here;
the rest of the code receives a `Settings` and never reads the environment itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

Mode = Literal["embedded", "production"]

DEFAULT_CONTENT_TYPES = (
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "video/x-matroska",
    "video/3gpp",
    "video/x-msvideo",
    "video/mpeg",
    "application/octet-stream",
)


class SettingsError(ValueError):
    """A `REELFORGE_*` variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    mode: Mode = "embedded"
    data_dir: Path = Path("reelforge-data")
    host: str = "127.0.0.1"
    port: int = 8000
    # The address clients use to reach the API (upload and media URLs are built from it).
    public_url: str = ""
    # Where players fetch media: the API's own origin route, or a CDN in front of it.
    media_url: str = ""
    database_url: str = ""
    redis_url: str = ""
    storage: Literal["local", "s3"] = "local"
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "reelforge"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    max_upload_bytes: int = 2 * 1024**3
    upload_content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    upload_url_ttl_seconds: int = 3600
    token_ttl_seconds: int = 30 * 24 * 3600
    # Requests a user may make per window on mutating routes (429 with Retry-After beyond).
    rate_limit_per_minute: int = 600
    # Embedded mode: encoder jobs running at once inside the server process.
    embedded_workers: int = 1
    # Redis broker: how long a worker may stay silent before its unacked jobs are redelivered.
    broker_heartbeat_ms: int = 60_000
    # Upload rate at which a creator's further jobs go to the low-priority lane.
    busy_creator_uploads_per_hour: int = 5
    # Engine options passed to every transcode.
    segment_seconds: float = 2.0
    preset: str = "veryfast"
    encoder: str = "auto"
    transcode_time_limit_s: int = 900
    feed_cache_seconds: int = 30
    feed_timeout_ms: int = 150
    secret_key: str = field(default="", repr=False)

    @property
    def embedded(self) -> bool:
        return self.mode == "embedded"

    @property
    def origin_dir(self) -> Path:
        return self.data_dir / "origin"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @property
    def sync_database_url(self) -> str:
        """The same database through a synchronous driver (workers, CLI)."""
        return self.database_url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            name = "REELFORGE_" + f.name.upper()
            if name not in env:
                continue
            raw = env[name]
            values[f.name] = _convert(name, raw, f.type)
        settings = cls(**values)  # type: ignore[arg-type]
        return settings.resolved()

    def resolved(self) -> Settings:
        """Fill the defaults that depend on other settings, then check the combination."""
        if self.mode not in ("embedded", "production"):
            raise SettingsError(f"REELFORGE_MODE must be embedded or production, not {self.mode!r}")
        data_dir = self.data_dir.expanduser().resolve()
        public_url = (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
        media_url = (self.media_url or f"{public_url}/media").rstrip("/")
        database_url = self.database_url or f"sqlite+aiosqlite:///{data_dir / 'reelforge.db'}"
        database_url = _async_url(database_url)
        secret_key = self.secret_key or _embedded_secret(data_dir)
        result = _replace(
            self,
            data_dir=data_dir,
            public_url=public_url,
            media_url=media_url,
            database_url=database_url,
            secret_key=secret_key,
        )
        if result.mode == "production":
            missing = [
                name
                for name, value in (
                    ("REELFORGE_DATABASE_URL", self.database_url),
                    ("REELFORGE_REDIS_URL", self.redis_url),
                )
                if not value
            ]
            if result.storage == "s3" and not self.s3_endpoint:
                missing.append("REELFORGE_S3_ENDPOINT")
            if not self.secret_key:
                missing.append("REELFORGE_SECRET_KEY")
            if missing:
                raise SettingsError("production mode needs " + ", ".join(missing))
        if result.storage not in ("local", "s3"):
            raise SettingsError(f"REELFORGE_STORAGE must be local or s3, not {result.storage!r}")
        return result


def _replace(settings: Settings, **changes: object) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)  # type: ignore[arg-type]


def _async_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async drivers."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+psycopg://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def _embedded_secret(data_dir: Path) -> str:
    """Embedded mode keeps a random signing secret in the data directory (made once)."""
    import secrets

    path = data_dir / "secret.key"
    if path.is_file():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path.read_text().strip()


def _convert(name: str, raw: str, kind: object) -> object:
    kind = str(kind)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw)
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None
    return raw
