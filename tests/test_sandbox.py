"""The bounded child process that every job runs in."""

from __future__ import annotations

import time

import numpy as np
import pytest

from engine.errors import EngineError, NotMediaError, ResourceLimitError
from engine.sandbox import run_limited

GIB = 1024**3


def sleeper(seconds: float, progress=None) -> str:
    time.sleep(seconds)
    return "woke"


def hog(gib: int, progress=None) -> int:
    block = np.ones(gib * GIB // 8)
    return int(block.sum())


def rejecter(progress=None) -> None:
    raise NotMediaError("not a media file: test")


def reporter(progress=None) -> str:
    for step in range(5):
        progress(step / 4)
        time.sleep(0.05)
    return "done"


def crasher(progress=None) -> None:
    import os

    os._exit(3)


def test_result_comes_back() -> None:
    assert run_limited(sleeper, 0.01, wall_seconds=30, memory_bytes=2 * GIB) == "woke"


def test_wall_time_is_bounded() -> None:
    started = time.monotonic()
    with pytest.raises(ResourceLimitError, match="longer than"):
        run_limited(sleeper, 60, wall_seconds=2, memory_bytes=2 * GIB)
    assert time.monotonic() - started < 20


def test_memory_is_bounded() -> None:
    with pytest.raises(ResourceLimitError, match="memory"):
        run_limited(hog, 4, wall_seconds=60, memory_bytes=1 * GIB)


def test_rejections_keep_their_class() -> None:
    with pytest.raises(NotMediaError, match="test"):
        run_limited(rejecter, wall_seconds=30, memory_bytes=2 * GIB)


def test_progress_reaches_the_parent() -> None:
    seen: list[float] = []
    assert run_limited(reporter, wall_seconds=30, memory_bytes=2 * GIB, progress=seen.append)
    assert seen and seen[-1] <= 1.0


def test_a_dead_child_is_our_failure() -> None:
    with pytest.raises(EngineError, match="died"):
        run_limited(crasher, wall_seconds=30, memory_bytes=2 * GIB)


def segfaulter(progress=None) -> None:
    import ctypes

    ctypes.string_at(0)  # what a library does with the null pointer of a failed malloc


def test_a_crash_under_a_memory_limit_is_out_of_memory() -> None:
    """A child killed by SIGSEGV while under RLIMIT_AS (how an unchecked failed allocation
    ends: seen in a fresh Debian root, where test_cli's memory budget died so) is the
    memory rejection, naming the signal; without a limit it stays our own failure."""
    with pytest.raises(ResourceLimitError, match=r"more memory.*SIGSEGV under the 2048 MiB"):
        run_limited(segfaulter, wall_seconds=30, memory_bytes=2 * GIB)
    with pytest.raises(EngineError, match="died without an answer") as raised:
        run_limited(segfaulter, wall_seconds=30, memory_bytes=0)
    assert not isinstance(raised.value, ResourceLimitError)


class _LateFirstLook:
    """The parent's end of the pipe, whose first look comes back empty only after the child
    had time to answer and exit: the order a busy parent thread can meet."""

    def __init__(self, conn: object) -> None:
        self._conn = conn
        self._first = True

    def poll(self, timeout: float = 0.0) -> bool:
        if self._first:
            self._first = False
            time.sleep(3.0)
            return False
        return bool(self._conn.poll(timeout))  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


class _Context:
    def __init__(self, real: object) -> None:
        self._real = real

    def Pipe(self, duplex: bool = True) -> tuple[object, object]:
        parent, child = self._real.Pipe(duplex=duplex)  # type: ignore[attr-defined]
        return _LateFirstLook(parent), child

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


def test_an_answer_sent_just_before_the_child_exits_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The child answered and exited between the parent's look at the pipe and its look at the
    child: the answer is still in the pipe and is returned (it was reported as a child that
    died without an answer)."""
    import engine.sandbox as sandbox

    real = sandbox.mp.get_context
    monkeypatch.setattr(sandbox.mp, "get_context", lambda method: _Context(real(method)))
    assert run_limited(sleeper, 0.01, wall_seconds=30, memory_bytes=2 * GIB) == "woke"
