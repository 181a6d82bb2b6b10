"""Pydra 1.0's shell field metadata on provgraph (issue 18): command lines compared word for
word with the ones Pydra itself builds from the same definition and inputs, and the
behaviours of outarg, callable and type-only outputs, copy_mode, allowed_values,
executable and append_args on real runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from provgraph import Directory, File, MultiInputObj, SpecError, Submitter, shell
from provgraph.exceptions import TaskFailedError

if os.environ.get("PROVGRAPH_CI") != "1":  # under CI pydra is installed: never skipped
    pytest.importorskip("pydra.compose.shell", reason="pydra is not installed")

from pydra.utils.typing import MultiOutputFile

from pydra_twins import own_argv, pydra_argv, twins


@pytest.fixture
def in_file(tmp_path: Path) -> str:
    path = tmp_path / "in.nii.gz"
    path.write_text("image")
    return str(path)


# (executable, inputs, outputs, values): one definition, one job
CASES = [
    ("cmd", {"a": (str, dict(argstr="", position=1))}, {}, dict(a="x")),
    (
        "cmd",
        {
            "a": (str, dict(argstr="", position=-1)),
            "b": (str, dict(argstr="")),
            "c": (str, dict(argstr="", position=1)),
        },
        {},
        dict(a="A", b="B", c="C"),
    ),
    (  # unpositioned fields fill the free positions before an explicit one
        "cmd",
        {
            "a": (str, dict(argstr="", position=3)),
            "b": (str, dict(argstr="")),
            "c": (str, dict(argstr="")),
        },
        {},
        dict(a="A", b="B", c="C"),
    ),
    (
        "cmd",
        {
            "v": (bool, dict(argstr="-v", default=False)),
            "w": (bool, dict(argstr="-w", default=False)),
        },
        {},
        dict(v=True),
    ),
    ("cmd", {"x": (list[str], dict(argstr="-v", sep=" "))}, {}, dict(x=["a", "b", "c"])),
    ("cmd", {"x": (list[str], dict(argstr="-v", sep=","))}, {}, dict(x=["a", "b", "c"])),
    ("cmd", {"x": (list[int], dict(argstr="-x", sep=", "))}, {}, dict(x=[1, 2])),
    ("cmd", {"x": (list[str], dict(argstr="-v...", sep=","))}, {}, dict(x=["a", "b", "c"])),
    ("cmd", {"x": (list[str], dict(argstr="-v {x}", sep=","))}, {}, dict(x=["a", "b"])),
    ("cmd", {"x": (list[str], dict(argstr="-v {x}...", sep=","))}, {}, dict(x=["a", "b"])),
    ("cmd", {"f": (float, dict(argstr="-f {f:.5f}"))}, {}, dict(f=0.007)),
    (  # a template naming other inputs; an unset one writes nothing
        "cmd",
        {
            "a": (str, dict(argstr="-a {a} {b}", position=1)),
            "b": (str | None, dict(argstr=None, default=None)),
            "c": (str, dict(argstr="--c")),
        },
        {},
        dict(a="A", c="C"),
    ),
    (
        "cmd",
        {"x": (str | None, dict(argstr="-x", default=None)), "y": (str, dict(argstr="-y"))},
        {},
        dict(y="Y"),
    ),
    ("cmd", {"m": (MultiInputObj[str], dict(argstr="-m"))}, {}, dict(m=["a", "b"])),
    (
        "cmd",
        {"m": (MultiInputObj[tuple[int, int]], dict(argstr="-axis", sep=" "))},
        {},
        dict(m=[(0, 1), (2, 3)]),
    ),
    (["cmd", "sub"], {"a": (str, dict(argstr="--a"))}, {}, dict(a="x")),
    # a repeated flag over a list of tuples: each tuple's items as sep says
    ("cmd", {"p": (list[tuple[int, int]], dict(argstr="-p..."))}, {}, dict(p=[(0, 1), (2, 3)])),
    (
        "cmd",
        {"p": (list[tuple[int, int]], dict(argstr="-p...", sep=","))},
        {},
        dict(p=[(0, 1), (2, 3)]),
    ),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_command_lines_match_pydras(case: int, tmp_path: Path) -> None:
    executable, inputs, outputs, values = CASES[case]
    pydra_cls, own_cls = twins(executable, inputs, outputs)
    assert own_argv(own_cls, values, tmp_path) == pydra_argv(pydra_cls, values, tmp_path)


def _formatted(field, inputs):
    return f"--pair={inputs['a']}:{inputs['b']}" if inputs.get("b") else ""


def test_formatter_matches_pydra(tmp_path: Path) -> None:
    spec = {
        "a": (str, dict(argstr="", position=1)),
        "b": (int | None, dict(formatter=_formatted, default=None, position=2)),
    }
    pydra_cls, own_cls = twins("cmd", spec)
    for values in (dict(a="x", b=3), dict(a="x")):
        assert own_argv(own_cls, values, tmp_path) == pydra_argv(pydra_cls, values, tmp_path)
    assert own_argv(own_cls, dict(a="x", b=3), tmp_path) == ["cmd", "x", "--pair=x:3"]


@pytest.mark.parametrize(
    ("template", "keep", "given", "expected"),
    [
        ("{in_file}_out", True, True, "in_out.nii.gz"),  # the input's extension moves to the end
        ("{in_file}_out.txt", True, True, "in_out.txt"),  # the template's own extension wins
        ("{in_file}_out", False, True, "in_out"),
        ("out_file.mif", True, True, "out_file.mif"),
        ("{in_file}_out", True, False, None),  # turned off: no such file, nothing written
    ],
)
def test_outarg_paths_match_pydra(
    template: str, keep: bool, given: object, expected: str | None, in_file: str, tmp_path: Path
) -> None:
    job = tmp_path / "job"
    job.mkdir()
    pydra_cls, own_cls = twins(
        "cmd",
        {"in_file": (File, dict(argstr="", position=1))},
        {
            "out_file": (
                File,
                "outarg",
                dict(argstr="-o", position=2, path_template=template, keep_extension=keep),
            )
        },
    )
    values = {"in_file": in_file, "out_file": given}
    ours = own_argv(own_cls, values, job)
    assert ours == pydra_argv(pydra_cls, values, job)
    assert ours == ["cmd", in_file] + ([] if expected is None else ["-o", str(job / expected)])


def test_documented_differences_from_pydra(tmp_path: Path, in_file: str) -> None:
    """Where provgraph differs on purpose (docs/pydra.md): 0 is written, ``--x=`` joins its
    value, unpositioned fields keep the order they are declared in (Pydra sorts them by
    name), and a template's text before a path input is kept."""
    spec = {
        "x": (str, dict(argstr="--x=")),
        "n": (int, dict(argstr="-n")),
        "s": (str, dict(argstr="-s")),
    }
    pydra_cls, own_cls = twins("cmd", spec)
    values = dict(n=0, x="v", s="two words")
    assert pydra_argv(pydra_cls, values, tmp_path) == ["cmd", "-s", "two words", "--x=", "v"]
    assert own_argv(own_cls, values, tmp_path) == ["cmd", "--x=v", "-n", "0", "-s", "two words"]
    pydra_cls, own_cls = twins(
        "cmd",
        {"in_file": (File, dict(argstr="", position=1))},
        {"o": (File, "outarg", dict(argstr="-o", position=2, path_template="out_{in_file}"))},
    )
    values = {"in_file": in_file}
    assert pydra_argv(pydra_cls, values, tmp_path)[-1] == str(tmp_path / "in.nii.gz")
    assert own_argv(own_cls, values, tmp_path)[-1] == str(tmp_path / "out_in.nii.gz")


