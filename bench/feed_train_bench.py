"""The For You retraining job's time on the bench data set's size (issue 17, "Learning loop":
"training on the bench data set (10k users, 100k videos, 1M events) finishes within minutes on
one 2-CPU worker").

    .venv/bin/python bench/feed_train_bench.py [--events 1000000] [--threads 2] [--captions]
        [--json OUT]

Writes a seeded synthetic event log into a fresh SQLite database (10,000 viewers, 100,000
videos by 1,000 creators in 50 topics; each viewer has a topic: 70 % of the videos they meet
are of it, which they play, watch and complete, the rest they skip after 0.8 s; every video met
also gets an impression; 10 % of the completed ones are liked, 2 % lead to a follow), then runs
the job's own function (`api.jobs.feedtrain.train_feed_model`) three times: the first version
(tuned), again after 1 % more events (warm start), and once more with nothing new (skipped).
Prints the seconds of each, and of reading the tables. With `--captions` every video has a
caption (`captions`: four words of its topic's slice of `WORDS`, two of any, a hashtag of its
topic and its own number),
so each version also fits the caption map ("Cold start", `recsys.captions`): its seconds are
`*_caption_s` (part of the version's time), its held-out R² `caption_r2`.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, insert

from api.core.db import create_schema
from api.core.settings import Settings
from api.core.tables import videos
from api.jobs.feedtrain import read_events, source_state, train_feed_model
from recsys import artifact

USERS, VIDEOS, CREATORS, TOPICS = 10_000, 100_000, 1_000, 50
DAY_MS = 86_400_000
WORDS = (  # noqa: SIM905
    "funny cat dog dance music song guitar cooking recipe pasta football goal travel beach "
    "mountain city night street fashion makeup tutorial gaming win fail prank baby family "
    "workout gym yoga art drawing painting car race science space tech phone review unboxing "
    "comedy skit movie trailer news weather garden flower bird fish ocean snow winter summer"
).split()


def captions(owner: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Four words of the video's topic's own slice of `WORDS`, two of any topic."""
    topic = owner % TOPICS
    own = (topic[:, None] + rng.integers(0, 6, (len(owner), 4))) % len(WORDS)
    anywhere = rng.integers(0, len(WORDS), (len(owner), 2))
    words = np.asarray(WORDS)[np.hstack([own, anywhere])]
    return [
        f"{' '.join(w)} #topic{t} clip {n}"
        for n, (w, t) in enumerate(zip(words.tolist(), topic.tolist(), strict=True))
    ]


def fill(path: Path, events: int, seed: int = 0, *, with_captions: bool = False) -> None:
    engine = create_engine(f"sqlite:///{path}")
    create_schema(engine)
    now = int(time.time() * 1000)
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, CREATORS, VIDEOS)  # creators are users 0..999
    base = {
        "status": "published", "status_reason": "", "caption": "", "privacy": "public",
        "created_at": now, "updated_at": now, "published_at": now, "upload_kind": "direct",
        "upload_size": 1, "upload_content_type": "video/mp4", "upload_offset": 1,
        "upload_expires_at": now, "upload_metadata": "", "renditions": "[]",
    }  # fmt: skip
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO users (id, handle, display_name, password_hash, role, created_at,"
            " follower_count, following_count, video_count) VALUES (?, ?, ?, '', 'user', ?,"
            " 0, 0, 0)",
            ((f"u{n}", f"u{n}", f"u{n}", now) for n in range(USERS)),
        )
    with engine.begin() as conn:
        text = captions(owner, np.random.default_rng(seed + 1)) if with_captions else None
        rows = [
            {**base, "id": f"v{n}", "owner_id": f"u{owner[n]}", "caption": text[n] if text else ""}
            for n in range(VIDEOS)
        ]
        for at in range(0, VIDEOS, 10_000):
            conn.execute(insert(videos), rows[at : at + 10_000])
    engine.dispose()
    topic_videos = [np.flatnonzero(owner % TOPICS == t) for t in range(TOPICS)]
    pairs = events // 4  # impression, play, watch_ms, completed or skip
    user = rng.integers(0, USERS, pairs)
    own = rng.random(pairs) < 0.7
    video = rng.integers(0, VIDEOS, pairs)
    for t in range(TOPICS):
        mine = np.flatnonzero(own & (user % TOPICS == t))
        video[mine] = rng.choice(topic_videos[t], size=len(mine))
    when = now - rng.integers(0, 30 * DAY_MS, pairs)
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT OR IGNORE INTO watch_events (user_id, event_id, video_id, kind, value, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            _events(user, video, own, when),
        )
        liked = own & (rng.random(pairs) < 0.1)
        db.executemany(
            "INSERT OR IGNORE INTO likes (user_id, video_id, created_at) VALUES (?, ?, ?)",
            (
                (f"u{u}", f"v{v}", int(t))
                for u, v, t in zip(user[liked], video[liked], when[liked], strict=True)
            ),
        )
        followed = own & (rng.random(pairs) < 0.02)
        db.executemany(
            "INSERT OR IGNORE INTO follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)",
            (
                (f"u{u}", f"u{owner[v]}", int(t) + 1000)
                for u, v, t in zip(user[followed], video[followed], when[followed], strict=True)
            ),
        )


