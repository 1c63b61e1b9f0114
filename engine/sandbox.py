"""Run a job in a child process with a wall-clock and memory budget.

Untrusted media is hostile input: a file crafted to make a decoder spin or allocate without
end must cost a bounded amount of time and memory and never take the worker down. The child
gets an address-space limit (RLIMIT_AS); the parent kills it when the deadline passes.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import pickle
import queue
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import av.error

from engine.errors import EngineError, ResourceLimitError

ProgressFn = Callable[[float], None]
OUT_OF_MEMORY = "processing needed more memory than the policy allows"


MEMORY_WORDS = ("Cannot allocate memory", "failed to map segment", "std::bad_alloc")


def out_of_memory(exc: BaseException | None) -> bool:
    """True when `exc` or anything in its chain is an allocation failure, however it surfaced
    (MemoryError, ENOMEM from FFmpeg or the OS, a shared library that could not be mapped)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (MemoryError, av.error.MemoryError)):
            return True
        if getattr(exc, "errno", None) == errno.ENOMEM:
            return True
        if any(word in str(exc) for word in MEMORY_WORDS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


# Signals a child dies of when an allocation failed in a library that does not check for it
# (a null pointer used, an abort(3) on a failed new/malloc): under RLIMIT_AS they are how
# "out of memory" looks from outside when no Python exception could be raised.
CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT)


def died_without_answer(exitcode: int | None, memory_bytes: int) -> EngineError:
    """The error for a child that died without answering: out of memory when it was killed by
    a crash signal under a memory limit (seen: SIGSEGV in a fresh Debian root where the
    same job elsewhere ends in MemoryError), our own failure otherwise."""
    if exitcode is not None and exitcode < 0 and -exitcode in CRASH_SIGNALS and memory_bytes:
        name = signal.Signals(-exitcode).name
        return ResourceLimitError(
            f"{OUT_OF_MEMORY} (its process crashed with {name} under the "
            f"{memory_bytes / 2**20:.0f} MiB limit)"
        )
    return EngineError(f"the job's process died without an answer (exit {exitcode})")


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux prctl(2)
    PR_SET_PDEATHSIG), so a worker killed with -9 leaves no orphan encoder behind.

    The signal is armed for the death of the thread that forked us: `run_limited` waits in
    that thread for the whole job. A parent that died before the call is caught by comparing
    `os.getppid()` with `parent_pid` afterwards. Elsewhere than Linux this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os._exit(1)


def _child(
    target: Callable[..., Any],
    args: tuple[Any, ...],
    memory_bytes: int,
    conn: Any,
    progress: Any,
    parent_pid: int = 0,
) -> None:
    if parent_pid:
        die_with_parent(parent_pid)
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        result = target(*args, progress=progress.put_nowait if progress is not None else None)
        message: tuple[str, Any] = ("ok", result)
    except BaseException as exc:  # everything is reported to the parent, which re-raises it
        message = ("err", ResourceLimitError(OUT_OF_MEMORY) if out_of_memory(exc) else exc)
    try:
        conn.send(message)
    except (pickle.PicklingError, TypeError, AttributeError):
        conn.send(("err", EngineError(f"{type(message[1]).__name__}: {message[1]}")))
    conn.close()


def os_thread_count() -> int:
    """Threads of this process as the kernel sees them: native ones (decoders, encoders,
    BLAS) included, which `threading.active_count()` does not count."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 2  # unknown: assume threads


def start_method() -> str:
    """`fork` from a single-threaded parent (the CLI: no re-import, ~0.3 s saved per job);
    `spawn` wherever any thread runs (API and worker processes, a test run that encoded in
    process), as a fork can inherit a lock another thread holds and hang."""
    if sys.platform == "linux" and os_thread_count() == 1:
        return "fork"
    return "spawn"


def run_limited(
    target: Callable[..., Any],
    *args: Any,
    wall_seconds: float,
    memory_bytes: int,
    progress: ProgressFn | None = None,
) -> Any:
    """Call `target(*args, progress=...)` in a spawned child and return its result.

    Raises what the child raised; `ResourceLimitError` when it ran past `wall_seconds` or out
    of memory; `EngineError` when it died without an answer.
    """
    ctx: Any = mp.get_context(start_method())
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    progress_queue = ctx.Queue() if progress is not None else None
    env_arena = os.environ.get("MALLOC_ARENA_MAX")
    os.environ["MALLOC_ARENA_MAX"] = "2"  # glibc arenas reserve address space per thread
    try:
        process = ctx.Process(
            target=_child,
            args=(target, args, memory_bytes, child_conn, progress_queue, os.getpid()),
            daemon=True,
        )
        process.start()
    finally:
        if env_arena is None:
            os.environ.pop("MALLOC_ARENA_MAX", None)
        else:
            os.environ["MALLOC_ARENA_MAX"] = env_arena
    child_conn.close()
    deadline = time.monotonic() + wall_seconds
    try:
        while True:
            if progress_queue is not None and progress is not None:
                _drain(progress_queue, progress)
            if parent_conn.poll(0.1):
                try:
                    status, value = parent_conn.recv()
                except EOFError:
                    break
                process.join(5)
                if progress_queue is not None and progress is not None:
                    _drain(progress_queue, progress)
                if status == "ok":
                    return value
                raise value
            if not process.is_alive():
                if parent_conn.poll(0):  # it answered and exited between the two looks
                    continue
                break
            if time.monotonic() > deadline:
                raise ResourceLimitError(
                    f"processing took longer than the policy allows ({wall_seconds:g} s)"
                )
        process.join(1)
        raise died_without_answer(process.exitcode, memory_bytes)
    finally:
        if process.is_alive():
            process.kill()
            process.join()
        parent_conn.close()


def _drain(progress_queue: Any, progress: ProgressFn) -> None:
    latest = None
    while True:
        try:
            latest = progress_queue.get_nowait()
        except queue.Empty:
            break
    if latest is not None:
        progress(latest)