def test_position_errors_at_definition() -> None:
    with pytest.raises(SpecError, match=r"share a position"):

        @shell.define
        class Clash:
            executable = "cmd"
            a: str = shell.arg(position=1)
            b: str = shell.arg(position=1)

    with pytest.raises(SpecError, match=r"position=0, which is the executable's"):

        @shell.define
        class Zero:
            executable = "cmd"
            a: str = shell.arg(position=0)

    @shell.define
    class Either:  # excluding each other, two inputs may share a place
        executable = "cmd"
        a: str | None = shell.arg(position=1, argstr="-a", default=None, xor=["b"])
        b: str | None = shell.arg(position=1, argstr="-b", default=None, xor=["a"])

    assert Either.command_line({"b": "B"}, Path("/job")) == ["cmd", "-b", "B"]
    with pytest.raises(SpecError, match=r"names \['nope'\]"):

        @shell.define
        class Unknown:
            executable = "cmd"
            a: str = shell.arg(argstr="-a {nope}")


# -- real runs ------------------------------------------------------------------------------


@shell.define
class Copy:
    """cp with an outarg: the output's name comes from the input unless the user names it."""

    executable = "cp"
    in_file: File = shell.arg(argstr="", position=1)

    class Outputs:
        out_file: File = shell.outarg(argstr="", position=2, path_template="{in_file}_copy")


