"""Task definitions shared by the crash tests and the child processes they start."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from provgraph import python, workflow


@python.define
def Slow(x: int, marks: str, pause: float = 0.05) -> int:
    """Marks its start; hangs on x == 3 while ``marks/hang`` exists; logs its completion."""
    folder = Path(marks)
    (folder / f"started-{x}").touch()
    while x == 3 and (folder / "hang").exists():
        time.sleep(0.05)
    time.sleep(pause)
    with open(folder / "done.log", "a") as fh:
        fh.write(f"{x} {os.getpid()}\n")
    return x * 10


@python.define
def Suicidal(x: int, marks: str, always: bool = False) -> int:
    """On x == 2, kills its own process: once (leaving a mark), or every time."""
    mark = Path(marks) / f"killed-{x}"
    if x == 2 and (always or not mark.exists()):
        mark.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return x + 1


@python.define
def Doomed(x: int, marks: str) -> int:
    """On an ``x`` listed in ``marks/kills.txt``, once (leaving a mark), kills its whole process
    group: the submitter and every pool process, wherever each of them is. (The list is read
    from a file so that which jobs die is not part of their hash.)"""
    listed = Path(marks) / "kills.txt"
    kills = listed.read_text().split() if listed.exists() else []
    mark = Path(marks) / f"killed-{x}"
    if str(x) in kills and not mark.exists():
        mark.touch()
        os.killpg(os.getpgid(0), signal.SIGKILL)
    return x * 2


@python.define
def Add(values: list[int]) -> int:
    return sum(values)


@workflow.define
def DoomedSum(xs: list[int], marks: str) -> int:
    """A split of Doomed jobs inside a workflow, summed."""
    doomed = workflow.add(Doomed(marks=marks).split(x=xs).combine("x"), name="doomed")
    return workflow.add(Add(values=doomed.out), name="add").out


@python.define
def Sleepy(x: int, marks: str) -> int:
    """Writes its pid, then sleeps long enough to be interrupted."""
    (Path(marks) / f"pid-{x}").write_text(str(os.getpid()))
    if not (Path(marks) / "quick").exists():
        time.sleep(30)
    return x


class Odd(BaseException):
    """Neither an Exception nor an interrupt (as some libraries raise)."""


@python.define
def OddOne(x: int) -> int:
    if x == 2:
        raise Odd("odd")
    return x
