"""write_manifests on hand-built tracks, compared byte for byte with golden files.

Set REELFORGE_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, then
review the diff like code.
"""

from __future__ import annotations

import os
import shutil
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
    if os.environ.get("REELFORGE_UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN / case, ignore_errors=True)
        shutil.copytree(tmp_path, GOLDEN / case)
    assert tree(tmp_path) == tree(GOLDEN / case)


@pytest.mark.parametrize("case", CASES)
def test_rendering_is_deterministic_and_order_independent(tmp_path: Path, case: str) -> None:
    video_tracks, audio = CASES[case]
    write_manifests(tmp_path / "a", video_tracks, audio)
    write_manifests(tmp_path / "b", list(reversed(video_tracks)), audio)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