def test_outarg_named_by_the_user_and_by_template(tmp_path: Path, in_file: str) -> None:
    cache = tmp_path / "cache"
    default = Copy(in_file=in_file)(cache_dir=cache)
    assert (
        Path(default.out_file).name == "in_copy.nii.gz"
        and Path(default.out_file).read_text() == "image"
    )
    named = Copy(in_file=in_file, out_file="mine.nii.gz")(cache_dir=cache)
    assert Path(named.out_file).name == "mine.nii.gz"
    assert Path(named.out_file).parent != Path(default.out_file).parent  # another job
    with pytest.raises(SpecError, match=r"outside the job's directory"):
        Copy(in_file=in_file, out_file="/etc/passwd")  # refused when set, before any run
    assert "out_file" in Copy._input_fields and "out_file" in Copy._output_fields


def _count_lines(stdout: str) -> int:
    return len(stdout.splitlines())


def _listing(output_dir: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in output_dir.iterdir() if p.name.startswith(prefix))


@shell.define
class Make:
    """Outputs computed by a callable, and one declared by its type alone."""

    executable = "sh"
    script: str = shell.arg(argstr="-c", position=1)
    prefix: str = shell.arg(argstr=None, default="part")

    class Outputs:
        lines: int = shell.out(callable=_count_lines)
        parts: list = shell.out(callable=_listing)
        report: File


def test_callable_and_type_only_outputs(tmp_path: Path) -> None:
    script = "echo a; echo b; touch part1 part2 other; echo done > report.txt"
    out = Make(script=script)(cache_dir=tmp_path)
    assert out.lines == 2 and out.parts == ["part1", "part2"]
    assert Path(out.report).name == "report.txt" and Path(out.report).read_text() == "done\n"
    with pytest.raises(TaskFailedError, match=r"output 'report' expects one file named"):
        Make(script="echo x")(cache_dir=tmp_path)


@shell.define
class Append:
    executable = "sh"
    path: File = shell.arg(argstr="", position=2, copy_mode="copy")
    script: str = shell.arg(argstr="-c", position=1, default='echo more >> "$0"; cat "$0"')
    mode: str = shell.arg(argstr=None, default="fast", allowed_values=["fast", "slow"])


def test_copy_mode_protects_the_input(tmp_path: Path, in_file: str) -> None:
    out = Append(path=in_file)(cache_dir=tmp_path)
    assert out.stdout == "imagemore\n"
    assert Path(in_file).read_text() == "image"  # the command changed its own copy


