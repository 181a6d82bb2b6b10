"""More of Pydra 1.0's shell-task behaviour on provgraph (issue 18), written here from Pydra's
documented behaviour: read-only inputs, checking inputs without running, the xor wording Pydra
users match, outarg(requires=), attrs.Factory defaults, unannotated arguments, file names as
outputs, mock files, and missing outputs."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from provgraph import (
    File,
    InputRuleError,
    MissingInputError,
    SpecError,
    SpecValueError,
    Submitter,
    TaskFailedError,
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


def test_a_missing_output_says_its_file_does_not_exist(tmp_path: Path) -> None:
    @shell.define
    class Forgets:
        executable = "true"

        class Outputs:
            made: File = shell.out(callable=lambda: "never.txt")

    with pytest.raises(TaskFailedError, match=r"never\.txt' does not exist"):
        Forgets()(cache_dir=tmp_path, progress=False)


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


def test_a_copied_input_lies_in_the_job_directory_under_its_own_name(tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello\n")

    @shell.define
    class Edit:
        executable = ["sed", "-i", "s/hello/hi/"]
        text: File = shell.arg(argstr="", copy_mode="copy")

        class Outputs:
            edited: File = shell.out(callable=lambda text: text)

    out = Edit(text=source)(cache_dir=tmp_path / "c", progress=False)
    assert out.edited.fspath.parent.parent == tmp_path / "c"  # <cache>/<job>/notes.txt
    assert out.edited.fspath.read_text() == "hi\n" and source.read_text() == "hello\n"

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
