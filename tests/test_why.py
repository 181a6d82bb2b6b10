"""``why``: what made a job run instead of being reused."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prov_tasks import CountWords, Total
from provgraph import File, ProvenanceStore, Submitter, python, workflow


@python.define
def Scale(x: float, factor: float = 2.0) -> float:
    return x * factor


def test_one_changed_value_is_named(cache_dir: Path) -> None:
    """After one element's value changes, why names that input with old and new values."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Scale().split(x=[1.0, 2.0, 3.0]))
        changed = sub(Scale().split(x=[1.0, 2.5, 3.0]))
    store = ProvenanceStore(cache_dir)
    explanation = store.why(changed.job_dirs[1].name)
    assert explanation.earlier is not None and not explanation.definition_changed
    assert set(explanation.inputs) == {"x"}
    old, new = explanation.inputs["x"]
    assert old is not None and new is not None
    assert (old["value"], new["value"]) == ("2.0", "2.5")
    assert "input 'x' changed: 2.0" in explanation.text() and "-> 2.5" in explanation.text()


def _module(path: Path, body: str) -> object:
    path.write_text("from provgraph import python\n\n@python.define\n" + textwrap.dedent(body))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_changed_definition_is_named_with_a_diff(tmp_path: Path, cache_dir: Path) -> None:
    """After a source edit, why says the definition changed and shows the diff."""
    v1 = _module(tmp_path / "v1.py", "def Func(a: int) -> int:\n    return a + 1\n")
    v2 = _module(tmp_path / "v2.py", "def Func(a: int) -> int:\n    return a + 100\n")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(v1.Func(a=1))  # type: ignore[attr-defined]
        second = sub(v2.Func(a=1))  # type: ignore[attr-defined]
    explanation = ProvenanceStore(cache_dir).why(second.output_dir.name)
    assert explanation.definition_changed and explanation.inputs == {}
    assert "-    return a + 1" in explanation.source_diff
    assert "+    return a + 100" in explanation.source_diff


def test_new_task_has_no_earlier_run(cache_dir: Path) -> None:
    """A task never run before: 'no earlier run', also from the command line."""
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        result = sub(Scale(x=1.0))
    explanation = ProvenanceStore(cache_dir).why(result.output_dir.name)
    assert explanation.earlier is None and "no earlier run" in explanation.text()
    out = subprocess.run(
        [sys.executable, "-m", "provgraph.cli", "why", str(cache_dir), result.output_dir.name],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and "no earlier run" in out.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "provgraph.cli", "why", str(cache_dir), "ffffffff"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and "no recorded run" in missing.stderr


def test_diff_lists_code_inputs_packages_and_outputs(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs with another input and another package version: diff names both."""
    from provgraph.provenance import record
    from provgraph.provenance.environment import capture

    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        first = sub(Scale(x=1.0))
    upgraded = dict(capture())
    upgraded["packages"] = {**upgraded["packages"], "attrs": "0.0.1", "newpkg": "1.0"}
    upgraded["hash"] = "0" * 32
    monkeypatch.setattr(record, "capture", lambda: upgraded)
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        second = sub(Scale(x=4.0))
    report = ProvenanceStore(cache_dir).diff(first.output_dir.name, second.output_dir.name)
    assert not report["code"]["changed"]
    assert list(report["inputs"]) == ["x"]
    assert report["environment"]["changed"]
    assert report["environment"]["added"] == {"newpkg": "1.0"}
    assert report["environment"]["changed_versions"]["attrs"][1] == "0.0.1"
    assert list(report["outputs"]) == ["out"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "provgraph.cli",
            "diff",
            str(cache_dir),
            first.output_dir.name,
            second.output_dir.name,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    import json

    assert json.loads(out.stdout)["environment"]["added"] == {"newpkg": "1.0"}
    text = subprocess.run(
        [
            sys.executable,
            "-m",
            "provgraph.cli",
            "diff",
            str(cache_dir),
            first.output_dir.name,
            second.output_dir.name,
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert "  + newpkg 1.0" in text and "  ~ attrs " in text and "code: same" in text


@workflow.define
def Counted(files: list[File]) -> int:
    counts = workflow.add(CountWords().split(in_file=files).combine("in_file"), name="count")
    return workflow.add(Total(counts=counts.out), name="total").out


def test_a_changed_list_gathered_from_upstream_is_named(tmp_path: Path, cache_dir: Path) -> None:
    """A combined input changes when one of its values does, even to a value another member
    had, and when only its order does: why and diff name it (before, they said nothing
    recorded differs)."""
    files = [tmp_path / f"f{i}.txt" for i in range(3)]
    for path, text in zip(files, ["a", "b", "c d"], strict=True):
        path.write_text(text)
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Counted(files=files))  # counts [1, 1, 2]
        files[1].write_text("b e")
        sub(Counted(files=files))  # counts [1, 2, 2]
        sub(Counted(files=files[::-1]))  # counts [2, 2, 1]: the order alone
    store = ProvenanceStore(cache_dir)
    totals = store.runs_of("Total")
    assert len(totals) == 3
    for run in totals[1:]:
        explanation = store.why(run["run"])
        assert set(explanation.inputs) == {"counts"}, explanation.text()
        assert "nothing recorded differs" not in explanation.text()
    report = store.diff(totals[0]["run"], totals[1]["run"])
    assert set(report["inputs"]) == {"counts"}


@python.define
def Sizes(paths: list[File], sep: str = " ") -> str:
    return sep.join(str(Path(p).stat().st_size) for p in paths)


def test_a_list_of_files_names_the_file_that_changed_and_blank_values_show(
    tmp_path: Path, cache_dir: Path
) -> None:
    files = [tmp_path / f"r{i}.nii" for i in range(3)]
    for path in files:
        path.write_text("data")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Sizes(paths=files))
        files[1].write_text("other data")
        changed = sub(Sizes(paths=files, sep=","))
    text = ProvenanceStore(cache_dir).why(changed.output_dir.name).text()
    assert f"{files[1].as_uri()}: xxh3-128:" in text, text  # the file, old -> new hash
    assert files[0].as_uri() not in text and files[2].as_uri() not in text
    assert "input 'sep' changed: ' ' [" in text, text  # the blank value, seen


def test_a_first_split_has_no_earlier_run_among_its_own_elements(cache_dir: Path) -> None:
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        first = sub(Scale().split(x=[1.0, 2.0, 3.0]))
    explanation = ProvenanceStore(cache_dir).why(first.job_dirs[2].name)
    assert explanation.earlier is None, explanation.text()


@python.define
def Pair(f1: File, f2: File) -> int:
    return len(Path(f1).read_text()) + len(Path(f2).read_text())


def test_two_inputs_of_equal_content_keep_their_own_places(tmp_path: Path, cache_dir: Path) -> None:
    """Files of equal content are one content entity; each input's usage says where that
    input was read, so why names only the input that changed, at its own place (before, the
    unchanged input was said to have changed, listing both places)."""
    a, b, c = (tmp_path / name for name in ("a.txt", "b.txt", "c.txt"))
    a.write_text("")
    b.write_text("")
    c.write_text("other")
    with Submitter(cache_dir=cache_dir, progress=False) as sub:
        sub(Pair(f1=a, f2=b))
        changed = sub(Pair(f1=a, f2=c))
    explanation = ProvenanceStore(cache_dir).why(changed.output_dir.name)
    assert set(explanation.inputs) == {"f2"}, explanation.text()
    old, new = explanation.inputs["f2"]
    assert old is not None and new is not None
    assert (old["where"], new["where"]) == (b.as_uri(), c.as_uri())