def test_allowed_values_refused_before_anything_runs(in_file: str) -> None:
    with pytest.raises(
        ValueError,
        match=r"input 'mode': got 'medium'; the value of mode has to be one of \['fast', 'slow'\]",
    ):
        Append(path=in_file, mode="medium")
    with pytest.raises(SpecError, match=r"'medium'"):
        Append(path=in_file).split(mode=["fast", "medium"])


Echo = shell.define("echo <word:str>")


def test_executable_and_append_args_are_inputs(tmp_path: Path) -> None:
    with Submitter(cache_dir=tmp_path) as sub:
        plain = sub(Echo(word="hi"))
        more = sub(Echo(word="hi", append_args=["there", "you"]))
        other = sub(Echo(word="hi").split(executable=["echo", ["printf", "%s-"]]))
    assert plain.outputs.stdout == "hi\n" and more.outputs.stdout == "hi there you\n"
    assert other.outputs.stdout == ["hi\n", "hi-"]
    # at their defaults they change nothing: the same job as without them
    with Submitter(cache_dir=tmp_path) as sub:
        again = sub(Echo(word="hi", executable=["echo"], append_args=None))
    assert again.output_dir == plain.output_dir


def test_directory_type_only_output(tmp_path: Path) -> None:
    @shell.define
    class Mk:
        executable = ["mkdir", "-p"]
        name: str = shell.arg(argstr="")

        class Outputs:
            made: Directory

    out = Mk(name="made")(cache_dir=tmp_path)
    assert Path(out.made).is_dir() and Path(out.made).name == "made"


# -- found in review: each failed before its fix --------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "values"),
    [
        ({"x": (list[str], dict(argstr="-v {x}", sep=", "))}, dict(x=["a", "b"])),
        ({"x": (list[str], dict(argstr="-v {x}", sep=" "))}, dict(x=["a b", "c"])),
        ({"x": (list[str], dict(argstr="-v {x}", sep=","))}, dict(x=["O'Brien", "{a}"])),
        (
            {
                "a": (str, dict(argstr="-a {a} {b:.2f}")),
                "b": (float | None, dict(argstr=None, default=None)),
            },
            dict(a="x"),
        ),
        ({"x": (str, dict(argstr="-x -y"))}, dict(x="v")),
        ({"x": (list[str], dict(argstr="-v..."))}, dict(x=["a", ""])),
    ],
)
def test_review_command_lines_match_pydra(inputs: dict, values: dict, tmp_path: Path) -> None:
    pydra_cls, own_cls = twins("cmd", inputs)
    assert own_argv(own_cls, values, tmp_path) == pydra_argv(pydra_cls, values, tmp_path)


def test_formatter_of_an_unset_input_writes_nothing(tmp_path: Path) -> None:
    def shown(b):
        return f"--b={b}"

    spec = {"b": (int | None, dict(formatter=shown, default=None))}
    pydra_cls, own_cls = twins("cmd", spec)
    assert own_argv(own_cls, {}, tmp_path) == pydra_argv(pydra_cls, {}, tmp_path) == ["cmd"]


def test_a_typo_in_a_callable_or_formatter_is_refused_at_definition() -> None:
    def count(stdot):
        return 0

    with pytest.raises(SpecError, match=r"asks for \['stdot'\]"):

        @shell.define
        class Late:
            executable = "true"

            class Outputs:
                n: int = shell.out(callable=count)

    with pytest.raises(SpecError, match=r"formatter .*asks for \['nope'\]"):

        @shell.define
        class Wrong:
            executable = "true"
            a: int = shell.arg(formatter=lambda nope: "")


def test_user_named_outputs_may_not_take_the_engines_names(in_file: str) -> None:
    for name in ("stdout.txt", "_result.pkl", "_prov-run.trig", "_copied/x"):
        with pytest.raises(SpecError, match=r"one the engine keeps"):
            Copy(in_file=in_file, out_file=name)


