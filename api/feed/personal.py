"""A viewer's own order of the for-you snapshot (issue 17, "Retrieval"): the For You model of
`settings.feed_model_dir` (`recsys.artifact`, iALS embeddings) scores the snapshot's videos it
knows for a viewer it knows, and those videos trade places among themselves by that score; the
videos it does not know (newer than the model) keep their v1 places, and so does every
serving rule of `api.feed.ranking.merge` (seen, own, one creator per 5, the cold-start slot).
A viewer the model does not know gets the snapshot's order.

The model is loaded once per process and again when its folder's `CURRENT` names another
version (looked at, at most every `feed_cache_seconds`, off the event loop); a version that
cannot be loaded leaves the one in use (or none) in place. Any failure while ordering reaches
`api.feed.service.for_you_page`, which serves trending.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import numpy.typing as npt

from api.feed.store import Snapshot
from recsys import artifact

log = logging.getLogger("reelforge.feed")


class PersonalOrder:
    def __init__(self, root: str, check_seconds: float) -> None:
        self.root, self.check_seconds = root, max(check_seconds, 0.0)
        self.model: artifact.RetrievalModel | None = None
        self._checked = -float("inf")
        self._lock = asyncio.Lock()
        # (snapshot id, model version) → the snapshot's items as the model's rows.
        self._codes: tuple[tuple[str, str], npt.NDArray[np.int64]] | None = None

    async def current(self) -> artifact.RetrievalModel | None:
        if time.monotonic() - self._checked < self.check_seconds:
            return self.model
        async with self._lock:
            if time.monotonic() - self._checked >= self.check_seconds:
                self.model = await asyncio.to_thread(self._refresh)
                self._checked = time.monotonic()
        return self.model

    def _refresh(self) -> artifact.RetrievalModel | None:
        try:
            version = artifact.current_version(self.root)
            if self.model is not None and self.model.version == version:
                return self.model
            model = artifact.load(self.root, version)
        except artifact.ArtifactError as exc:
            log.warning("for-you model not loaded, keeping %s: %s", self._version(), exc)
            return self.model
        log.info("for-you model %s loaded from %s", model.version, self.root)
        return model

    def _version(self) -> str:
        return self.model.version if self.model is not None else "none"

    async def order(self, viewer: str, snapshot: Snapshot) -> list[int] | None:
        """The viewer's permutation of the snapshot's indexes, or None (the snapshot's order)."""
        model = await self.current()
        if model is None or not model.knows(viewer):
            return None
        key = (snapshot.sid, model.version)
        if self._codes is None or self._codes[0] != key:
            self._codes = (key, model.codes([c.id for c in snapshot.items]))
        scores = model.item_scores(viewer, self._codes[1])
        if scores is None:
            return None
        known = np.flatnonzero(~np.isnan(scores))
        if len(known) < 2:
            return None
        order = np.arange(len(scores))
        # The known videos' places, filled best-first by the viewer's scores (ties: v1 order).
        order[known] = known[np.argsort(-scores[known], kind="stable")]
        return order.tolist()  # type: ignore[no-any-return]
