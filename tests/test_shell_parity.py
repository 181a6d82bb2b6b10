"""More of Pydra 1.0's shell-task behaviour on provgraph (issue 18), written here from Pydra's
documented behaviour: read-only inputs, checking inputs without running, the xor wording Pydra
users match, outarg(requires=), attrs.Factory defaults, unannotated arguments, file names as
outputs, mock files, and missing outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from provgraph import (
    File,
    InputRuleError,
    MissingInputError,
    MultiInputObj,
    MultiOutputObj,
    SpecError,
    SpecValueError,
    Submitter,
    shell,
    task_hash,
)

try:
    from fileformats import generic
except ImportError:  # pragma: no cover - fileformats is an extra
    generic = None


@shell.define
class Pair:
    executable = "pair"
    a: str = shell.arg(argstr="", position=1)
    b: str | None = shell.arg(argstr="", position=2, default=None)
    both: str = shell.arg(argstr="-o {out_a} {out_b}", position=-1, readonly=True)

    class Outputs:
        out_a: File = shell.outarg(argstr=None, path_template="{a}_out")
        out_b: File | None = shell.outarg(argstr=None, path_template="{b}_out")


def test_a_readonly_input_writes_its_template_of_other_fields(tmp_path: Path) -> None:
    cwd = Path.cwd()
    both = Pair(a="x", b="y", out_b=True).cmdline  # (an optional outarg: made when asked)
    assert both == f"pair x y -o {cwd / 'x_out'} {cwd / 'y_out'}"
    # out_b not asked for: not made, and the readonly argument leaves it out
    assert Pair(a="x", b="y").cmdline == f"pair x y -o {cwd / 'x_out'}"
    assert "both" not in Pair.Outputs.fields()


def test_setting_a_readonly_input_is_refused_before_anything_runs(tmp_path: Path) -> None:
    task = Pair(a="x", both="mine")
    with pytest.raises(InputRuleError, match="input 'both' is read only"):
        _ = task.cmdline
    with pytest.raises(ValueError, match="read only"):
        task.check_inputs()
    with pytest.raises(SpecError, match="no default"):
        shell.arg(argstr="-o {x}", readonly=True, default="x")


@shell.define(xor=[["one", "two", "three"]])
class Choice:
    executable = "cmd"
    one: str | None = shell.arg(default=None)
    two: bool | None = shell.arg(default=None, argstr="--two")
    three: bool | None = shell.arg(default=None)


def test_check_inputs_checks_what_a_submission_checks() -> None:
    task = Choice()
    task.one = "x"
    task.check_inputs()  # one of the group set: fine
    task.two = True
    task.three = False  # False counts as not set
    with pytest.raises(ValueError, match=r"Mutually exclusive fields \(one='x', two=True\) are"):
        task.check_inputs()
    empty = Choice()
    empty.two = False
    with pytest.raises(
        InputRuleError, match="At least one of the mutually exclusive fields should be set"
    ):
        empty.check_inputs()
    with pytest.raises(MissingInputError, match="Mandatory field 'a' is not set"):
        Pair().check_inputs()
    Choice(one="x").split(one=["a", "b"]).check_inputs()  # split values count as set


def test_an_outarg_with_requires_is_made_only_when_they_are_set() -> None:
    @shell.define
    class Template:
        executable = "cmd"
        in_file: str = shell.arg(argstr="")
        with_tpl: bool = shell.arg(argstr="--with", default=False)

        class Outputs:
            out_file: File | None = shell.outarg(
                argstr="--tpl", path_template="tpl.{in_file}", requires={"with_tpl"}
            )

    assert Template(in_file="a").cmdline == "cmd a"
    assert Template(in_file="a", with_tpl=True).cmdline == (
        f"cmd a --with --tpl {Path.cwd() / 'tpl.a'}"
    )
    with pytest.raises(SpecError, match=r"shell.outarg\(requires=3\)"):
        shell.outarg(path_template="x", requires=3)


def test_shell_definition_conveniences_pydra_users_write(tmp_path: Path) -> None:
    @shell.define
    class Touch:
        executable = "touch"
        names: list[str] = shell.arg(argstr="", default=attrs.Factory(list))
        extra = shell.arg(argstr="--x")  # no annotation: any type

        class Outputs:
            made: list[File] = "made_*.txt"  # a glob pattern: every match
            one: File = "made_1.txt"  # a file name

    assert Touch._input_fields["extra"].mandatory
    task = Touch(names=["made_1.txt", "made_2.txt"], extra=None)
    assert task.cmdline == "touch made_1.txt made_2.txt"
    with Submitter(cache_dir=tmp_path / "cache", progress=False) as sub:
        out = sub(task)
    out.raise_for_errors()
    assert sorted(Path(f).name for f in out.outputs.made) == ["made_1.txt", "made_2.txt"]
    assert Path(out.outputs.one).name == "made_1.txt"


def test_definition_mistakes_are_worded_as_in_pydra() -> None:
    with pytest.raises(SpecValueError, match="Multiple fields have the overlapping positions"):

        @shell.define
        class Clash:
            executable = "cmd"
            a: str = shell.arg(argstr="", position=1)
            b: str = shell.arg(argstr="", position=1)

    with pytest.raises(ValueError, match=r"path_template \('x'\) can only be provided when"):
        shell.outarg(path_template="x", default="Hello")


@pytest.mark.skipif(generic is None, reason="fileformats is not installed")
def test_a_mock_file_is_hashed_by_its_path() -> None:
    @shell.define
    class Cat:
        executable = "cat"
        in_file: generic.File = shell.arg(argstr="")

    a, b = generic.File.mock("a.txt"), generic.File.mock("b.txt")  # neither exists
    assert task_hash(Cat(in_file=a)) == task_hash(Cat(in_file=generic.File.mock("a.txt")))
    assert task_hash(Cat(in_file=a)) != task_hash(Cat(in_file=b))


def test_an_outputs_default_is_its_file_name_or_pattern(tmp_path: Path) -> None:
    @shell.define
    class Patterned:  # Pydra's out(default=...): a glob pattern here
        executable = "true"

        class Outputs:
            made: File = shell.out(default="made_*.txt")

    assert Patterned._output_fields["made"].glob == "made_*.txt"
    with pytest.raises(FileNotFoundError, match=r"expects one file matching 'made_\*\.txt'"):
        Patterned()(cache_dir=tmp_path, progress=False)
    with pytest.raises(SpecError, match=r"shell.out\(default=3\)"):
        shell.out(default=3)


def test_fields_given_as_lists_beside_the_command(tmp_path: Path) -> None:
    Echo = shell.define("echo", inputs=[shell.arg(name=w, default=w) for w in ("hail", "pydra")])
    assert Echo().cmdline == "echo hail pydra"
    Touch = shell.define(
        "touch made.txt",
        outputs=[shell.out(name="made", type=File, callable=lambda: "made.txt")],
    )
    made = Touch()(cache_dir=tmp_path, progress=False).made
    assert isinstance(made, File) and made.fspath.name == "made.txt"
    Count = shell.define("wc", inputs={"path": shell.arg(argstr="-l", type=str)})
    assert Count(path="a.txt").cmdline == "wc -l a.txt"
    with pytest.raises(SpecError, match="expected the command alone"):
        shell.define("cat <in_file>", inputs=[shell.arg(name="x")])
    with pytest.raises(SpecError, match=r"expected a list of shell.arg\(name=...\)"):
        shell.define("cat", inputs=[shell.arg()])


def test_a_copy_whose_name_an_output_takes_lies_in_a_folder_of_its_own(tmp_path: Path) -> None:
    """(A copy otherwise lies in the job's directory under its own name: see
    tests/test_environments.py, which changes one in place in every environment.)"""
    source = tmp_path / "notes.txt"
    source.write_text("hello\n")

    @shell.define
    class Keep:  # its output takes the input's name: the copy goes in a folder of its own
        executable = "cp"
        text: File = shell.arg(argstr="", position=1, copy_mode="copy")

        class Outputs:
            kept: File = shell.outarg(argstr="", position=2, path_template="{text}")

    kept = Keep(text=source)(cache_dir=tmp_path / "c", progress=False).kept
    assert kept.fspath.name == "notes.txt" and kept.fspath.read_text() == "hello\n"
    assert (kept.fspath.parent / "_copied" / "text" / "notes.txt").exists()


def test_an_output_found_by_its_name_must_be_a_file() -> None:
    with pytest.raises(SpecValueError, match="must have either a callable or a path_template"):

        @shell.define
        class Count:
            executable = "wc"

            class Outputs:
                lines: int = shell.out(help="not a file: nothing to find by name")


def test_an_output_may_require_an_input_to_hold_one_of_some_values(tmp_path: Path) -> None:
    @shell.define
    class Maybe:
        executable = "touch"
        name: str = shell.arg(argstr="")
        level: int | None = shell.arg(argstr=None, default=None)

        class Outputs:
            made: File | None = shell.out(
                callable=lambda name: name, requires=["name", ("level", [2, 3])]
            )

    assert Maybe(name="a.txt", level=2)(cache_dir=tmp_path, progress=False).made is not None
    assert Maybe(name="b.txt", level=1)(cache_dir=tmp_path, progress=False).made is None
    assert Maybe(name="c.txt")(cache_dir=tmp_path, progress=False).made is None
    with pytest.raises(SpecError, match=r"\(name, \[allowed values\]\) pairs"):
        shell.out(requires=[("level", 2)])


def test_an_output_named_by_the_user_is_written_as_given(tmp_path: Path) -> None:
    @shell.define
    class Make:
        executable = "touch"

        class Outputs:
            made: File = shell.outarg(argstr="", path_template="default.txt")

    assert Make().cmdline == f"touch {Path.cwd() / 'default.txt'}"
    assert Make(made="mine.txt").cmdline == "touch mine.txt"  # relative: in the job's directory
    made = Make(made="mine.txt")(cache_dir=tmp_path, progress=False).made
    assert made.fspath.name == "mine.txt" and made.fspath.parent.parent == tmp_path


def test_links_and_copies_beside_searched_outputs_keep_a_folder_of_their_own(
    tmp_path: Path,
) -> None:
    source = tmp_path / "sample.txt"
    source.write_text("b\na\n")

    @shell.define
    class SortHere:  # writes over the file of its input's name, in its working directory
        executable = ["sh", "-c", 'sort "$0" -o "$(basename "$0")"']
        in_file: File = shell.arg(argstr="", copy_mode="symlink")

        class Outputs:
            out: File = shell.out(callable=lambda: "sample.txt")

    SortHere(in_file=source)(cache_dir=tmp_path / "c", progress=False)
    assert source.read_text() == "b\na\n"  # the link was not in the way: the user's file is safe

    @shell.define
    class Listing:
        executable = ["sh", "-c", "touch result.txt"]
        in_file: File = shell.arg(argstr=None, copy_mode="copy")

        class Outputs:
            found: list[File] = shell.out(glob="*.txt")

    found = Listing(in_file=source)(cache_dir=tmp_path / "c", progress=False).found
    assert [f.fspath.name for f in found] == ["result.txt"]  # the copy is not among them


def test_required_values_given_as_a_set_hash_alike_in_every_process(tmp_path: Path) -> None:
    script = tmp_path / "define.py"
    script.write_text(
        "from provgraph import File, shell\n"
        "@shell.define\n"
        "class Report:\n"
        "    executable = 'report'\n"
        "    mode: str = shell.arg(argstr='--mode')\n"
        "    class Outputs:\n"
        "        out: File | None = shell.outarg(argstr='--out', path_template='r.txt',\n"
        "            requires=[('mode', {'fast', 'slow', 'medium', 'exact'})])\n"
        "print(Report._definition_hash.hex())\n"
    )
    hashes = {
        subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3, 4)
    }
    assert len(hashes) == 1


def test_an_attrs_factory_gives_each_task_a_value_of_its_own() -> None:
    @shell.define
    class Many:
        executable = "echo"
        words: list[str] = shell.arg(argstr="", default=attrs.Factory(list))

    first, second = Many(), Many()
    first.words.append("x")
    assert second.words == [] and Many().words == []
    assert task_hash(second) == task_hash(Many())


def test_a_multi_output_obj_collects_a_list_and_gives_one_file_alone(tmp_path: Path) -> None:
    @shell.define
    class Touch:
        executable = "touch"
        names: list[str] = shell.arg(argstr="")

        class Outputs:
            fs: MultiOutputObj[File] = shell.out(glob="f*.txt")
            gs: MultiOutputObj[File] = shell.out(glob="g*.txt")

    out = Touch(names=["f1.txt", "f2.txt", "g1.txt"])(cache_dir=tmp_path, progress=False)
    assert [f.fspath.name for f in out.fs] == ["f1.txt", "f2.txt"]
    assert isinstance(out.gs, File) and out.gs.fspath.name == "g1.txt"


def test_list_form_outputs_take_file_names_and_outargs(tmp_path: Path) -> None:
    Touch = shell.define(
        "touch out.txt a1.txt a2.txt", outputs={"out": "out.txt", "many": "a*.txt"}
    )
    out = Touch()(cache_dir=tmp_path, progress=False)
    assert out.out.fspath.name == "out.txt" and len(out.many) == 2
    Copy = shell.define(
        "cp",
        inputs=[shell.arg(name="src", type=str, argstr="", position=1)],
        outputs=[
            shell.outarg(name="dst", type=File, path_template="{src}_copy", argstr="", position=2)
        ],
    )
    assert Copy(src="x").cmdline == f"cp x {Path.cwd() / 'x_copy'}"


def test_an_optional_list_of_files_is_made_whole_or_not_at_all(tmp_path: Path) -> None:
    @shell.define
    class Some:
        executable = "touch"
        names: list[str] = shell.arg(argstr="")

        class Outputs:
            wanted: list[File] | None = shell.out(callable=lambda: ["a.txt", "b.txt"])
            one: list[File] = shell.out(callable=lambda: "a.txt")  # one path: a list of it

    out = Some(names=["a.txt"])(cache_dir=tmp_path, progress=False)
    assert out.wanted is None  # b.txt was not made
    assert [f.fspath.name for f in out.one] == ["a.txt"]
    both = Some(names=["a.txt", "b.txt"])(cache_dir=tmp_path, progress=False).wanted
    assert [f.fspath.name for f in both] == ["a.txt", "b.txt"]


def test_a_set_is_written_item_by_item_in_a_stable_order() -> None:
    @shell.define
    class Tags:
        executable = "tag"
        names: set[str] = shell.arg(argstr="--name...")
        joined: frozenset[str] = shell.arg(argstr="--all", sep=",")

    task = Tags(names={"b", "a"}, joined=frozenset({"y", "x"}))
    assert task.cmdline == "tag --name a --name b --all x,y"


@pytest.mark.skipif(generic is None, reason="fileformats is not installed")
def test_mock_files_pass_through_a_recorded_run(tmp_path: Path) -> None:
    from provgraph import ProvenanceStore, workflow

    @shell.define
    class Say:
        executable = "echo"
        names: MultiInputObj[str] = shell.arg(argstr="...")

    @workflow.define
    def Names(files):  # type: ignore[no-untyped-def]  # untyped: the mocks travel as they are
        return workflow.add(Say(names=files)).stdout

    mocks = [generic.File.mock(tmp_path / "a"), generic.File.mock(tmp_path / "b")]
    with Submitter(cache_dir=tmp_path / "c", progress=False) as sub:
        done = sub(Names(files=mocks))
    done.raise_for_errors()
    assert done.outputs.out == f"{tmp_path / 'a'} {tmp_path / 'b'}\n"
    rows = list(
        ProvenanceStore(tmp_path / "c").query(
            "SELECT (COUNT(DISTINCT ?run) AS ?n) WHERE { GRAPH ?run { ?a a prov:Activity } }"
        )
    )
    assert int(rows[0][0]) >= 2  # the workflow's run and its node's, both recorded


def test_optional_lists_found_by_pattern_are_lists(tmp_path: Path) -> None:
    @shell.define
    class Touch:
        executable = "touch"
        names: list[str] = shell.arg(argstr="")

        class Outputs:
            many: MultiOutputObj[File] | None = shell.out(glob="f*.txt")
            listed: list[File] | None = shell.out(glob="f*.txt")

    two = Touch(names=["f1.txt", "f2.txt"])(cache_dir=tmp_path, progress=False)
    assert [f.fspath.name for f in two.many] == ["f1.txt", "f2.txt"]
    one = Touch(names=["f1.txt"])(cache_dir=tmp_path, progress=False)
    assert isinstance(one.many, File)  # MultiOutputObj: one file alone
    assert [f.fspath.name for f in one.listed] == ["f1.txt"]  # list: a list of one


def test_attrs_factory_defaults_are_checked_like_any_value() -> None:
    @shell.define
    class Show:
        executable = "echo"
        scale: float = shell.arg(argstr="--scale", default=attrs.Factory(lambda: 1))
        where: Path = shell.arg(argstr="", default=attrs.Factory(lambda: "rel.txt"))

    task = Show()
    assert task.scale == 1.0 and isinstance(task.scale, float)
    assert task.where == Path.cwd() / "rel.txt"
    assert task.cmdline == f"echo --scale 1.0 {Path.cwd() / 'rel.txt'}"


def test_set_inputs_change_the_definition_hash() -> None:
    """A set was written as its repr before: such definitions get a new hash (their cached
    results came from that broken command line); others keep theirs."""

    @shell.define
    class WithSet:
        executable = "tag"
        names: set[str] = shell.arg(argstr="--name...")

    @shell.define
    class WithList:
        executable = "tag"
        names: list[str] = shell.arg(argstr="--name...")

    assert "sets item by item" in WithSet._definition_text
    assert "sets item by item" not in WithList._definition_text


def test_outputs_found_by_name_are_never_the_engines_files(tmp_path: Path) -> None:
    @shell.define
    class Nothing:
        executable = "true"

        class Outputs:
            _lock: File | None  # (a name the engine keeps: never an output's file)

    assert Nothing()(cache_dir=tmp_path, progress=False)._lock is None


@pytest.mark.skipif(generic is None, reason="fileformats is not installed")
def test_a_mock_given_to_a_copied_input_is_not_copied(tmp_path: Path) -> None:
    @shell.define
    class Name:
        executable = "echo"
        item: generic.File = shell.arg(argstr="", copy_mode="copy")

    mock = generic.File.mock(tmp_path / "nowhere" / "b.txt")
    out = Name(item=mock)(cache_dir=tmp_path / "c", progress=False)
    assert out.stdout == f"{tmp_path / 'nowhere' / 'b.txt'}\n"
