"""The web app's start and swipe latency in a real Chromium, on loopback (issue 18).

    .venv/bin/python bench/webapp_timing.py [--loads 5] [--swipes 4] [--out FILE]

Starts `reelforge serve --demo --demo-seconds 6` (embedded, a fresh data dir under a temporary
folder) and waits until the demo has seeded its five creators' videos; then
`tests/player/webapp_timing.mjs` opens `/` LOADS times at a 390x844 viewport, each in a fresh
browser profile (cold HTTP cache), swipes through the feed, and loads the page once more in
that profile (warm cache). Printed (and written to
`--out` as JSON): page load → first video frame, and swipe → next video's first frame
(requestVideoFrameCallback), with the fragments the next video had loaded before each swipe.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PLAYER_DIR = ROOT / "tests" / "player"
# The bootstrap puts Node 20 into .venv where the system's is older (Debian 12: 18).
VENV_NODE = Path(sys.executable).parent / "node"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median_ms": statistics.median(ordered),
        "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "max_ms": ordered[-1],
    }


def measure(loads: int, swipes: int) -> dict[str, Any]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="reelforge-webapp-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_")}
        env.update(REELFORGE_DATA_DIR=str(Path(tmp) / "data"), REELFORGE_FEED_CACHE_SECONDS="1")
        log_path = Path(tmp) / "serve.log"
        argv = [sys.executable, "-m", "cli", "serve", "--port", str(port), "--demo"]
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [*argv, "--demo-seconds", "6"], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        try:
            deadline = time.monotonic() + 600
            while "demo: the web app" not in log_path.read_text():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log_path.read_text()[-4000:])
                time.sleep(1)
            time.sleep(2)  # the for-you snapshot picks the last video up
            command = [
                str(VENV_NODE) if VENV_NODE.exists() else "node",
                str(PLAYER_DIR / "webapp_timing.mjs"), "--base", f"http://127.0.0.1:{port}",
                "--loads", str(loads), "--swipes", str(swipes),
            ]  # fmt: skip
            done = subprocess.run(
                command, cwd=PLAYER_DIR, capture_output=True, text=True, check=True, timeout=600
            )
        finally:
            server.terminate()
            server.wait(timeout=60)
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "browser": raw["browserVersion"],
        "page_load_to_first_frame": _summary(raw["loads"]),
        "warm_page_load_to_first_frame": _summary(raw["warmLoads"]),
        "first_load_breakdown_ms": raw["breakdowns"][0],
        "swipe_to_first_frame": _summary([s["ms"] for s in raw["swipes"]]),
        "preloaded_fragments_min": min(s["preloadedFragments"] for s in raw["swipes"]),
        "raw": raw,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--swipes", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.loads, args.swipes)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "raw"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
