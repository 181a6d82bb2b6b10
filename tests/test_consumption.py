"""What a job consumed and ran (issue 13, item 7): CPU time, peak memory, exit code, and the
executable of a shell command, recorded on each job run."""

from __future__ import annotations

import shutil
from pathlib import Path

from provgraph import ProvenanceStore, Submitter, python, shell
from provgraph.hashing import file_content_digest

Fail = shell.define("sh -c <script:str>", name="Fail")
_USAGE = ("cpuUserTime", "cpuSystemTime", "peakMemory")


@python.define
def Burn(n: int) -> int:
    """Uses some CPU and about 50 MB for a moment."""
    block = bytearray(50 * 1024 * 1024)
    total = 0
    for i in range(n):
        total += i * i
    return total + len(block) % 7


def _one(store: ProvenanceStore, task: str, *props: str) -> list[object]:
    fields = " ".join(f"?{p}" for p in props)
    where = " ".join(f"OPTIONAL {{ ?r pg:{p} ?{p} }}" for p in props)
    rows = list(
        store.query(
            f"SELECT {fields} WHERE {{ ?r a pg:JobRun ; pg:taskName ?t . {where} }}",
            t=__import__("rdflib").Literal(task),
        )
    )
    assert len(rows) == 1, rows
    return [None if v is None else v.toPython() for v in rows[0]]


def test_cpu_and_memory_of_a_python_job(cache_dir: Path) -> None:
    """A Python job records the CPU seconds it used and a peak memory above what it held."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Burn(n=2_000_000))
    user, system, peak = _one(ProvenanceStore(cache_dir), "Burn", *_USAGE)
    assert isinstance(user, float) and user > 0 and isinstance(system, float) and system >= 0
    assert isinstance(peak, int) and peak >= 50 * 1024 * 1024


def test_exit_code_and_executable_of_shell_jobs(cache_dir: Path) -> None:
    """A shell job records its command's exit code (success and failure) and the program it
    ran, by resolved path and content hash."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        ok = sub(Fail(script="exit 0"))
        bad = sub(Fail(script="exit 7"))
    assert not ok.errored and bad.errored
    store = ProvenanceStore(cache_dir)
    codes = sorted(
        int(c) for (c,) in store.query("SELECT ?c WHERE { ?r a pg:JobRun ; pg:exitCode ?c }")
    )
    assert codes == [0, 7]
    sh = Path(shutil.which("sh") or "/bin/sh").resolve()
    rows = set(
        store.query(
            "SELECT DISTINCT ?where ?hash WHERE { ?r pg:executable ?e . "
            "?e a pg:Executable ; prov:atLocation ?where ; pg:contentHash ?hash }"
        )
    )
    assert {(str(w), str(h)) for w, h in rows} == {
        (sh.as_uri(), "xxh3-128:" + file_content_digest(sh).hex())
    }
