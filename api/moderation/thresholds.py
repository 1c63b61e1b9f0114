"""The report thresholds the feeds and the reports read (issue 5, "Human review and
reports"): pure numbers and one pure function, so the ranking can import them without the
rest of moderation.

Over `DEPRIORITIZE_OVER` distinct reporters the for-you ranking multiplies a video's score by
`report_penalty`; over `REVIEW_OVER` the video is pulled into review (api/moderation/reports.py).
An approval clears `report_count` (the moderator has judged those reports), so the penalty
lifts and only new reporters can pull the video in again.
"""

from __future__ import annotations

REPORT_REASONS = ("spam", "nudity", "violence", "hate", "copyright", "other")
DEPRIORITIZE_OVER = 10
REVIEW_OVER = 50
PULLED_BY_REPORTS = "reported by many viewers"
# The for-you score of a video over DEPRIORITIZE_OVER reports is multiplied by at most this.
REPORTED_WEIGHT = 0.1


def report_penalty(report_count: int) -> float:
    """The factor the for-you score is multiplied by for a video's reports.

    1.0 up to `DEPRIORITIZE_OVER` distinct reporters; beyond, `REPORTED_WEIGHT` scaled down
    in proportion to the reports (0.091 at 11, 0.02 at 50): positive, so the score keeps its
    sign and the time decay still orders reported videos among themselves.
    """
    if report_count <= DEPRIORITIZE_OVER:
        return 1.0
    return REPORTED_WEIGHT * DEPRIORITIZE_OVER / report_count
