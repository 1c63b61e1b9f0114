"""The viewer's scores of a personal list's candidates (issue 17, "Ranking" and "Cold start"):
`api.feed.personal` calls `CandidateScores.scores` once per list it builds.

- Videos the model knows: `RetrievalModel.rank_scores`, the version's LightGBM ranker over the
  features an API process can afford (recsys/online.py), or the iALS score when the version
  has no ranker.
- Videos it does not know (newer than the model): their caption places them
  (`RetrievalModel.cold_scores`: the shipped text model and the version's caption map, an
  estimate on the iALS scale, recsys/captions.py), carried onto the known candidates' scale by
  rank: a new video gets the known candidates' score found at the quantile that its estimate
  has among their iALS scores. A version without a caption map, a process without the text
  model, or captions that cannot be read leave them NaN: their v1 places, as before.
- A folded-in viewer (`api.feed.foldin`: not in the version, so no row in the ranker's user
  features): their iALS scores for the videos it knows, and the captions' estimates carried
  onto those same scores by rank.

`personal_order` then gives the list's order from the scores and the v1 places.

Captions are read in one batched query per list for the ids not seen lately (kept per process
for `feed_cache_seconds`), and encoded off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sqlalchemy import bindparam, select

from api.core.context import AppContext
from api.core.tables import videos
from api.core.ttlcache import TTLCache
from api.feed import ranking
from recsys import artifact
from recsys import captions as caption_text

log = logging.getLogger("reelforge.feed")

CAPTIONS = 50_000
_CAPTIONS = select(videos.c.id, videos.c.caption).where(
    videos.c.id.in_(bindparam("ids", expanding=True))
)


def onto_scale(
    estimate: npt.NDArray[np.floating],
    known_base: npt.NDArray[np.floating],
    known_target: npt.NDArray[np.floating],
) -> npt.NDArray[np.float64]:
    """Each `estimate` (on `known_base`'s scale) carried to `known_target`'s by quantile: its
    fractional rank among `known_base` (interpolated between neighbours, clamped at the ends),
    then `known_target`'s value at that quantile. Monotone; estimates that land on the same
    value (beyond the known range) keep their own order by a tie-break far below the scale."""
    mine = np.asarray(estimate, np.float64)
    if len(known_base) == 0:
        return mine
    base = np.sort(np.asarray(known_base, np.float64))
    rank = np.interp(mine, base, np.linspace(0.0, 1.0, len(base)))
    value = np.asarray(np.quantile(np.asarray(known_target, np.float64), rank), np.float64)
    spread = float(np.ptp(mine)) or 1.0
    tie = 1e-9 * (1.0 + float(np.ptp(known_target))) * (mine - mine.min()) / spread
    return value + tie


def personal_order(
    items: Sequence[ranking.Candidate],
    extras: Sequence[ranking.Candidate],
    scores: npt.NDArray[np.floating],
    penalties: Sequence[float],
) -> list[int]:
    """The viewer's order of `items + extras` (indexes into that concatenation).

    `scores` (one per candidate, NaN where the model does not know it) and the v1 places:
    `items` in their order, each extra inserted before the first item with a lower v1 score
    (`Candidate.score`). The known candidates take the known places best score first (ties:
    v1 order); a positive score of an extra is multiplied by its report penalty."""
    n, m = len(items), len(extras)
    v1 = np.fromiter((c.score for c in items), np.float64, n)
    extra_v1 = np.fromiter((c.score for c in extras), np.float64, m)
    # Non-decreasing negated scores (the cold pool at the end is not in score order).
    key = np.maximum.accumulate(-v1) if n else v1
    at = np.searchsorted(key, -extra_v1, side="right") if n else np.zeros(m, np.int64)
    primary = np.concatenate([np.arange(n, dtype=np.float64), at - 0.5])
    base = np.lexsort((np.concatenate([np.zeros(n), -extra_v1]), primary))
    value = np.asarray(scores, dtype=np.float64).copy()
    tail = value[n:]
    cut = np.asarray(penalties, dtype=np.float64)
    value[n:] = np.where(tail > 0, tail * cut, tail)
    known = np.flatnonzero(~np.isnan(value[base]))
    order = base.copy()
    held = base[known]
    order[known] = held[np.argsort(-value[held], kind="stable")]
    return order.tolist()  # type: ignore[no-any-return]


def warm(model: artifact.RetrievalModel) -> None:
    """Load the text model now (in the loader's thread, not on a request) when the version
    can use it."""
    if model.caption_map is not None:
        try:
            caption_text.encoder()
        except caption_text.CaptionModelMissing as exc:
            log.warning("captions will not place new videos: %s", exc)


class CandidateScores:
    def __init__(self, cache_seconds: float) -> None:
        self._captions: TTLCache[str, str] = TTLCache(cache_seconds, max_items=CAPTIONS)

    async def scores(
        self,
        ctx: AppContext,
        model: artifact.RetrievalModel,
        viewer: str,
        ids: Sequence[str],
        codes: npt.NDArray[np.int64],
        folded: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float64] | None:
        """One score per candidate (NaN: no place of its own); None for an unknown viewer.
        `folded`: the factor of a folded-in viewer (`api.feed.foldin`), who has no row in the
        ranker's user features: their iALS scores order the known videos, and place the new
        ones' caption estimates (iALS for both scales)."""
        if folded is None:
            scores = await asyncio.to_thread(model.rank_scores, viewer, codes)
        else:
            scores = model.scores_for(folded, codes).astype(np.float64)
        unknown = np.flatnonzero(codes < 0)
        if scores is None or not len(unknown) or model.caption_map is None:
            return scores
        texts = await self._texts(ctx, [ids[n] for n in unknown.tolist()])
        try:
            if folded is None:
                cold = await asyncio.to_thread(model.cold_scores, viewer, texts)
            else:
                cold = await asyncio.to_thread(model.cold_scores_for, folded, texts)
        except (caption_text.CaptionModelMissing, artifact.ArtifactError) as exc:
            log.warning("captions not scored: %s", exc)
            return scores
        base = (
            model.item_scores(viewer, codes) if folded is None else model.scores_for(folded, codes)
        )
        if cold is None or base is None:
            return scores
        known = np.flatnonzero(codes >= 0)
        scores[unknown] = onto_scale(cold, base[known], scores[known])
        return scores

    async def _texts(self, ctx: AppContext, ids: list[str]) -> list[str]:
        found = {v: text for v in ids if (text := self._captions.get(v)) is not None}
        missing = [v for v in ids if v not in found]
        if missing:
            async with ctx.reads.connect() as conn:
                rows = (await conn.execute(_CAPTIONS, {"ids": missing})).all()
            for video_id, text in rows:
                found[str(video_id)] = str(text or "")
                self._captions.put(str(video_id), found[str(video_id)])
        return [found.get(v, "") for v in ids]
