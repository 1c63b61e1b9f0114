"""What the moderation routes read and answer: the review queue, decisions, reports and
appeals (msgspec structs; their OpenAPI component names are these class names)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from api.videos.schemas import AuthorOut

MAX_REASON = 1000


class DecisionIn(msgspec.Struct):
    decision: Literal["approve", "reject"]
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)] = ""
    add_to_blocklist: bool = False


class DecisionResultOut(msgspec.Struct):
    video_id: str
    status: str
    decision_id: int
    at: int
    blocklisted_hashes: int | None  # new blocklist entries (add_to_blocklist), else null


class FrameOut(msgspec.Struct):
    n: int
    url: str
    time_s: float | None
    label: str | None
    score: float | None


class SafetyOut(msgspec.Struct):
    decision: str | None
    reason: str | None
    scores: Any
    frames: list[FrameOut]


class WhyOut(msgspec.Struct):
    source: str  # automated | reports | appeal
    reason: str  # the reason of the move into review, as the owner reads it
    checks: list[str]  # automated: which checks held it (moderation, words, pdq, checks)


class QueueAppealOut(msgspec.Struct):
    """The owner's appeal of a video in the review queue."""

    reason: str
    at: int


class QueueItemOut(msgspec.Struct):
    video_id: str
    caption: str
    privacy: str
    author: AuthorOut
    created_at: int
    in_review_since: int
    why: WhyOut
    report_count: int
    reports: dict[str, int]
    appeal: QueueAppealOut | None
    safety: SafetyOut | None
    # The video's media for this moderator's player (cdn/signing.py review token).
    hls_url: str | None
    dash_url: str | None
    poster_url: str | None


class QueueOut(msgspec.Struct):
    videos: list[QueueItemOut]
    next_cursor: str | None


class ModeratorOut(msgspec.Struct):
    id: str
    handle: str


class DecisionOut(msgspec.Struct):
    id: int
    decision: str
    reason: str
    added_to_blocklist: bool
    moderator: ModeratorOut
    at: int


class DecisionsOut(msgspec.Struct):
    video_id: str
    decisions: list[DecisionOut]


MAX_DETAILS = 500
MAX_APPEAL = 1000

# Keep in step with api.moderation.thresholds.REPORT_REASONS (a test checks they match).
ReportReason = Literal["spam", "nudity", "violence", "hate", "copyright", "other"]


class ReportIn(msgspec.Struct):
    reason: ReportReason
    details: Annotated[str, msgspec.Meta(max_length=MAX_DETAILS)] = ""


class ReportOut(msgspec.Struct):
    video_id: str
    reason: str


class AppealIn(msgspec.Struct):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_APPEAL)]


class AppealOut(msgspec.Struct):
    video_id: str
    status: str
