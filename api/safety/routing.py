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
  blocklisted PDQ hash (api/safety/blocklist.py) rejects.
- Copyright (api/safety/copyright.py, when installed): the matched reference's policy: block
  rejects, mute publishes without the audio track, allow publishes (the claim is recorded).

Automated rejections tell the owner the category, that the decision is automated and that it
can be appealed (once: api/moderation). What the checks found is kept by
api/safety/record.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from api.core import lifecycle
from api.core.settings import Settings
from api.safety.blocklist import load_blocklist
from api.safety.config import copyright_module, watched_words
from classifiers.pdq import Match, match
from classifiers.words import WatchedWord, find_watched

SEVERITY = {lifecycle.PUBLISHED: 0, lifecycle.IN_REVIEW: 1, lifecycle.REJECTED: 2}
APPEAL = "This is an automated decision; you can appeal it once."
HELD = "A moderator will decide; until then the video is not shown anywhere."


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
    """(findings, mute) for api/safety/copyright.py's `CopyrightOutcome`."""
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


def evaluate_copyright(conn: Connection, result: dict[str, Any] | None, settings: Settings) -> Any:
    """api/safety/copyright.py's verdict on the fingerprint (None when there is none to judge)."""
    if result is None:
        return None
    return copyright_module().evaluate(conn, result, settings)


def mute(outdir: Path) -> None:
    """Remove the audio track from a transcode's outputs (copyright.py's re-packaging)."""
    copyright_module().mute_outputs(outdir)


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
