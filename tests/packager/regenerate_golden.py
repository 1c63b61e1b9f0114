"""Rewrite tests/resources/manifests/ from the packager's current output (never run by a test).

    PYTHONPATH=. .venv/bin/python -m tests.packager.regenerate_golden

Run it only after an intended change to the manifests, then review `git diff` like code:
these files record what the packager wrote, so regenerating them makes the golden test pass
whatever the change did. tests/resources/manifests_by_hand/ is written by hand and never
regenerated.
"""

from __future__ import annotations

import shutil
import sys

from packager.manifests import write_manifests
from tests.packager.test_manifests_golden import GOLDEN
from tests.packager.tracks import CASES


def main() -> int:
    for case, (video_tracks, audio) in CASES.items():
        shutil.rmtree(GOLDEN / case, ignore_errors=True)
        write_manifests(GOLDEN / case, video_tracks, audio)
        print(f"rewrote {GOLDEN / case}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
