"""Benchmark the nginx edge in front of the origin (issue 4, "Speed"): cached segments per
second, origin requests per object under a cold herd, and time to first byte of a pre-warmed
first segment against a cold one.

    .venv/bin/python bench/edge_bench.py [--seconds 10 --rounds 15 --viewers 100]

What runs, all on this machine over loopback:
- the origin: `reelforge serve` (embedded mode) with `REELFORGE_EDGES` and `MEDIA_URL` naming
  the edge, and a real 1080x1920 source from `bench/make_source.py` uploaded and published
  through its API (the `prewarm_video` job then warms the edge, as in production);
- the edge: Debian's nginx with `reelforge edge-config`'s configuration (tests/support/edge.py),
  started after the origin.

Measures:
1. TTFB: a new connection's GET of the first segment of the lowest rendition (what a player
   starts with), from `connect()` to the first response byte. Cold: the video's entries
   purged from the edge (`NginxCachePurge`) and the origin's 2 s visibility cache expired, so
   the request goes edge → origin → storage. Warm: right after `EdgeJobs.prewarm` (the job's
   own code). Alternating, `--rounds` times each; medians.
2. Cold herd: the video purged again, then `--viewers` viewers at once, each on its own
   keep-alive connection fetching a player's start (master playlist, lowest rendition's
   playlist, init and first segment, the audio's): origin requests per object, counted in the
   edge's access log. Three rounds.
3. Cached throughput: `wrk` cycling over every segment of every rendition (all cached first),
   `--connections` connections for `--seconds`, three runs; req/s, MB/s, latency, and the
   share of cache hits in the edge's log.

Writes bench/edge_results.json and prints a Markdown table. Needs nginx and wrk (Debian).
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
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = Path(__file__).resolve().parent / "edge_results.json"
PATHS_LUA = Path(__file__).resolve().parent / "lua" / "paths.lua"
VISIBILITY_TTL_S = 2.2  # the origin's visibility cache (api/media/origin.py) is 2 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, deadline_s: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {deadline_s} s")


def ttfb(port: int, path: str) -> tuple[float, str, int]:
    """(ms from connect() to the first response byte, X-Cache-Status, body bytes) of one GET
    on a new connection."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request.encode())
        first = sock.recv(1)
        elapsed = (time.perf_counter() - started) * 1000
        chunks = [first]
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = re.search(rb"(?im)^x-cache-status:\s*(\S+)", head)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {path}: {head[:200]!r}")
    return elapsed, status.group(1).decode() if status else "", len(body)


