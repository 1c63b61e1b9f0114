"""The metadata store's schema (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Times are integer milliseconds since the Unix epoch: cheap to compare and to put in cursors,
identical on both engines. Public ids are random strings with a type prefix (`u_`, `v_`, `c_`)
so they cannot be enumerated.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from classifiers.catalog_tables import audio_postings as audio_postings
from classifiers.catalog_tables import audio_ref_prints as audio_ref_prints
from classifiers.catalog_tables import audio_refs as audio_refs

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("handle", String(32), nullable=False, unique=True),
    Column("display_name", String(64), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False, default="user"),
    Column("created_at", BigInteger, nullable=False),
    Column("follower_count", Integer, nullable=False, default=0),
    Column("following_count", Integer, nullable=False, default=0),
    Column("video_count", Integer, nullable=False, default=0),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(24), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

# Video lifecycle: awaiting_upload → uploaded → processing → published | rejected | failed,
# plus deleted. `render_id` names the immutable storage prefix of the published outputs.
videos = Table(
    "videos",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("owner_id", String(24), ForeignKey("users.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=False, default=""),
    Column("caption", Text, nullable=False, default=""),
    Column("privacy", String(16), nullable=False, default="public"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("published_at", BigInteger),
    # Upload: declared size and type, how it arrives, and the tus offset.
    Column("upload_kind", String(16), nullable=False),
    Column("upload_size", BigInteger, nullable=False),
    Column("upload_content_type", String(100), nullable=False),
    Column("upload_offset", BigInteger, nullable=False, default=0),
    Column("upload_expires_at", BigInteger, nullable=False),
    Column("upload_metadata", Text, nullable=False, default=""),
    # A lease on the upload while one request writes a part (api/uploads/ `UploadLease`):
    # a random token and when it lapses, so a crashed writer never blocks a resume for long.
    Column("upload_lock", String(32)),
    Column("upload_lock_until", BigInteger),
    # Processing.
    Column("lane", String(16), nullable=False, default="normal"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("render_id", String(32)),
    Column("duration_s", Float),
    Column("width", Integer),
    Column("height", Integer),
    Column("renditions", Text, nullable=False, default="[]"),
    # Counters (kept with the row so one read answers GET /v1/videos/{id}).
    Column("like_count", Integer, nullable=False, default=0),
    Column("comment_count", Integer, nullable=False, default=0),
    Column("view_count", Integer, nullable=False, default=0),
    Column("share_count", Integer, nullable=False, default=0),
    Column("completion_count", Integer, nullable=False, default=0),
    Column("skip_count", Integer, nullable=False, default=0),
    Column("not_interested_count", Integer, nullable=False, default=0),
    Column("impression_count", Integer, nullable=False, default=0),
    Column("watch_ms", BigInteger, nullable=False, default=0),
    # Distinct viewers' reports since the last moderator approval (api/moderation/): over 10
    # the for-you ranking penalizes the video, over 50 it is pulled into review.
    Column("report_count", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_videos_owner_created", "owner_id", "created_at"),
    Index("ix_videos_status_published", "status", "published_at"),
    Index("ix_videos_owner_published", "owner_id", "published_at"),
)

video_history = Table(
    "video_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("video_id", String(24), ForeignKey("videos.id"), nullable=False, index=True),
    Column("at", BigInteger, nullable=False),
    Column("from_status", String(16), nullable=False),
    Column("to_status", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
)

likes = Table(
    "likes",
    metadata,
    Column("user_id", String(24), ForeignKey("users.id"), primary_key=True),
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_likes_video", "video_id"),
)

follows = Table(
    "follows",
    metadata,
    Column("follower_id", String(24), ForeignKey("users.id"), primary_key=True),
    Column("followee_id", String(24), ForeignKey("users.id"), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_follows_followee", "followee_id"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("video_id", String(24), ForeignKey("videos.id"), nullable=False),
    Column("user_id", String(24), ForeignKey("users.id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_comments_video_created", "video_id", "created_at"),
    # A viewer's newest comments (the For You fold-in, api/feed/foldin.py).
    Index("ix_comments_user_created", "user_id", "created_at"),
)

# Watch events, one row per client event id: a retried batch inserts nothing twice.
watch_events = Table(
    "watch_events",
    metadata,
    Column("user_id", String(24), ForeignKey("users.id"), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("video_id", String(24), ForeignKey("videos.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", BigInteger, nullable=False, default=0),
    Column("at", BigInteger, nullable=False),
    Index("ix_watch_events_video", "video_id"),
    # A viewer's newest events (the For You fold-in, api/feed/foldin.py).
    Index("ix_watch_events_user_at", "user_id", "at"),
)

# What a viewer has watched or marked: the for-you feed never shows these again.
seen = Table(
    "seen",
    metadata,
    Column("user_id", String(24), ForeignKey("users.id"), primary_key=True),
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("not_interested", Boolean, nullable=False, default=False),
    Column("at", BigInteger, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(24), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)


# Human review (issue 5, "Human review and reports"; api/moderation/). Every moderator
# decision, who made it, when and why.
moderation_decisions = Table(
    "moderation_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("video_id", String(24), ForeignKey("videos.id"), nullable=False, index=True),
    Column("moderator_id", String(24), ForeignKey("users.id"), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("added_to_blocklist", Boolean, nullable=False, default=False),
    Column("at", BigInteger, nullable=False),
)

# One report per viewer per video (the primary key enforces it).
reports = Table(
    "reports",
    metadata,
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("user_id", String(24), ForeignKey("users.id"), primary_key=True),
    Column("reason", String(16), nullable=False),
    Column("details", Text, nullable=False, default=""),
    Column("at", BigInteger, nullable=False),
)

# The owner's one appeal of a rejection; `resolved` once a moderator has decided on it.
appeals = Table(
    "appeals",
    metadata,
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("user_id", String(24), ForeignKey("users.id"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("resolved", Boolean, nullable=False, default=False),
)

# The copyright catalog's tables are the catalog's own (classifiers/catalog_tables.py, on
# `catalog_metadata`, which `api.core.db.create_schema` creates first); re-exported here. The
# claims matched uploads produced (api/safety/copyright.py) point at a reference by column,
# across the two MetaData objects.
copyright_claims = Table(
    "copyright_claims",
    metadata,
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("ref_id", Integer, ForeignKey(audio_refs.c.id, ondelete="CASCADE"), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("offset_s", Float, nullable=False),
    Column("score", Integer, nullable=False),
    Column("action", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_copyright_claims_ref", "ref_id"),
)

# What the automated checks found on a video (api/safety/, issue 5 "Keyframe moderation"):
# per-category scores (JSON), the worst frames (JSON list of {key, time_s, label, score};
# JPEGs under `safety/{vid}/` in storage), the PDQ hashes of its sampled frames (JSON list
# of {time, hash, quality}), the routing decision and the reason given to the owner.
video_safety = Table(
    "video_safety",
    metadata,
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("scores", Text, nullable=False, default="{}"),
    Column("worst_frames", Text, nullable=False, default="[]"),
    Column("pdq_hashes", Text, nullable=False, default="[]"),
    Column("decision", String(16), nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
)

# Known-bad frames (issue 5, "Known-bad content"): PDQ hashes (64 hex digits), from the
# rejected video a moderator blocklisted; an upload with a frame within the Hamming
# distance `pdq_max_distance` of one is rejected.
pdq_blocklist = Table(
    "pdq_blocklist",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hash", String(64), nullable=False),
    Column("source_video_id", String(24), ForeignKey("videos.id")),
    Column("added_by", String(24), ForeignKey("users.id")),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_pdq_blocklist_hash", "hash"),
    Index("ix_pdq_blocklist_source", "source_video_id"),
)

# How far a video's processing is (issue 15, "Progress"; api/core/progress.py): one row per
# video, owned by the run that wrote it last (`run_id`, fresh per job delivery), so a stale
# delivery's writes match nothing. `parts_done` is only ever counted up in SQL (concurrent
# part jobs); `fraction` is how far the work in flight is, of one part. A table of its own:
# `create_schema` adds missing tables to a deployed database but never alters one.
video_progress = Table(
    "video_progress",
    metadata,
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("parts_done", Integer, nullable=False, default=0),
    Column("parts_total", Integer, nullable=False, default=1),
    Column("fraction", Float, nullable=False, default=0.0),
    Column("started_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# A chunked run's parts (issue 15, "Split and stitch"; api/jobs/chunking.py): the record of
# what must run. One row per chunk (`kind` chunk, `part` its index), one for the audio track
# (`audio`, 0) and one for the assembly (`assembly`, 0), all written by the planner in one
# transaction with the run id of its `video_progress` row; a newer run deletes an older run's
# rows, so a part whose row is gone belongs to a superseded run. `state` moves pending → done
# (or failed) by compare-and-set only, so a redelivered message counts once; the assembly
# row's pending → claimed is the exactly-once start of the stitch. `updated_at` is also the
# part's lease (api/jobs/partrows.py): a heartbeat keeps it fresh while a delivery works on it;
# the run reaper (api/jobs/partreaper.py) reads the open rows by state.
video_parts = Table(
    "video_parts",
    metadata,
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("run_id", String(32), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("state", String(8), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_video_parts_state", "state", "updated_at"),
)


# A chunked run's facts every part needs alike (issue 15; api/jobs/chunking.py): the encoder the
# planner resolved, which every part of the run uses whatever its own worker's setting (a
# video's chunks must come out of one encoder: the stitch needs identical init segments),
# and which routes the parts to a pool that can run it (worker.py).
video_runs = Table(
    "video_runs",
    metadata,
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("run_id", String(32), primary_key=True),
    Column("encoder", String(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# A chunked run's growing presentation (issue 15, "Playable early" without a second decode;
# api/jobs/progressive.py): the run's render (`render_id`, the run's early render id) holds
# every rung's segments of the first `chunks` chunks and the audio, with HLS EVENT playlists
# that only ever grow; `state` is what the playlists list (packager/growing.py), `seconds`
# how much is playable, `renditions` the rungs as `videos.renditions` lists them, `ended` the
# playlists' EXT-X-ENDLIST. One row per video: a newer run replaces it in its planner's
# transaction, so a superseded run's compare-and-set on (`video_id`, `run_id`) finds nothing.
video_growing = Table(
    "video_growing",
    metadata,
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("render_id", String(32), nullable=False),
    Column("chunks", Integer, nullable=False, default=0),
    Column("total", Integer, nullable=False),
    Column("seconds", Float, nullable=False, default=0.0),
    Column("renditions", Text, nullable=False, default="[]"),
    Column("state", Text, nullable=False, default=""),
    Column("ended", Boolean, nullable=False, default=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Renders a video showed before its current one (issue 15, "Playable early": the early render
# that the whole ladder replaced; api/jobs/publish.py). The origin keeps serving each until
# `served_until` (the swap + the longest a playback URL lives), so a player part-way through the
# old manifest, or an old signed link, keeps working; the storage sweeper leaves them until then.
superseded_renders = Table(
    "superseded_renders",
    metadata,
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("render_id", String(32), primary_key=True),
    Column("served_until", BigInteger, nullable=False),
)

# The transactional outbox of the single-pass processing job (issue 16, "Jobs never depend on
# Redis keeping a message"; api/core/outbox.py, api/jobs/relay.py, api/jobs/joblease.py): the
# database, not the broker, is the record of what must run. A publish writes the row in the
# transaction that moves the video to `processing`; the relay hands unsent rows to Dramatiq
# (`sent_at`, `sends`, the broker's `epoch` then) and sends again a row nobody claimed in time,
# or sent before the broker lost its data (a new epoch). A delivery claims the row
# (`state` claimed, `attempt` the video's attempt) and keeps `heartbeat_at` fresh while it
# works, so a dead worker's job is sent again once the heartbeat lapses. The row goes when
# the job ends (published, rejected, failed, or its chunked run planned).
video_jobs = Table(
    "video_jobs",
    metadata,
    Column("video_id", String(24), ForeignKey("videos.id"), primary_key=True),
    Column("lane", String(16), nullable=False),
    Column("state", String(8), nullable=False),
    Column("sends", Integer, nullable=False, default=0),
    Column("sent_at", BigInteger),
    Column("epoch", String(32)),
    Column("attempt", Integer, nullable=False, default=0),
    Column("heartbeat_at", BigInteger, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_video_jobs_state", "state"),
)


def added_indexes() -> list[Index]:
    """Indexes added to tables after those were first created: `create_all` makes them with a
    new table only, so `api.core.db.create_schema` creates the missing ones itself."""
    wanted = {"ix_watch_events_user_at", "ix_comments_user_created"}
    return [i for t in (watch_events, comments) for i in t.indexes if i.name in wanted]
