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
# The main thread's tasks, written by the main thread alone (no lock on its path: every job of a
# serial submission takes it): how deep it is in tasks, the process's directory before the
# outermost, and a count made odd while it moves the directory (read by a thread leaving it)
_main_depth = 0
_home = ""
_moves = 0
# tasks of other threads in the process's directory (no directory of their own), by thread
_lock = threading.Lock()
_inside: dict[int, int] = {}
_warned = False


class in_job_directory:  # (a context manager, named as the function it stands for)
    """While a Python task runs: the calling thread's working directory is ``target``, and the
    one it was in is given back afterwards."""

    __slots__ = ("_main", "_previous", "_shared", "_target")

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self._target = target
        self._previous = ""
        self._main = self._shared = False

    def __enter__(self) -> None:
        global _main_depth, _home, _moves
        if threading.current_thread() is threading.main_thread():
            self._main = True
            self._previous = previous = os.getcwd()
            if not _main_depth:
                _home = previous
            _moves += 1
            _main_depth += 1
            try:
                os.chdir(self._target)
            except BaseException:
                _main_depth -= 1
                raise
            finally:
                _moves += 1
            if _inside:
                _clash()
            return
        if _private():
            self._previous = os.getcwd()
            os.chdir(self._target)
            return
        self._shared = True
        me = threading.get_ident()
        with _lock:
            self._previous = os.getcwd()
            _inside[me] = _inside.get(me, 0) + 1
            clash = len(_inside) > 1 or _main_depth > 0
            try:
                os.chdir(self._target)
            except BaseException:
                _leave(me)
                raise
        if clash:
            _clash()

    def __exit__(self, *exc: object) -> None:
        global _main_depth, _moves
        if self._main:
            _moves += 1
            try:
                os.chdir(self._previous)
            finally:
                _main_depth -= 1
                _moves += 1
        elif self._shared:
            with _lock:
                try:
                    os.chdir(self._previous)
                finally:
                    _leave(threading.get_ident())
        else:
            os.chdir(self._previous)


def _leave(me: int) -> None:
    depth = _inside[me] - 1
    if depth:
        _inside[me] = depth
    else:
        del _inside[me]


def _clash() -> None:
    """Tasks of two threads run in the process's directory at once: said once."""
    global _warned
    with _lock:
        said, _warned = _warned, True
    if not said:
        print(
            "provgraph: warning: Python tasks are running in several threads at once and "
            "this system gives a thread no working directory of its own: a task's relative "
            "files may land in another job's directory (run serial submissions from one "
            "thread at a time, or use the cf worker)",
            file=sys.stderr,
        )


def _private() -> bool:
    """Whether the calling thread (not the main one) has a working directory of its own, made
    on its first task: a copy of the process's, put back where the process was when the copy
    may be a task's job directory (the main thread was in a task, or moving, meanwhile)."""
    found: bool | None = getattr(_state, "private", None)
    if found is None:
        before = _moves
        found = _state.private = _unshare_fs()
        if found and (before != _moves or before % 2 or _main_depth):
            with contextlib.suppress(OSError):  # (gone meanwhile: its tasks will say so)
                os.chdir(_home)
    return found


def _forget_in_child() -> None:
    """A forked process starts with one thread, in no task (whatever its parent was doing)."""
    global _main_depth, _moves, _warned, _lock
    _main_depth = _moves = 0
    _inside.clear()
    _warned = False
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


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
