"""Routing an upload after its transcode: published, in_review or rejected (issue 5).

The analyzers ran on the transcode's single decode (engine/analysis.py); their results are in
`report["analysis"]`. Each check gives a finding with an outcome, and the most severe wins
(rejected > in_review > published); the owner reads the reasons of the findings that decided.

- Keyframe moderation ("Keyframe moderation"): for each counted label, the sustained score
  (a sampled frame's score confirmed by the median of the samples within
  `moderation_confirm_seconds`, classifiers/moderation.py `sustained_scores`) over
  `moderation_reject_threshold` (0.95) rejects, over `moderation_review_threshold` (0.7)
  holds for review; a single frame over the reject threshold that its neighbours do not
  confirm also holds for review. Moderation that could not run holds for review.
- Caption watched words (classifiers/words.py): each entry says review or reject.
- Known-bad content ("Known-bad content"): any sampled frame within `pdq_max_distance` of a
  blocklisted PDQ hash rejects.
- Copyright (api/copyright.py, when installed): the matched reference's policy: block
  rejects, mute publishes without the audio track, allow publishes (the claim is recorded).

Automated rejections tell the owner the category, that the decision is automated and that it
can be appealed (once: api/moderation.py). `add_video_to_blocklist` is the moderators' way to
turn a rejected video into known-bad content.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from api.core import lifecycle
from api.core.db import now_ms
from api.core.settings import Settings, SettingsError
from api.core.tables import pdq_blocklist, video_safety, videos
from classifiers.moderation import ModelConfig, ModelError, check_model
from classifiers.pdq import Match, PdqSpec, match
from classifiers.sampling import SamplingSpec
from classifiers.words import WatchedWord, WordListError, find_watched, load_word_list
from engine.analysis import AnalysisSpec

COPYRIGHT_MODULE = "api.safety.copyright"
FINGERPRINT_MODULE = "classifiers.fingerprint"
SEVERITY = {lifecycle.PUBLISHED: 0, lifecycle.IN_REVIEW: 1, lifecycle.REJECTED: 2}
APPEAL = "This is an automated decision; you can appeal it once."
HELD = "A moderator will decide; until then the video is not shown anywhere."


# ------------------------------------------------------------------------ configuration


def model_config(settings: Settings) -> ModelConfig:
    """The moderation model as the settings describe it."""
    return ModelConfig(
        path=settings.moderation_model,
        kind=settings.moderation_kind.lower(),  # type: ignore[arg-type]
        fit=settings.moderation_fit.lower(),  # type: ignore[arg-type]
        input_size=settings.moderation_input_size,
        resize=settings.moderation_resize,
        mean=_three(settings.moderation_mean, "REELFORGE_MODERATION_MEAN"),
        std=_three(settings.moderation_std, "REELFORGE_MODERATION_STD"),
        scale=settings.moderation_scale,
        channels=settings.moderation_channels.upper(),  # type: ignore[arg-type]
        layout=settings.moderation_layout.upper(),  # type: ignore[arg-type]
        labels=tuple(settings.moderation_labels),
        counted=tuple(settings.moderation_counted),
        activation=settings.moderation_activation.lower(),  # type: ignore[arg-type]
        batch_size=settings.moderation_batch,
        threads=settings.moderation_threads,
        jpeg_quality=settings.moderation_jpeg_quality,
    )


def _three(values: Sequence[float], name: str) -> tuple[float, float, float]:
    if len(values) != 3:
        raise SettingsError(f"{name} needs three comma-separated numbers, not {list(values)}")
    return (float(values[0]), float(values[1]), float(values[2]))


def analysis_spec(settings: Settings, artifacts_dir: Path | None = None) -> AnalysisSpec:
    """What every transcode analyzes, from the settings (picklable, for the engine's child)."""
    fingerprint = None
    if settings.fingerprint_enabled:
        fingerprint = _import(FINGERPRINT_MODULE, "REELFORGE_FINGERPRINT_ENABLED").FingerprintSpec()
    return AnalysisSpec(
        sampling=SamplingSpec(
            fps=settings.sample_fps,
            max_frames=settings.max_sampled_frames,
            scene_threshold=settings.scene_threshold,
        ),
        moderation=model_config(settings) if settings.moderation_enabled else None,
        inference="end" if settings.moderation_inference == "end" else "thread",
        confirm_window=settings.moderation_confirm_seconds,
        pdq=PdqSpec(min_quality=settings.pdq_min_quality) if settings.pdq_enabled else None,
        fingerprint=fingerprint,
        artifacts_dir=str(artifacts_dir) if artifacts_dir is not None else None,
    )


def _import(module: str, setting: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SettingsError(f"{setting} is on but {module} cannot be imported: {exc}") from None


@functools.lru_cache(maxsize=8)
def _word_list(entries: tuple[str, ...], path: str, stamp: float) -> tuple[WatchedWord, ...]:
    return tuple(load_word_list(entries, path or None))


def watched_words(settings: Settings) -> tuple[WatchedWord, ...]:
    """The configured watched words (the file is re-read when it changes)."""
    path = settings.watched_words_file
    stamp = Path(path).stat().st_mtime if path and Path(path).exists() else 0.0
    try:
        return _word_list(tuple(settings.watched_words), path, stamp)
    except WordListError as exc:
        raise SettingsError(f"REELFORGE_WATCHED_WORDS: {exc}") from None


def check_startup(settings: Settings) -> None:
    """Fail start-up (`reelforge serve`, worker processes) on a safety configuration that
    cannot work: a missing or malformed moderation model (the message names its path), bad
    thresholds, an unreadable watched-word list, fingerprinting on without its module."""
    low, high = settings.moderation_review_threshold, settings.moderation_reject_threshold
    if not 0.0 <= low <= high <= 1.0:
        raise SettingsError(
            "REELFORGE_MODERATION_REVIEW_THRESHOLD / _REJECT_THRESHOLD must satisfy "
            f"0 ≤ review ≤ reject ≤ 1 (got {low} and {high})"
        )
    if settings.moderation_inference not in ("thread", "end"):
        raise SettingsError("REELFORGE_MODERATION_INFERENCE must be thread or end")
    if not 0 <= settings.pdq_max_distance <= 256:
        raise SettingsError("REELFORGE_PDQ_MAX_DISTANCE must be between 0 and 256")
    try:
        SamplingSpec(settings.sample_fps, settings.max_sampled_frames, settings.scene_threshold)
    except ValueError as exc:
        raise SettingsError(f"REELFORGE_SAMPLE_FPS / _MAX_SAMPLED_FRAMES: {exc}") from None
    watched_words(settings)
    if settings.moderation_enabled:
        try:
            check_model(model_config(settings))
        except ModelError as exc:
            raise SettingsError(f"REELFORGE_MODERATION_MODEL: {exc}") from None
    if settings.fingerprint_enabled:
        _import(FINGERPRINT_MODULE, "REELFORGE_FINGERPRINT_ENABLED")
        _import(COPYRIGHT_MODULE, "REELFORGE_FINGERPRINT_ENABLED")


def check_catalog(settings: Settings) -> None:
    """Fail start-up of a process that runs jobs (a worker, embedded `serve`) while the
    copyright catalog holds references fingerprinted by an older version: uploads would never
    match them, so their owners' policies would silently stop applying. `settings` are
    resolved (`Settings.from_env`): their database is the one the jobs use."""
    if not settings.fingerprint_enabled:
        return
    from api.core.db import create_schema, sync_engine
    from classifiers import catalog

    engine = sync_engine(settings)
    try:
        create_schema(engine)
        with engine.connect() as conn:
            stale = catalog.stale_references(conn)
    finally:
        engine.dispose()
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise SettingsError(
            f"the copyright catalog has {len(stale)} reference(s) fingerprinted by an older "
            f"version, which no upload can match: {shown}. Add their files again "
            "(`reelforge catalog add FILE... --owner NAME`) or remove them "
            "(`reelforge catalog remove NAME...`)"
        )


# ------------------------------------------------------------------------------ routing


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # moderation | words | pdq | copyright | checks
    outcome: str  # a lifecycle state: published | in_review | rejected
    reason: str  # what the owner reads


@dataclass(frozen=True)
class Routing:
    status: str
    reason: str
    findings: list[Finding] = field(default_factory=list)
    mute: bool = False
    claim: dict[str, Any] | None = None
    pdq_matches: list[Match] = field(default_factory=list)


def moderation_findings(result: dict[str, Any] | None, settings: Settings) -> list[Finding]:
    if result is None:
        return []
    if result.get("error"):
        return [
            Finding(
                "checks",
                lifecycle.IN_REVIEW,
                f"Held for review: the automated checks could not complete. {HELD}",
            )
        ]
    reject, review = settings.moderation_reject_threshold, settings.moderation_review_threshold
    findings = []
    for label, stats in sorted(result.get("categories", {}).items()):
        sustained = float(stats.get("sustained", stats.get("max", 0.0)))
        peak = float(stats.get("max", 0.0))
        if sustained > reject:
            text = (
                f"Rejected by automated moderation: classified as {label} "
                f"(score {sustained:.2f}, over {reject:g}). {APPEAL}"
            )
            findings.append(Finding("moderation", lifecycle.REJECTED, text))
        elif sustained > review:
            text = (
                f"Held for review: automated moderation flagged it as possibly {label} "
                f"(score {sustained:.2f}). {HELD}"
            )
            findings.append(Finding("moderation", lifecycle.IN_REVIEW, text))
        elif peak > reject:
            worst = stats.get("worst") or [{}]
            at = worst[0].get("time")
            when = f" at {float(at):.1f} s" if at is not None else ""
            text = (
                f"Held for review: automated moderation flagged a frame{when} as possibly "
                f"{label} (score {peak:.2f}). {HELD}"
            )
            findings.append(Finding("moderation", lifecycle.IN_REVIEW, text))
    return findings


def word_findings(caption: str, words: Sequence[WatchedWord]) -> list[Finding]:
    findings = []
    for hit in find_watched(caption, words):
        if hit.action == "reject":
            text = (
                f'Rejected by automated moderation: the caption contains "{hit.phrase}". {APPEAL}'
            )
            findings.append(Finding("words", lifecycle.REJECTED, text))
        else:
            text = f'Held for review: the caption contains the watched term "{hit.phrase}". {HELD}'
            findings.append(Finding("words", lifecycle.IN_REVIEW, text))
    return findings


def pdq_findings(matches: Sequence[Match]) -> list[Finding]:
    if not matches:
        return []
    text = (
        "Rejected by automated moderation: it matches content that was removed from this "
        f"service before. {APPEAL}"
    )
    return [Finding("pdq", lifecycle.REJECTED, text)]


def _claim_text(claim: dict[str, Any] | None) -> str:
    claim = claim or {}
    name = claim.get("name") or claim.get("reference") or claim.get("ref_name")
    owner = claim.get("owner")
    what = f'"{name}"' if name else "a registered recording"
    return what + (f" ({owner})" if owner else "")


def copyright_findings(outcome: Any) -> tuple[list[Finding], bool]:
    """(findings, mute) for api/copyright.py's `CopyrightOutcome`."""
    if outcome is None:
        return [], False
    action, claim = getattr(outcome, "action", "allow"), getattr(outcome, "claim", None)
    if action == "block":
        text = (
            f"Rejected by automated copyright matching: its audio matches {_claim_text(claim)}, "
            f"whose rights holder does not allow its use. {APPEAL}"
        )
        return [Finding("copyright", lifecycle.REJECTED, text)], False
    if action == "mute":
        text = (
            f"Published without its audio: the soundtrack matches {_claim_text(claim)}, whose "
            "rights holder allows the video but not the audio."
        )
        return [Finding("copyright", lifecycle.PUBLISHED, text)], True
    return [], False


def decide(
    findings: Sequence[Finding],
    *,
    mute: bool = False,
    claim: dict[str, Any] | None = None,
    pdq_matches: Sequence[Match] = (),
) -> Routing:
    """The most severe finding decides; its reasons (and a mute notice) are the owner's."""
    status = max((f.outcome for f in findings), key=SEVERITY.__getitem__, default="published")
    reasons = [f.reason for f in findings if f.outcome == status]
    if status != lifecycle.PUBLISHED:
        # Say "you can appeal" once, at the end.
        reasons = [r.replace(f" {APPEAL}", "") for r in reasons]
        if status == lifecycle.REJECTED:
            reasons.append(APPEAL)
    if mute and status != lifecycle.PUBLISHED:
        reasons.append("Its audio will be published muted (copyright).")
    reason = " ".join(reasons) if reasons else "published"
    return Routing(status, reason, list(findings), mute, claim, list(pdq_matches))


def load_blocklist(conn: Connection) -> list[tuple[int, str]]:
    rows = conn.execute(select(pdq_blocklist.c.id, pdq_blocklist.c.hash))
    return [(int(row.id), str(row.hash)) for row in rows]


def evaluate_copyright(conn: Connection, result: dict[str, Any] | None, settings: Settings) -> Any:
    """api/copyright.py's verdict on the fingerprint (None when there is none to judge)."""
    if result is None:
        return None
    module = _import(COPYRIGHT_MODULE, "REELFORGE_FINGERPRINT_ENABLED")
    return module.evaluate(conn, result, settings)


def mute(outdir: Path) -> None:
    """Remove the audio track from a transcode's outputs (api/copyright.py's re-packaging)."""
    _import(COPYRIGHT_MODULE, "REELFORGE_FINGERPRINT_ENABLED").mute_outputs(outdir)


def route(
    conn: Connection, caption: str, analysis: dict[str, Any] | None, settings: Settings
) -> Routing:
    """Decide the video's fate from its analysis, caption, the blocklist and the catalog."""
    analysis = analysis or {}
    findings = moderation_findings(analysis.get("moderation"), settings)
    findings += word_findings(caption or "", watched_words(settings))
    matches: list[Match] = []
    pdq = analysis.get("pdq")
    if pdq is not None and pdq.get("error"):
        findings += moderation_findings({"error": pdq["error"]}, settings)
    elif pdq is not None:
        matches = match(
            pdq.get("hashes", []),
            load_blocklist(conn),
            settings.pdq_max_distance,
            settings.pdq_min_quality,
        )
        findings += pdq_findings(matches)
    outcome = None
    fingerprint = analysis.get("fingerprint")
    if fingerprint is not None and fingerprint.get("error"):
        findings += moderation_findings({"error": fingerprint["error"]}, settings)
    else:
        outcome = evaluate_copyright(conn, fingerprint, settings)
    more, mute = copyright_findings(outcome)
    claim = getattr(outcome, "claim", None)
    return decide([*findings, *more], mute=mute, claim=claim, pdq_matches=matches)


# ------------------------------------------------------------------------------ records


def worst_frames(moderation: dict[str, Any] | None, prefix: str) -> list[dict[str, Any]]:
    """`video_safety.worst_frames`: [{key, time_s, label, score}], worst first per label."""
    frames = []
    for label, stats in sorted(((moderation or {}).get("categories") or {}).items()):
        for entry in stats.get("worst", []):
            if entry.get("image"):
                frames.append(
                    {
                        "key": prefix + entry["image"],
                        "time_s": entry.get("time"),
                        "label": label,
                        "score": entry.get("score"),
                    }
                )
    return frames


def record(
    conn: Connection,
    video_id: str,
    routing: Routing,
    analysis: dict[str, Any] | None,
    frames: list[dict[str, Any]],
) -> None:
    """Write (or rewrite) the video's `video_safety` row, and its copyright claim if any,
    inside the caller's transaction (the one that moves the video)."""
    analysis = analysis or {}
    moderation = analysis.get("moderation") or {}
    scores = {
        "categories": {
            label: {k: v for k, v in stats.items() if k != "worst"}
            for label, stats in (moderation.get("categories") or {}).items()
        },
        "frames": moderation.get("frames", 0),
        "model": moderation.get("model"),
        "error": moderation.get("error"),
        "findings": [{"check": f.check, "outcome": f.outcome} for f in routing.findings],
        "pdq_matches": [
            {"time": m.time, "blocklist_id": m.entry_id, "distance": m.distance}
            for m in routing.pdq_matches
        ],
        "muted": routing.mute,
    }
    pdq_hashes = (analysis.get("pdq") or {}).get("hashes", [])
    conn.execute(delete(video_safety).where(video_safety.c.video_id == video_id))
    conn.execute(
        insert(video_safety).values(
            video_id=video_id,
            scores=json.dumps(scores),
            worst_frames=json.dumps(frames),
            pdq_hashes=json.dumps(pdq_hashes),
            decision=routing.status,
            reason=routing.reason,
            created_at=now_ms(),
        )
    )
    if routing.claim:
        _import(COPYRIGHT_MODULE, "REELFORGE_FINGERPRINT_ENABLED").record_claim(
            conn, video_id, routing.claim
        )


class BlocklistError(ValueError):
    """The video cannot be blocklisted (not rejected, or nothing usable was hashed)."""


def add_video_to_blocklist(
    conn: Connection, video_id: str, moderator_id: str, *, min_quality: int = 50
) -> int:
    """Add a rejected video's PDQ hashes (those of quality ≥ `min_quality`, each distinct
    within 0 bits) to the blocklist; returns how many rows were added (0 when they are
    already there, or when every sampled frame was too flat to hash usefully).

    Runs inside the caller's transaction (the moderator's decision).
    """
    status = conn.execute(select(videos.c.status).where(videos.c.id == video_id)).scalar()
    if status != lifecycle.REJECTED:
        raise BlocklistError(f"video {video_id} is {status or 'missing'}; only rejected videos")
    raw = conn.execute(
        select(video_safety.c.pdq_hashes).where(video_safety.c.video_id == video_id)
    ).scalar()
    hashes = [
        str(entry["hash"])
        for entry in json.loads(raw or "[]")
        if int(entry.get("quality", 0)) >= min_quality
    ]
    existing = {
        str(h)
        for h in conn.execute(
            select(pdq_blocklist.c.hash).where(pdq_blocklist.c.source_video_id == video_id)
        ).scalars()
    }
    fresh = sorted(set(hashes) - existing)
    if fresh:
        now = now_ms()
        conn.execute(
            insert(pdq_blocklist),
            [
                {
                    "hash": h,
                    "source_video_id": video_id,
                    "added_by": moderator_id,
                    "created_at": now,
                }
                for h in fresh
            ],
        )
    return len(fresh)
