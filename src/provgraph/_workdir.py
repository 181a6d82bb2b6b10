"""A Python task's working directory: its job's, in the thread that runs it.

A Python task runs with its job's directory as the current directory (``os.chdir``), which
is the process's: two threads running tasks at once (serial submissions started from a thread
pool, a Dask worker's threads) would move each other, and a task would write its relative files
into another job's directory. On Linux a thread can stop sharing its working directory with
the others (``unshare(CLONE_FS)``): :class:`in_job_directory` does that once for each thread
but the main one, before its first task. The thread starts in the process's directory (the one
the main thread is in outside its tasks, even while one of them runs), and keeps a directory of
its own from then on: a later ``os.chdir`` of the main thread does not move it. The main thread
keeps the process's directory, as before.

Where a thread cannot have one (another system, or a sandbox that forbids ``unshare``), tasks
run in the process's directory, and a warning says so, once, the first time tasks of two
threads run at once (nested submissions in one thread are one thread).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

__all__ = ["in_job_directory"]

_CLONE_FS = 0x200  # (linux/sched.h; os.CLONE_FS from Python 3.12)
_state = threading.local()  # .private: whether this thread has a working directory of its own
_lock = threading.Lock()  # held while the process's directory changes, and while a thread leaves it
_inside: dict[int, int] = {}  # thread -> how many of its tasks run in the process's directory
_home = ""  # the process's directory before the outermost of those tasks
_warned = False


class in_job_directory:  # (a context manager, named as the function it stands for)
    """While a Python task runs: the calling thread's working directory is ``target``, and the
    one it was in is given back afterwards."""

    __slots__ = ("_previous", "_shared", "_target")

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self._target = target
        self._previous = ""
        self._shared = True

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread() and _private():
            self._shared = False
            self._previous = os.getcwd()
            os.chdir(self._target)
            return
        global _home, _warned
        me = threading.get_ident()
        with _lock:
            self._previous = os.getcwd()
            if not _inside:
                _home = self._previous
            _inside[me] = _inside.get(me, 0) + 1
            clash = len(_inside) > 1 and not _warned
            _warned = _warned or clash
            try:
                os.chdir(self._target)
            except BaseException:
                _leave(me)
                raise
        if clash:
            print(
                "provgraph: warning: Python tasks are running in several threads at once and "
                "this system gives a thread no working directory of its own: a task's relative "
                "files may land in another job's directory (run serial submissions from one "
                "thread at a time, or use the cf worker)",
                file=sys.stderr,
            )

    def __exit__(self, *exc: object) -> None:
        if not self._shared:
            os.chdir(self._previous)
            return
        with _lock:
            try:
                os.chdir(self._previous)
            finally:
                _leave(threading.get_ident())


def _leave(me: int) -> None:
    depth = _inside[me] - 1
    if depth:
        _inside[me] = depth
    else:
        del _inside[me]


def _private() -> bool:
    """Whether the calling thread has a working directory of its own (made on its first
    task): a copy of the process's, taken while no task is moving it, or put back where the
    process was when a task of another thread is running there."""
    found: bool | None = getattr(_state, "private", None)
    if found is None:
        with _lock:
            found = _state.private = _unshare_fs()
            if found and _inside:  # (the copy is a running task's job directory)
                with contextlib.suppress(OSError):  # (gone meanwhile: its tasks will say so)
                    os.chdir(_home)
    return found


def _unshare_fs() -> bool:
    """Stop sharing the working directory with the process's other threads (Linux)."""
    if sys.platform != "linux":
        return False
    try:
        unshare = getattr(os, "unshare", None)
        if unshare is not None:
            unshare(getattr(os, "CLONE_FS", _CLONE_FS))
            return True
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.unshare(_CLONE_FS) == 0)
    except (OSError, AttributeError):
        return False
