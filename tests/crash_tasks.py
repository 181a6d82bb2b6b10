"""Task definitions shared by the crash tests and the child processes they start."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from provgraph import python


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
