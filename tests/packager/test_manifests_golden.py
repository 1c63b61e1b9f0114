"""write_manifests on hand-built tracks, compared byte for byte with golden files.

These golden files were written by the packager itself: they catch unintended changes to its
output, not errors it always made (tests/packager/test_manifests_by_hand.py compares it with
manifests written by hand from RFC 8216 and ISO/IEC 23009-1). The test never rewrites them;
after an intended change, `python -m tests.packager.regenerate_golden` does, and the diff is
reviewed like code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from packager.manifests import write_manifests
from tests.packager.tracks import CASES

GOLDEN = Path(__file__).parents[1] / "resources" / "manifests"


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("case", CASES)
def test_manifests_match_golden_files(tmp_path: Path, case: str) -> None:
    video_tracks, audio = CASES[case]
    write_manifests(tmp_path, video_tracks, audio)
    assert tree(tmp_path) == tree(GOLDEN / case)


@pytest.mark.parametrize("case", CASES)
def test_rendering_is_deterministic_and_order_independent(tmp_path: Path, case: str) -> None:
    video_tracks, audio = CASES[case]
    write_manifests(tmp_path / "a", video_tracks, audio)
    write_manifests(tmp_path / "b", list(reversed(video_tracks)), audio)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
