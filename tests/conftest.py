"""Session fixtures: the real media (tests/media), generated clips, and transcoded outputs (made
once)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.clips import GENERATED
from tests.support.servers import stop_throwaway_servers

ROOT = Path(__file__).resolve().parent.parent
# The real clips, inside the repository with a provenance and licence note per file (issue 18).
MEDIA = ROOT / "tests" / "media"
MEDIA_NOTES = frozenset({"README.md", "LICENSE-MPL-2.0.txt"})
REELFORGE = [sys.executable, "-m", "cli"]


def media_files() -> list[str]:
    """Every real clip in tests/media (the suite fails, not skips, when one is missing)."""
    if not MEDIA.is_dir():
        return ["<missing tests/media>"]
    return sorted(p.name for p in MEDIA.iterdir() if p.name not in MEDIA_NOTES and p.is_file())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The PostgreSQL/Redis this session started for itself go with it (tests/support/servers)."""
    stop_throwaway_servers()


@dataclass
class JobResult:
    returncode: int
    stdout: str
    stderr: str
    outdir: Path

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.outdir / "report.json").read_text())
        return data


def run_reelforge(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REELFORGE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


@pytest.fixture(scope="session")
def media() -> Path:
    """tests/media: the real clips."""
    assert MEDIA.is_dir(), f"real test media missing: {MEDIA}"
    return MEDIA


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def generated(clip_dir: Path) -> Callable[[str], Path]:
    def build(name: str) -> Path:
        return GENERATED[name].build(clip_dir)

    return build


@pytest.fixture(scope="session")
def transcoded(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], JobResult]:
    """`reelforge transcode SOURCE OUTDIR --json`, run once per source per session."""
    root = tmp_path_factory.mktemp("outputs")
    cache: dict[Path, JobResult] = {}

    def run(source: Path) -> JobResult:
        if source not in cache:
            outdir = root / f"{len(cache):02d}-{source.stem}"
            proc = run_reelforge("transcode", str(source), str(outdir), "--json")
            cache[source] = JobResult(proc.returncode, proc.stdout, proc.stderr, outdir)
        return cache[source]

    return run
