"""A working directory of its own for each thread that runs Python tasks.

A Python task runs with its job's directory as the current directory (``os.chdir``), which
is the process's: two threads running tasks at once (serial submissions started from a thread
pool, a Dask worker's threads) would move each other, and a task would write its relative files
into another job's directory. On Linux a thread can stop sharing its working directory with
the others (``unshare(CLONE_FS)``): :func:`for_task` does that once for each thread but the
main one, before its first task. The thread starts in the directory the
process was in, and keeps a directory of its own from then on (a later ``os.chdir`` of the
main thread does not move it). The main thread keeps the process's directory, as before.

Where a thread cannot have one (another system, or a sandbox that forbids ``unshare``), a
warning says so, once, the first time two threads run tasks at once.
"""

from __future__ import annotations

import os
import sys
import threading

__all__ = ["for_task"]

_CLONE_FS = 0x200  # (linux/sched.h; os.CLONE_FS from Python 3.12)
_state = threading.local()  # .private: whether this thread has a working directory of its own
_lock = threading.Lock()
_shared = False  # a thread but the main one could not have its own: count, and warn
_running = 0  # ... tasks running now in the process's own directory
_warned = False


class _Nothing:
    """The main thread's, or a thread's with a directory of its own: nothing to do."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NOTHING = _Nothing()


class _Counted:
    """A task running in the process's own directory where some thread could not have one of
    its own: the tasks running so are counted, and a warning says it once when two are."""

    def __enter__(self) -> None:
        global _running, _warned
        with _lock:
            _running += 1
            clash = _running > 1 and not _warned
            _warned = _warned or clash
        if clash:
            print(
                "provgraph: warning: Python tasks are running in several threads at once and "
                "this system gives a thread no working directory of its own: a task's relative "
                "files may land in another job's directory (run serial submissions from one "
                "thread at a time, or use the cf worker)",
                file=sys.stderr,
            )

    def __exit__(self, *exc: object) -> None:
        global _running
        with _lock:
            _running -= 1


def for_task() -> _Nothing | _Counted:
    """To hold while a Python task runs in its job's directory: the calling thread (but the
    main one) first has a working directory of its own, if it can."""
    global _shared
    if threading.current_thread() is not threading.main_thread():
        private = getattr(_state, "private", None)
        if private is None:
            private = _state.private = _unshare_fs()
            if not private:
                _shared = True
        if private:
            return _NOTHING
    return _Counted() if _shared else _NOTHING


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