def _events(
    user: np.ndarray, video: np.ndarray, own: np.ndarray, when: np.ndarray
) -> Iterator[tuple[str, str, str, str, int, int]]:
    for n, (u, v, liked, t) in enumerate(
        zip(user.tolist(), video.tolist(), own.tolist(), when.tolist(), strict=True)
    ):
        uid, vid = f"u{u}", f"v{v}"
        yield uid, f"{n}i", vid, "impression", 0, t
        yield uid, f"{n}p", vid, "play", 0, t
        yield uid, f"{n}w", vid, "watch_ms", 10_000 if liked else 800, t
        yield uid, f"{n}e", vid, "completed" if liked else "skip", 0, t


def online_speed(root: str, candidates: int = 1000, repeats: int = 200) -> dict[str, float]:
    """µs per candidate of `RetrievalModel.rank_scores` (the ranker online, one thread) and of
    `item_scores` (iALS alone), for `candidates` random videos of one known viewer."""
    model = artifact.load(root)
    rng = np.random.default_rng(2)
    codes = rng.choice(len(model.items), candidates, replace=False).astype(np.int64)
    viewer = str(next(iter(model.user_index)))
    out = {}
    for name, score in (("rank_scores", model.rank_scores), ("item_scores", model.item_scores)):
        score(viewer, codes)
        started = time.perf_counter()
        for _ in range(repeats):
            score(viewer, codes)
        out[f"{name}_us_per_candidate"] = (
            (time.perf_counter() - started) / repeats / candidates * 1e6
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--captions", action="store_true")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        started = time.monotonic()
        fill(path, args.events, with_captions=args.captions)
        figures: dict[str, float | int | str] = {"fill_s": time.monotonic() - started}
        settings = replace(
            Settings(data_dir=Path(tmp)),
            feed_model_dir=str(Path(tmp) / "models"),
            feed_train_threads=args.threads,
        )
        engine = create_engine(f"sqlite:///{path}")
        started = time.monotonic()
        source_state(engine)
        rows = read_events(engine)
        figures["read_s"] = time.monotonic() - started
        figures["rows_read"] = len(rows.user)
        for label, more in (("first", 0), ("warm", args.events // 100), ("unchanged", 0)):
            if more:
                with sqlite3.connect(path) as db:
                    rng = np.random.default_rng(1)
                    n = more // 4
                    user = rng.integers(0, USERS, n)
                    video = rng.integers(0, VIDEOS, n)
                    own = rng.random(n) < 0.5
                    when = np.full(n, int(time.time() * 1000))
                    db.executemany(
                        "INSERT OR IGNORE INTO watch_events (user_id, event_id, video_id, kind,"
                        " value, at) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            (u, "new" + e, v, k, x, t)
                            for u, e, v, k, x, t in _events(user, video, own, when)
                        ),
                    )
            started = time.monotonic()
            done = train_feed_model(engine, settings)
            figures[f"{label}_s"] = round(time.monotonic() - started, 1)
            figures[f"{label}_version"] = str(done.version if done else None)
            if done is not None and done.new:
                figures["pairs"] = done.interactions
                meta = artifact.load(settings.feed_model_dir).meta
                if "caption_seconds" in meta:
                    figures[f"{label}_caption_s"] = meta["caption_seconds"]
                    figures["caption_r2"] = meta.get("captions", {}).get("holdout_r2", "none")
                figures[f"{label}_ranker"] = bool(meta.get("ranker"))
                figures[f"{label}_ranker_s"] = float(meta.get("ranker_seconds", 0.0))
        figures.update(online_speed(settings.feed_model_dir))
        engine.dispose()
    figures = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
