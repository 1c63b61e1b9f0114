"""Load-test the control API in production mode: feed reads and likes against the framework's
own ceiling (the trivial JSON `/healthz` of the same server), all measured in one run.

    .venv/bin/python bench/api_bench.py [--users 10000 --videos 100000 --likes 1000000]
                                         [--no-model] [--db reelforge_bench --redis-db 14]

Seeds a fresh PostgreSQL database (`reelforge_bench`) with users, published videos, likes and
follows using server-side INSERT ... SELECT, starts ONE API process (`reelforge serve`,
REELFORGE_MODE=production, Redis for the feed cache), warms it, then drives it with `wrk` from
another process: GET /healthz (ceiling), GET /v1/feed?type=for_you and type=following, and
POST /v1/videos/{id}/like. Rounds alternate the endpoints; medians go to a Markdown table and
bench/api_results.json. Needs PostgreSQL and Redis on 127.0.0.1 (as in tests) and `wrk`.

Unless `--no-model`, the for-you rounds are personal (issue 17, "Speed"): after seeding, a For
You model (iALS, `recsys.mf.IALS` at a fixed setting, not tuned) is trained on the seeded log
as the retraining job reads it (`api.jobs.feedtrain.read_events`, `recsys.signals`) and saved
as a `recsys.artifact` version; the API process gets it as `REELFORGE_FEED_MODEL_DIR` (its
periodic retraining off), and the users whose tokens the wrk script sends are all in it.

The feed answers say where their page came from (`source`, api/feed/service.py): a for-you
page is `ranked`, or `trending` when the ranked path failed or ran out of time, and a ranked
page of the viewer's own list says `personal: true`. The wrk script counts every timed answer
by source (`ranked+personal` for those; issue 16: a trending fallback is a different, cheaper
query, and must not count as a ranked answer); a run in which any for-you answer was not
`ranked+personal` (`ranked` with `--no-model`), or any following answer not `following`, is
refused: its table is printed with the reasons, nothing is written to the results file, and
the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = Path(__file__).resolve().parent / "api_results.json"
LUA = Path(__file__).resolve().parent / "lua"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reelforge_bench"
# The bench model's iALS setting (fixed: the tuning's 12 fits are the job's, not the bench's).
MODEL_SETTING = {"factors": 64, "regularization": 0.05, "alpha": 10.0, "iterations": 10}
BENCH_USERS_WITH_TOKENS = 32
FOR_YOU = "GET /v1/feed for_you"
FOLLOWING = "GET /v1/feed following"
# The only `source` each feed case may answer with in a valid run.
EXPECTED_SOURCE = {FOR_YOU: "ranked", FOLLOWING: "following"}
_SOURCE_LINE = re.compile(r"^feed source (\S+) (\d+)$", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str, users: int, videos: int, likes: int, db_name: str = DB_NAME) -> list[str]:
    """Fill the schema with synthetic rows; returns bearer tokens of the first users."""
    import psycopg
    from sqlalchemy import create_engine

    from api.accounts.tokens import hash_password
    from api.core.db import create_schema

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {db_name}")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    create_schema(engine)
    engine.dispose()
    password = hash_password("bench password")
    now = int(time.time() * 1000)
    per_user = max(1, likes // users)
    step = 4729  # coprime with 10^k: j * step mod videos is distinct for j < videos
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO users (id, handle, display_name, password_hash, role, created_at,
                   follower_count, following_count, video_count)
               SELECT 'u_bench' || lpad(i::text, 5, '0'), format('bench%%s', i),
                      format('Bench %%s', i),
                      %s, 'user', %s, 0, 50, 0
               FROM generate_series(0, %s - 1) AS i""",
            (password, now, users),
        )
        conn.execute(
            """INSERT INTO videos (id, owner_id, status, status_reason, caption, privacy,
                   created_at, updated_at, published_at, upload_kind, upload_size,
                   upload_content_type, upload_offset, upload_expires_at, upload_metadata,
                   lane, attempts, render_id, duration_s, width, height, renditions,
                   like_count, comment_count, view_count, share_count, completion_count,
                   skip_count, not_interested_count, impression_count, watch_ms)
               SELECT 'v_bench' || lpad(i::text, 6, '0'),
                      'u_bench' || lpad((i %% %s)::text, 5, '0'), 'published',
                      'published', format('clip %%s', i), 'public',
                      %s - (i::bigint * 25920), %s, %s - (i::bigint * 25920), 'direct',
                      1000000, 'video/mp4',
                      1000000, %s, '', 'normal', 1, 'r_bench', 15.0, 1080, 1920, '[]',
                      0, (i * 7) %% 13, (i * 131) %% 5000, (i * 17) %% 40, (i * 53) %% 900,
                      (i * 11) %% 300, (i * 3) %% 7, 100 + (i * 197) %% 20000, 0
               FROM generate_series(0, %s - 1) AS i""",
            (users, now, now, now, now, videos),
        )
        conn.execute(
            """INSERT INTO likes (user_id, video_id, created_at)
               SELECT 'u_bench' || lpad(u::text, 5, '0'),
                      'v_bench' || lpad(((u * 7919 + j * %s) %% %s)::text, 6, '0'), %s
               FROM generate_series(0, %s - 1) AS u, generate_series(0, %s - 1) AS j""",
            (step, videos, now, users, per_user),
        )
        conn.execute(
            """UPDATE videos SET like_count = c.n FROM
               (SELECT video_id, count(*) AS n FROM likes GROUP BY video_id) AS c
               WHERE videos.id = c.video_id"""
        )
        conn.execute(
            """INSERT INTO follows (follower_id, followee_id, created_at)
               SELECT 'u_bench' || lpad(u::text, 5, '0'),
                      'u_bench' || lpad(((u + 1 + j * 97) %% %s)::text, 5, '0'), %s
               FROM generate_series(0, %s - 1) AS u, generate_series(0, 49) AS j
               ON CONFLICT DO NOTHING""",
            (users, now, users),
        )
        conn.execute(
            "UPDATE users SET video_count = c.n FROM (SELECT owner_id, count(*) AS n FROM videos"
            " GROUP BY owner_id) AS c WHERE users.id = c.owner_id"
        )
        conn.execute("ANALYZE")
    return issue_tokens(url)


