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