def test_copy_mode_keeps_inputs_of_the_same_name_apart(tmp_path: Path) -> None:
    @shell.define
    class Both:
        executable = "cat"
        a: File = shell.arg(argstr="", position=1, copy_mode="copy")
        b: File = shell.arg(argstr="", position=2, copy_mode="copy")

    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "data.txt").write_text("AAA\n")
    (tmp_path / "y" / "data.txt").write_text("BBB\n")
    out = Both(a=tmp_path / "x" / "data.txt", b=tmp_path / "y" / "data.txt")(
        cache_dir=tmp_path / "c"
    )
    assert out.stdout == "AAA\nBBB\n"


def test_command_line_rules_change_the_hash_only_where_the_command_changed() -> None:
    """Definitions that Pydra's rules write differently than the first release did get a
    new definition hash (their old cache is not reused); the others keep theirs."""

    @shell.define
    class Gap:  # unpositioned fields now fill the free positions before position 3
        executable = "tool"
        a: str = shell.arg(argstr="-a", position=3)
        b: str = shell.arg(argstr="-b")

    @shell.define
    class Plain:
        executable = "tool"
        a: str = shell.arg(argstr="-a", position=1)
        b: str = shell.arg(argstr="-b")

    assert Gap.command_line({"a": "A", "b": "B"}, Path("/j")) == ["tool", "-b", "B", "-a", "A"]
    assert "Pydra 1.0 rules" in Gap._definition_text
    assert "Pydra 1.0 rules" not in Plain._definition_text