def issue_tokens(url: str) -> list[str]:
    """Fresh bearer tokens for the first `BENCH_USERS_WITH_TOKENS` seeded users (the old ones
    are deleted: `--no-seed` reuses the database, whose tokens were never printed)."""
    import psycopg

    from api.accounts.tokens import token_digest

    now = int(time.time() * 1000)
    tokens = [f"bench-token-{i:03d}-{os.urandom(8).hex()}" for i in range(BENCH_USERS_WITH_TOKENS)]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM tokens WHERE user_id LIKE 'u_bench%%'")
        for i, token in enumerate(tokens):
            conn.execute(
                "INSERT INTO tokens (token_hash, user_id, created_at, expires_at)"
                " VALUES (%s, %s, %s, %s)",
                (token_digest(token), f"u_bench{i:05d}", now, now + 86_400_000),
            )
    return tokens


def train_model(url: str, root: Path) -> dict[str, float]:
    """A For You model of the seeded log under `root` (the module doc); returns its sizes."""
    from sqlalchemy import create_engine
    from threadpoolctl import threadpool_limits

    from api.jobs.feedtrain import read_events
    from recsys import artifact
    from recsys.baselines import MostPopular
    from recsys.data import train_set
    from recsys.mf import IALS
    from recsys.signals import weighted_log

    started = time.monotonic()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    log = weighted_log(read_events(engine))
    engine.dispose()
    train = train_set(log, float(log.time.max()) + 1.0)
    with threadpool_limits(1, "blas"):
        ials = IALS(threads=os.cpu_count() or 1, **MODEL_SETTING)  # type: ignore[arg-type]
        ials.fit(train)
    popular = MostPopular(recent=True)
    popular.fit(train)
    artifact.save(
        root,
        users=log.users,
        items=log.items,
        user_factors=ials.user_factors,
        item_factors=ials.item_factors,
        popular=np.argsort(-popular.item_scores, kind="stable")[:1000],
        meta={"ials": MODEL_SETTING, "interactions": len(log)},
    )
    return {
        "viewers": float(len(log.users)),
        "videos": float(len(log.items)),
        "pairs": float(len(log)),
        "seconds": round(time.monotonic() - started, 1),
    }


def wait_ready(url: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"API did not answer {url} within {deadline_s} s")


def feed_sources(out: str) -> dict[str, int]:
    """The answers wrk's feed script (lua/auth_get.lua) counted, by `source` or status."""
    counts: dict[str, int] = {}
    for source, count in _SOURCE_LINE.findall(out):
        counts[source] = counts.get(source, 0) + int(count)
    return counts


def source_problems(
    sources: dict[str, list[dict[str, int]]], expected_sources: dict[str, str] | None = None
) -> list[str]:
    """Why a run's feed figures do not measure what their names say (empty: they do).

    Every timed run of a feed case must have counted answers, all with the case's one
    expected source (`EXPECTED_SOURCE` unless given)."""
    problems = []
    for case, expected in (expected_sources or EXPECTED_SOURCE).items():
        runs = sources.get(case, [])
        if not runs or any(not counts for counts in runs):
            problems.append(f"{case}: no answers were counted by source")
            continue
        others: dict[str, int] = {}
        for counts in runs:
            for source, count in counts.items():
                if source != expected:
                    others[source] = others.get(source, 0) + count
        if others:
            total = sum(sum(counts.values()) for counts in runs)
            listed = ", ".join(f"{n} {source}" for source, n in sorted(others.items()))
            problems.append(f"{case}: {listed} of {total} answers were not {expected!r}")
    return problems


