"""Hardening against bad input (issue 12): confined outputs, SERVICE refused, huge integers,
FIFOs, closed pipes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prov_tasks import Copy, make_inputs
from provgraph import File, ProvenanceStore, SpecError, Submitter, python, shell
from provgraph.exceptions import InputFileError, ProvenanceError
from provgraph.hashing import hash_value

Named = shell.define("cp <in_file:File> <name_as:str> <out|out_file:File={name_as}>", name="Named")


@pytest.mark.parametrize("name_as", ["../../escaped.txt", "a/../../x"])
def test_output_templates_stay_in_the_job_directory(
    tmp_path: Path, cache_dir: Path, name_as: str
) -> None:
    """An output template filled with a path leading out of the job fails, before the command
    runs, naming the field and the value; nothing is written outside."""
    (source,) = make_inputs(tmp_path / "in")[:1]
    before = set(tmp_path.rglob("*"))
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        result = sub(Named(in_file=source, name_as=name_as))
    (failure,) = result.errors
    assert failure.error_type == "SpecError"
    assert "'out_file'" in failure.message and repr(name_as) in failure.message
    assert not Path("/tmp/escaped-abs.txt").exists()
    escaped = [p for p in set(tmp_path.rglob("*")) - before if cache_dir not in p.parents]
    assert escaped == []
    assert not (failure.output_dir / "stdout.txt").exists()  # the command never ran


@shell.define
class TouchAs:
    executable = "touch"
    name_as: str = shell.arg(argstr=None)

    class Outputs:
        out_file: File = shell.outarg(argstr="", position=1, path_template="{name_as}")


def test_a_template_filled_with_an_absolute_path_stays_in_the_job(
    tmp_path: Path, cache_dir: Path
) -> None:
    """A template filled with an absolute path names the file by its last part, inside the
    job's directory (as Pydra does; issue 18): still nothing is written outside."""
    target = tmp_path / "outside" / "escaped-abs.txt"
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        made = sub(TouchAs(name_as=str(target))).outputs.out_file
    assert made.fspath.parent.parent == cache_dir and made.name == "escaped-abs.txt"
    assert not target.exists() and not target.parent.exists()


def test_output_glob_must_stay_inside() -> None:
    """A glob leading out of the job is refused when the task is defined."""
    with pytest.raises(SpecError, match="inside the job's directory"):
        shell.out(glob="../*.txt")


def test_sparql_service_is_refused_unless_allowed(tmp_path: Path, cache_dir: Path) -> None:
    """A federated query is refused with a clear error; allow_service=True lets it through."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Copy(in_file=make_inputs(tmp_path / "in")[0]))
    query = "SELECT * WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }"
    with pytest.raises(ProvenanceError, match="allow_service=True"):
        ProvenanceStore(cache_dir).query(query)
    harmless = 'SELECT ?r WHERE { ?r pg:taskName "SERVICE" } # SERVICE in a comment'
    assert list(ProvenanceStore(cache_dir).query(harmless)) == []
    with pytest.raises(ProvenanceError) as info:  # allowed: it goes out, and fails to connect
        ProvenanceStore(cache_dir, allow_service=True).query(query)
    assert "allow_service" not in str(info.value)


@pytest.mark.parametrize(
    "query",
    [
        r"PREFIX ex: <http://e/> SELECT * WHERE { BIND(ex:a\#b AS ?q) "
        r"SERVICE <http://127.0.0.1:9/x> { ?s ?p ?o } }",
        r"SELECT * WHERE { \u0053ERVICE <http://127.0.0.1:9/x> { ?s ?p ?o } }",
        r'SELECT * WHERE { ?s ?p "a\"b" . service silent <http://127.0.0.1:9/x> { ?s ?p ?o } }',
    ],
)
def test_disguised_service_is_refused(tmp_path: Path, query: str) -> None:
    """SERVICE hidden behind an escaped prefixed name, a codepoint escape or a quoted quote is
    still found and refused."""
    (tmp_path / "c").mkdir()
    with pytest.raises(ProvenanceError, match="allow_service=True"):
        ProvenanceStore(tmp_path / "c").query(query)


def test_a_variable_named_service_is_not_federation(tmp_path: Path) -> None:
    """?service and ex:service are not the SERVICE keyword."""
    (tmp_path / "c").mkdir()
    store = ProvenanceStore(tmp_path / "c")
    assert list(store.query("SELECT ?service WHERE { ?service pg:taskName 'x' }")) == []
    assert list(store.query("PREFIX ex: <http://e/> ASK { ?s ex:service ?o }")) == [False]


def test_a_huge_integer_hashes() -> None:
    """An integer beyond str()'s digit limit hashes (and stays distinct), never a ValueError."""
    assert hash_value(10**5000) != hash_value(10**5000 + 1)
    assert hash_value(10**5000) == hash_value(10**5000)


def test_a_fifo_given_as_a_file_says_what_it_is(tmp_path: Path, cache_dir: Path) -> None:
    """A named pipe where a file is expected: the error says it is a pipe, before any job."""

    @python.define
    def Size(in_file: File) -> int:
        return Path(in_file).stat().st_size

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with (
        pytest.raises(InputFileError, match="is a named pipe"),
        Submitter(cache_dir=cache_dir, progress=False) as sub,
    ):
        sub(Size(in_file=fifo))


def test_an_empty_path_is_no_file() -> None:
    """``""`` where a file is expected is refused as the empty text it is (before, it was taken
    for the current directory: "is a directory")."""

    @python.define
    def Size(in_file: File) -> int:
        return Path(in_file).stat().st_size

    with pytest.raises(SpecError, match=r"input 'in_file': got '' \(str\), expected File"):
        Size(in_file="")


def test_cli_output_into_a_closed_pipe_is_quiet(tmp_path: Path, cache_dir: Path) -> None:
    """``provgraph show CACHE | head -1`` ends without a traceback."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Copy().split(in_file=make_inputs(tmp_path / "in")))
    show = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provgraph.cli",
            "query",
            str(cache_dir),
            "SELECT ?s ?p ?o WHERE { ?s ?p ?o }",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert show.stdout is not None
    show.stdout.readline()
    show.stdout.close()  # the reader goes away, as head does
    _, err = show.communicate()
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
    assert show.returncode in (0, 141)