def herd(port: int, paths: Sequence[str], viewers: int) -> list[float]:
    """`viewers` viewers released together, each fetching `paths` in order on one keep-alive
    connection; the seconds each took."""
    import httpx

    barrier = threading.Barrier(viewers)
    took: list[float] = []
    errors: list[str] = []

    def viewer() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            barrier.wait(60)
            started = time.perf_counter()
            for path in paths:
                response = client.get(path)
                if response.status_code != 200:
                    errors.append(f"{path}: {response.status_code}")
            took.append(time.perf_counter() - started)

    threads = [threading.Thread(target=viewer) for _ in range(viewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"herd errors: {errors[:5]}")
    return took


def run_wrk(url: str, paths: Sequence[str], seconds: int, connections: int) -> dict[str, float]:
    env = {**os.environ, "BENCH_PATHS": ",".join(paths)}
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    out = subprocess.run(
        [*cmd, "-s", str(PATHS_LUA), url], capture_output=True, text=True, env=env, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(KB|MB|GB)", out)
    scale = {"KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": rps,
        "mb_per_s": float(transfer.group(1)) * scale[transfer.group(2)] if transfer else 0.0,
        "p50_ms": _latency(out, "50%"),
        "p99_ms": _latency(out, "99%"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
        "requests": float(total.group(1)) if total else 0.0,
    }


def _latency(out: str, label: str) -> float:
    match = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", out)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def publish(origin: str, source: Path) -> dict[str, Any]:
    from tests.support.e2e import Flow

    with Flow(origin, timeout=300) as flow:
        creator = flow.register()
        video_id = flow.upload_direct(creator, source)
        flow.publish(creator, video_id, caption="edge bench")
        video = flow.wait_status(video_id, creator, deadline_s=900)
    if video["status"] != "published":
        raise RuntimeError(f"the bench video was not published: {video}")
    return dict(video)


def measure_ttfb(
    edge: Any, jobs: Any, video: dict[str, Any], edge_media: str, segment: str, rounds: int
) -> dict[str, Any]:
    """TTFB of `segment` right after a pre-warm and cold (purged), alternating."""
    from cdn.hooks import NginxCachePurge

    purge = NginxCachePurge([edge.cache_dir])
    cold, warm, size = [], [], 0
    ms, status, _ = ttfb(edge.port, segment)  # warmed by the publish-time job
    if status != "HIT":
        raise RuntimeError(f"the publish-time pre-warm left {segment} {status}")
    warm.append(ms)
    for _ in range(rounds):
        purge.purge(video["id"])
        time.sleep(VISIBILITY_TTL_S)
        ms, status, size = ttfb(edge.port, segment)
        if status != "MISS":
            raise RuntimeError(f"cold request was {status}")
        cold.append(ms)
        purge.purge(video["id"])
        time.sleep(VISIBILITY_TTL_S)
        fetched = jobs.prewarm(video["id"], edge_media)
        if not fetched or any(f.status != 200 for f in fetched):
            raise RuntimeError(f"pre-warm failed: {fetched}")
        ms, status, _ = ttfb(edge.port, segment)
        if status != "HIT":
            raise RuntimeError(f"pre-warmed request was {status}")
        warm.append(ms)
    return {
        "segment_bytes": size,
        "cold_ms": cold,
        "warm_ms": warm,
        "cold_median_ms": statistics.median(cold),
        "warm_median_ms": statistics.median(warm),
        "warm_p90_ms": sorted(warm)[int(0.9 * (len(warm) - 1))],
    }


def measure_herd(
    edge: Any, video_id: str, player_start: Sequence[str], viewers: int, rounds: int = 3
) -> list[dict[str, Any]]:
    """Origin requests per object when `viewers` start the (purged) video at once."""
    from cdn.hooks import NginxCachePurge

    herds = []
    for _ in range(rounds):
        NginxCachePurge([edge.cache_dir]).purge(video_id)
        time.sleep(VISIBILITY_TTL_S)
        edge.clear_log()
        took = herd(edge.port, player_start, viewers)
        to_origin = edge.origin_requests()
        per_object = Counter(e["uri"] for e in to_origin)
        full = Counter(e["uri"] for e in to_origin if e["upstream_status"] == "200")
        herds.append(
            {
                "viewers": viewers,
                "objects": len(player_start),
                "requests": len(edge.log()),
                "origin_requests": sum(per_object.values()),
                "origin_requests_per_object_max": max(per_object.values()),
                "origin_full_fetches_per_object_max": max(full.values()),
                "per_object": dict(per_object),
                "viewer_start_p50_ms": statistics.median(took) * 1000,
                "viewer_start_max_ms": max(took) * 1000,
            }
        )
    return herds


def measure_cached(
    edge: Any, segments: Sequence[str], seconds: int, connections: int, runs: int = 3
) -> dict[str, Any]:
    """wrk over `segments` once they are all cached; the share of hits from the edge's log."""
    sizes = [ttfb(edge.port, path)[2] for path in segments]  # fills the cache
    done = []
    for _ in range(runs):
        edge.clear_log()
        run = run_wrk(edge.url, segments, seconds, connections)
        entries = edge.log()
        run["hit_share"] = sum(e["cache"] == "HIT" for e in entries) / max(1, len(entries))
        done.append(run)
    return {
        "objects": len(segments),
        "mean_object_kb": statistics.mean(sizes) / 1024,
        "connections": connections,
        "runs": done,
        "median": {k: statistics.median(r[k] for r in done) for k in done[0]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-seconds", type=float, default=10.0)
    parser.add_argument("--seconds", type=int, default=10, help="each wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15, help="TTFB pairs")
    parser.add_argument("--viewers", type=int, default=100)
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").is_file():
            print(f"edge_bench: {tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 2

    from api.core.settings import Settings
    from api.jobs.edge import EdgeJobs
    from api.jobs.transcode import Runtime
    from bench.make_source import build_source
    from tests.support.edge import NginxEdge

    source = build_source(args.source_seconds)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="reelforge-edgebench-"))
    origin_port, edge_port = free_port(), free_port()
    edge_media = f"http://127.0.0.1:{edge_port}/media"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_")},
        "REELFORGE_DATA_DIR": str(work / "data"),
        "REELFORGE_MEDIA_URL": edge_media,
        "REELFORGE_EDGES": edge_media,
        "REELFORGE_RATE_LIMIT_PER_MINUTE": "100000000",
    }
    log = open(work / "origin.log", "w")  # noqa: SIM115 - closed below
    origin = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(origin_port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    origin_url = f"http://127.0.0.1:{origin_port}"
    edge = NginxEdge(work / "edge", origin_url, port=edge_port)
    results: dict[str, Any] = {}
    try:
        wait_ready(f"{origin_url}/readyz")
        edge.start()  # after the origin: refused connections are not collapsed
        started = time.monotonic()
        video = publish(origin_url, source)
        print(f"published {video['id']} in {time.monotonic() - started:.1f} s", file=sys.stderr)
        settings = Settings.from_env(env)
        runtime = Runtime(settings)
        jobs = EdgeJobs(settings, runtime)
        render_id = video["hls_url"].rsplit("/", 2)[-2]
        base = f"/media/{video['id']}/{render_id}/"
        plan = jobs.plan(video["id"], render_id).names
        first = base + next(n for n in plan if n.endswith("00001.m4s"))
        deadline = time.monotonic() + 60
        while not edge.origin_requests(first):  # the publish-time pre-warm job
            if time.monotonic() > deadline:
                raise RuntimeError("the publish-time pre-warm never reached the edge")
            time.sleep(0.2)

        ttfbs = measure_ttfb(edge, jobs, video, edge_media, first, args.rounds)
        results["ttfb"] = {"segment": first.removeprefix(base), "warmed_files": len(plan),
                           **ttfbs}  # fmt: skip
        print(f"TTFB cold {ttfbs['cold_median_ms']:.2f} ms, warm {ttfbs['warm_median_ms']:.2f}"
              " ms", file=sys.stderr)  # fmt: skip

        start = [base + n for n in plan if n not in ("manifest.mpd", "poster.jpg")]
        player_start = [p for p in start if "/audio/" not in p][:4] + [
            p for p in start if "/audio/" in p
        ]
        results["herd"] = measure_herd(edge, video["id"], player_start, args.viewers)
        print(f"herd: {[h['per_object'] for h in results['herd']]}", file=sys.stderr)

        names = sorted(_names(runtime, video["id"], render_id))
        segments = [base + n for n in names if n.endswith((".m4s", ".mp4"))]
        results["cached"] = measure_cached(edge, segments, args.seconds, args.connections)
    finally:
        edge.stop()
        origin.terminate()
        origin.wait(timeout=30)
        log.close()
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "nginx": _nginx_version(),
            # Other work on the machine meanwhile (1-minute load average, start and end).
            "load": [load_before, os.getloadavg()[0]],
        },
        "args": vars(args),
        **results,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _names(runtime: Any, video_id: str, render_id: str) -> list[str]:
    prefix = f"media/{video_id}/{render_id}/"
    return [info.key[len(prefix) :] for info in runtime.storage.list(prefix)]


def _nginx_version() -> str:
    done = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True, check=False)
    return done.stderr.strip().removeprefix("nginx version: ")


def table(results: dict[str, Any]) -> str:
    t, cached = results["ttfb"], results["cached"]["median"]
    herd_max = max(h["origin_requests_per_object_max"] for h in results["herd"])
    full_max = max(h["origin_full_fetches_per_object_max"] for h in results["herd"])
    herd = results["herd"][0]
    start_ms = statistics.median(h["viewer_start_p50_ms"] for h in results["herd"])
    rows = [
        "| through the nginx edge (loopback, this machine) | measured | target |",
        "|---|---:|---|",
        f"| cached segments, wrk {results['cached']['connections']} connections over "
        f"{results['cached']['objects']} objects (mean {results['cached']['mean_object_kb']:.0f} "
        f"KiB) | **{cached['rps']:,.0f} req/s** ({cached['mb_per_s']:,.0f} MiB/s, p50 "
        f"{cached['p50_ms']:.1f} ms, p99 {cached['p99_ms']:.1f} ms, "
        f"{cached['hit_share']:.1%} HIT) | ≥ 3,000 req/s |",
        f"| cold herd: {herd['viewers']} viewers × {herd['objects']} objects of a player's "
        f"start | **{herd_max} origin request(s) per object** (full fetches ≤ {full_max}; "
        f"a viewer's start p50 {start_ms:.0f} ms, median of {len(results['herd'])} herds) | 1 |",
        f"| TTFB of the first segment ({t['segment']}, {t['segment_bytes'] / 1024:.0f} KiB), "
        f"pre-warmed | **{t['warm_median_ms']:.2f} ms** median (p90 {t['warm_p90_ms']:.2f} ms) "
        "| ≤ 5 ms |",
        f"| TTFB of the same segment, cold (edge → origin → storage) | "
        f"{t['cold_median_ms']:.2f} ms median | for comparison |",
    ]
    load = results["machine"]["load"]
    rows.append(f"\n{results['machine']['cpus']} CPUs, {results['machine']['nginx']}, "
                f"load average {load[0]:.1f} → {load[1]:.1f} while it ran.")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