def run_wrk(
    url: str, script: Path | None, env: dict[str, str], seconds: int, connections: int
) -> tuple[dict[str, float], dict[str, int]]:
    """wrk's figures, and the answers its script counted by feed `source` (none elsewhere)."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, env=env, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": rps,
        "p50_ms": _latency(out, "50%"),
        "p99_ms": _latency(out, "99%"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
        "requests": float(total.group(1)) if total else 0.0,
    }, feed_sources(out)


def _latency(out: str, label: str) -> float:
    match = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)", out)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--likes", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-seed", action="store_true", help="reuse the last seeded database")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where a valid run goes")
    parser.add_argument("--no-model", action="store_true", help="for-you without a model")
    parser.add_argument("--db", default=DB_NAME, help="the PostgreSQL database to (re)create")
    parser.add_argument("--redis-db", type=int, default=14, help="the Redis database to flush")
    args = parser.parse_args()
    expected = {**EXPECTED_SOURCE, FOR_YOU: "ranked" if args.no_model else "ranked+personal"}
    if shutil.which("wrk") is None:
        print("api_bench: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    db_url = f"postgresql://postgres@127.0.0.1:5432/{args.db}"
    started = time.monotonic()
    if args.no_seed:
        tokens = issue_tokens(db_url)
    else:
        tokens = seed(db_url, args.users, args.videos, args.likes, args.db)
    print(
        f"seeded {args.users} users, {args.videos} videos, {args.likes} likes in "
        f"{time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="reelforge-apibench-"))
    model: dict[str, float] | None = None
    if not args.no_model:
        model = train_model(db_url, data_dir / "feed-model")
        print(f"for-you model: {model}", file=sys.stderr)
    env = {
        **os.environ,
        "REELFORGE_MODE": "production",
        "REELFORGE_DATABASE_URL": db_url,
        "REELFORGE_REDIS_URL": f"redis://127.0.0.1:6379/{args.redis_db}",
        "REELFORGE_STORAGE": "local",
        "REELFORGE_SECRET_KEY": "bench-secret",
        "REELFORGE_DATA_DIR": str(data_dir),
        "REELFORGE_RATE_LIMIT_PER_MINUTE": "100000000",
        "REELFORGE_PORT": str(port),
        "BENCH_TOKENS": ",".join(tokens),
        "BENCH_VIDEOS": str(args.videos),
    }
    if model is not None:
        env["REELFORGE_FEED_MODEL_DIR"] = str(data_dir / "feed-model")
        env["REELFORGE_FEED_TRAIN_INTERVAL_SECONDS"] = "0"
    import redis

    redis.Redis.from_url(env["REELFORGE_REDIS_URL"]).flushdb()
    log = open(data_dir / "api.log", "w")  # noqa: SIM115 - closed below
    api = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    cases: dict[str, tuple[str, Path | None]] = {
        "healthz (ceiling)": (f"{base}/healthz", None),
        FOR_YOU: (f"{base}/v1/feed?type=for_you&limit=10", LUA / "auth_get.lua"),
        FOLLOWING: (f"{base}/v1/feed?type=following&limit=10", LUA / "auth_get.lua"),
        "POST /v1/videos/{id}/like": (base, LUA / "like.lua"),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    sources: dict[str, list[dict[str, int]]] = {name: [] for name in expected}
    try:
        wait_ready(f"{base}/readyz")
        for name, (url, script) in cases.items():  # warm caches and pools (not counted)
            # Personal: each viewer's first list is built on the request path (issue 17).
            warm = 6 if name == FOR_YOU and model is not None else 2
            run_wrk(url, script, env, warm, args.connections)
        order = list(cases)
        for round_no in range(args.rounds):
            for name in order if round_no % 2 == 0 else reversed(order):
                url, script = cases[name]
                figures, counts = run_wrk(url, script, env, args.seconds, args.connections)
                results[name].append(figures)
                if name in sources:
                    sources[name].append(counts)
    finally:
        api.terminate()
        api.wait(timeout=30)
        log.close()
    summary = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for name, runs in results.items()
    }
    ceiling = summary["healthz (ceiling)"]["rps"]
    print(
        f"\n| endpoint ({args.connections} connections, 1 API process) | req/s | p50 ms | p99 ms"
        " | non-2xx | of ceiling |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, s in summary.items():
        print(
            f"| {name} | {s['rps']:.0f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
            f"{s['errors']:.0f} | {s['rps'] / ceiling:.2f} |"
        )
    for case, runs in sources.items():
        print(f"{case}: answers by source, run by run: {runs}")
    shutil.rmtree(data_dir, ignore_errors=True)
    problems = source_problems(sources, expected)
    if problems:
        print("api_bench: run refused, nothing written:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    args.results.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "model": model,
                "median": summary,
                "runs": results,
                "sources": sources,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