def test_cmdline_shows_the_command_without_running_it(
    tmp_path: Path, in_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Copy(in_file=in_file).cmdline == f"cp {in_file} {tmp_path / 'in_copy.nii.gz'}"
    assert not (tmp_path / "in_copy.nii.gz").exists()
    spaced = Echo(word="two words", append_args=["x"])
    assert spaced.cmdline == "echo 'two words' x"
    with pytest.raises(SpecError, match=r"each job has its own command line"):
        _ = Echo().split(word=["a", "b"]).cmdline
    from provgraph import MissingInputError

    with pytest.raises(MissingInputError, match=r"Mandatory field 'word' is not set"):
        _ = Echo().cmdline


def test_path_template_over_a_list_input_matches_pydras_multi_output_file(tmp_path: Path) -> None:
    """An output typed list[File] whose template names a list input: one file per item
    (Pydra's MultiOutputFile), on the command line as Pydra writes it, and collected."""
    from pydra.compose import shell as pshell

    @pshell.define
    class PTouch(pshell.Task["PTouch.Outputs"]):
        executable = "touch"
        names: list[str] = pshell.arg(argstr=None)

        class Outputs(pshell.Outputs):
            made: MultiOutputFile = pshell.outarg(argstr="", path_template="{names}.txt")

    @shell.define
    class Touch:
        executable = "touch"
        names: list[str] = shell.arg(argstr=None)

        class Outputs:
            made: list[File] = shell.outarg(argstr="", path_template="{names}.txt")

    values = {"names": ["a", "b"]}
    assert own_argv(Touch, values, tmp_path) == pydra_argv(PTouch, values, tmp_path)
    made = Touch(names=["a", "b"])(cache_dir=tmp_path / "cache").made
    assert [Path(p).name for p in made] == ["a.txt", "b.txt"] and all(
        Path(p).exists() for p in made
    )
    with pytest.raises(SpecError, match=r"lists of different lengths"):

        @shell.define
        class Pairs:
            executable = "touch"
            a: list[str] = shell.arg(argstr=None)
            b: list[str] = shell.arg(argstr=None)

            class Outputs:
                made: list[File] = shell.outarg(argstr="", path_template="{a}_{b}.txt")

        Pairs.command_line({"a": ["x"], "b": ["y", "z"]}, tmp_path)


def test_a_callable_parameter_with_a_default_keeps_it(tmp_path: Path) -> None:
    """A parameter that is neither an input nor given by the engine, but has a default, is
    accepted at definition and keeps its default when called (before, the call failed)."""

    def lines(stdout, scale=10):
        return scale * len(stdout.splitlines())

    @shell.define
    class Say:
        executable = "echo"
        word: str = shell.arg(argstr="")

        class Outputs:
            n: int = shell.out(callable=lines)

    assert Say(word="hi")(cache_dir=tmp_path).n == 10


# -- from the Pydra conformance run (scripts/pydra_conformance) ------------------------------


@shell.define
class TouchNamed:
    executable = ["touch", "always.txt"]
    first: str = shell.arg(argstr="", position=1)
    second: str | None = shell.arg(default=None, argstr="", position=2)

    class Outputs:
        made: File | None = shell.out(callable=lambda first: first, requires=["first"])
        both: File | None = shell.out(
            callable=lambda second: second, requires=[["first", "second"]]
        )
        absent: File | None = shell.out(callable=lambda: "never.txt")
        listed: list[File] = shell.out(callable=lambda first: [first, "always.txt"])


def test_outputs_from_callables_are_typed_and_may_require_inputs(tmp_path: Path) -> None:
    one = TouchNamed(first=Path("a.txt"))(cache_dir=tmp_path)  # a Path for a str: as text
    assert isinstance(one.made, File) and one.made.fspath.exists()
    assert one.both is None  # requires first and second: second is not set
    assert one.absent is None  # optional, and not made
    assert [p.name for p in one.listed] == ["a.txt", "always.txt"]
    assert all(isinstance(p, File) for p in one.listed)
    two = TouchNamed(first="a.txt", second="b.txt")(cache_dir=tmp_path)
    assert two.both.name == "b.txt" and two.both.fspath.exists()


def test_a_missing_mandatory_output_from_a_callable_fails_the_job(tmp_path: Path) -> None:
    @shell.define
    class Claims:
        executable = "true"

        class Outputs:
            made: File = shell.out(callable=lambda: "never.txt")

    with pytest.raises(
        TaskFailedError,
        match=r"output 'made' \(from its callable\) was not created: .*never\.txt' does not exist",
    ) as caught:
        Claims()(cache_dir=tmp_path)
    assert isinstance(caught.value, FileNotFoundError)  # OutputNotFoundError, as in Pydra
    assert caught.value.errors[0].error_type == "OutputNotFoundError"


def test_requires_names_inputs() -> None:
    with pytest.raises(SpecError, match=r"output 'x' requires \['nope'\], which are not inputs"):

        @shell.define
        class Bad:
            executable = "true"

            class Outputs:
                x: File | None = shell.out(callable=lambda: "x", requires=["nope"])


def test_executable_is_kept_as_given() -> None:
    assert shell.define("echo")(append_args=["hi"]).executable == "echo"
    assert shell.define("echo")(append_args=["hi"]).cmdline == "echo hi"
    assert shell.define("git log <n:int>")(n=1).executable == ["git", "log"]


def test_str_inputs_take_paths_and_file_outputs_as_text(tmp_path: Path) -> None:
    from provgraph import python, workflow

    @python.define
    def Made(name: str) -> File:
        path = Path(name)
        path.write_text("x")
        return File(path.absolute())

    @python.define
    def Named(text: str) -> str:
        return text

    @workflow.define
    def Chain(name: str) -> str:
        made = workflow.add(Made(name=name))
        return workflow.add(Named(text=made.out)).out  # File -> str: its path

    out = Chain(name="m.txt")(cache_dir=tmp_path).out
    assert isinstance(out, str) and out.endswith("/m.txt") and Path(out).exists()
    assert Named(text=tmp_path / "p")(cache_dir=tmp_path).out == str(tmp_path / "p")


@shell.define
class Rules:
    executable = "ls"
    a: bool = shell.arg(default=False, argstr="-a", xor=["b"])
    b: bool = shell.arg(default=False, argstr="-b")
    c: bool = shell.arg(default=False, argstr="-c", requires=["a"])


def test_rule_errors_are_value_errors_too() -> None:
    from provgraph import InputRuleError

    with pytest.raises(ValueError, match="mutually exclusive") as caught:
        Rules(a=True, b=True)()
    assert isinstance(caught.value, InputRuleError) and isinstance(caught.value, SpecError)
    with pytest.raises(ValueError, match=r"'c' requires \['a'\]"):
        Rules(c=True)()


def test_a_template_filled_with_an_absolute_path_names_a_file_in_the_job(tmp_path: Path) -> None:
    """As in Pydra: a template whose input holds a whole path places the file in the job's
    directory under that path's last part (never at the path itself)."""

    @shell.define
    class TouchAt:
        executable = "touch"
        where: str = shell.arg(argstr=None)

        class Outputs:
            made: File = shell.outarg(path_template="{where}", argstr="", position=1)

    target = tmp_path / "elsewhere" / "made.txt"
    out = TouchAt(where=target)(cache_dir=tmp_path / "cache").made
    assert out.fspath.parent.parent == tmp_path / "cache" and out.name == "made.txt"
    assert not target.exists()


def test_outarg_default_and_task_outputs_class(tmp_path: Path) -> None:
    @shell.define
    class Cp:
        executable = "cp"
        source: File = shell.arg(argstr="", position=1)

        class Outputs:
            copied: File = shell.outarg(argstr="", position=2, path_template="out.txt")
            extra: File | None = shell.outarg(
                default=None, argstr="--not-used", path_template="x.txt"
            )

    source = tmp_path / "in.txt"
    source.write_text("foo")
    done = Cp(source=source, extra=False)(cache_dir=tmp_path / "cache")
    assert done.copied.fspath.read_text() == "foo" and done.extra is None
    assert set(Cp.Outputs.fields()) == {"copied", "extra", "return_code", "stdout", "stderr"}
    assert Cp(source=source).Outputs is Cp.Outputs
    with pytest.raises(SpecError, match=r"outarg\(default='x'\)"):
        shell.outarg(default="x", path_template="x.txt")


def _parity(inputs: Any) -> str:
    return "{inp_a}_even" if inputs.inp_b % 2 == 0 else "{inp_a}_odd"


def test_path_template_given_as_a_function_matches_pydra(tmp_path: Path) -> None:
    spec = {
        "inp_a": (str, dict(argstr="", position=1)),
        "inp_b": (int, dict(argstr=None)),
    }
    outputs = {"out_a": (File, "outarg", dict(argstr="-o", position=2, path_template=_parity))}
    pydra_cls, own_cls = twins("executable", spec, outputs)
    for values in (dict(inp_a="x", inp_b=1), dict(inp_a="x", inp_b=2)):
        own = own_argv(own_cls, values, tmp_path)
        assert own == pydra_argv(pydra_cls, values, tmp_path)
    assert own_argv(own_cls, dict(inp_a="x", inp_b=2), tmp_path)[-1].endswith("x_even")


def test_path_template_function_runs_and_is_checked(tmp_path: Path) -> None:
    @shell.define
    class TouchChosen:
        executable = "touch"
        stem: str = shell.arg(argstr=None)
        loud: bool = shell.arg(argstr=None, default=False)

        class Outputs:
            made: File = shell.outarg(
                argstr="",
                position=1,
                path_template=lambda stem, loud: "{stem}_LOUD.txt" if loud else "{stem}.txt",
            )

    assert TouchChosen(stem="a")(cache_dir=tmp_path).made.name == "a.txt"
    assert TouchChosen(stem="a", loud=True)(cache_dir=tmp_path).made.name == "a_LOUD.txt"
    with pytest.raises(SpecError, match=r"path_template function <lambda>\(\) asks for \['nope'\]"):

        @shell.define
        class Bad:
            executable = "touch"

            class Outputs:
                made: File = shell.outarg(path_template=lambda nope: "x")


# -- found in review of the Pydra-parity changes: each failed before its fix ----------------


def test_a_lambda_template_is_hashed_by_its_own_expression() -> None:
    """help= is documentation: editing it beside a lambda template keeps the hash; another
    template (also one whose source cannot be read) changes it."""
    from provgraph import task_hash

    def define(line: str) -> Any:
        source = (
            "from provgraph import File, shell\n"
            "@shell.define\n"
            "class T:\n"
            "    executable = 'cp'\n"
            "    src: str = shell.arg(position=1)\n"
            "    class Outputs:\n"
            f"        out: File = {line}\n"
        )
        namespace: dict[str, Any] = {}
        exec(compile(source, "<generated>", "exec", dont_inherit=True), namespace)
        return namespace["T"]

    lam = "shell.outarg(path_template=lambda inputs: '{src}_{x}', position=2, help='{h}')"
    one = define(lam.replace("{x}", "a").replace("{h}", "one"))
    two = define(lam.replace("{x}", "a").replace("{h}", "two"))
    other = define(lam.replace("{x}", "b").replace("{h}", "one"))
    assert task_hash(one(src="s")) == task_hash(two(src="s")) != task_hash(other(src="s"))


def test_two_outputs_at_one_file_are_refused(tmp_path: Path) -> None:
    @shell.define
    class Two:
        executable = ["sh", "-c", 'echo one > "$0"; echo two > "$1"']
        a: str = shell.arg(argstr=None)
        b: str = shell.arg(argstr=None)

        class Outputs:
            o1: File = shell.outarg(argstr="", position=1, path_template="{a}.txt")
            o2: File = shell.outarg(argstr="", position=2, path_template="{b}.txt")

    result = Submitter(cache_dir=tmp_path)(Two(a="/x/f", b="/y/f"))
    (failure,) = result.errors
    assert "outputs 'o1' and 'o2' are both placed at" in failure.message
    assert Two(a="/x/f", b="/y/g")(cache_dir=tmp_path).o2.name == "g.txt"


def test_a_mandatory_list_of_files_from_a_callable_has_no_none(tmp_path: Path) -> None:
    @shell.define
    class Listed:
        executable = ["touch", "a.txt"]

        class Outputs:
            files: list[File] = shell.out(callable=lambda: ["a.txt", None])

    with pytest.raises(TaskFailedError, match=r"output 'files' \(from its callable\) has None"):
        Listed()(cache_dir=tmp_path)


def test_callable_outputs_of_path_types_are_marked_in_the_hash() -> None:
    """Results made before callable values were converted kept bare strings: definitions
    whose callable outputs are of path types hash anew, so those are not reused."""
    from provgraph.spec.fields import path_valued as _names_paths

    assert _names_paths(File) and _names_paths(File | None) and _names_paths(list[File])
    assert _names_paths(Path) and not _names_paths(str) and not _names_paths(list[int])


def test_outputs_pickle_as_their_values(tmp_path: Path) -> None:
    import pickle

    echo = shell.define("echo <word:str>")
    out = echo(word="hi")(cache_dir=tmp_path)
    again = pickle.loads(pickle.dumps(out))
    assert again == out and again.stdout == "hi\n"


def test_cmdline_checks_the_rules_a_submission_checks() -> None:
    assert Rules(a=True).cmdline == "ls -a"
    with pytest.raises(ValueError, match="mutually exclusive"):
        Rules(a=True, b=True).cmdline  # noqa: B018


def test_a_file_output_that_is_a_directory_fails_the_job(tmp_path: Path) -> None:
    @shell.define
    class MakesDir:
        executable = ["mkdir", "made"]

        class Outputs:
            made: File = shell.out(callable=lambda: "made")

    with pytest.raises(TaskFailedError, match="is a directory; its output is declared a file"):
        MakesDir()(cache_dir=tmp_path)
