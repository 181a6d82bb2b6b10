"""Shell task definitions: templates, the class form, command lines, outputs and failures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from provgraph import CommandError, File, SpecError, Submitter, shell


def _argv(task_cls: type, out_dir: Path, **inputs: object) -> list[str]:
    task = task_cls(**inputs)
    values = {k: v for k, v in task.inputs.asdict().items()}
    return task_cls.command_line(values, out_dir)  # type: ignore[attr-defined, no-any-return]


def test_template_fields_flags_and_command(tmp_path: Path) -> None:
    """Words before the first field are the command; a flag before a field belongs to it."""
    src = tmp_path / "in.nii.gz"
    src.write_text("x")
    Resample = shell.define(
        "python3 resample.py <in_file:File> <out|out_file:File> --voxel <voxel:float>"
    )
    assert Resample._executable == ("python3", "resample.py")
    assert Resample._task_name == "resample"
    assert set(Resample._input_fields) == {"in_file", "voxel", "executable", "append_args"}
    assert set(Resample._output_fields) == {"return_code", "stdout", "stderr", "out_file"}
    argv = _argv(Resample, tmp_path / "job", in_file=src, voxel=2)
    assert argv == [
        "python3",
        "resample.py",
        str(src),
        str(tmp_path / "job" / "out_file.nii.gz"),
        "--voxel",
        "2.0",
    ]


def test_defaults_optional_bools_and_lists(tmp_path: Path) -> None:
    """Defaults, optional inputs left out when None, bool flags and list values."""
    Tool = shell.define(
        "tool <x:int> --scale <scale:float=1.5> --mask <mask:File?> --verbose <verbose:bool=False> "
        "--names <names:list[str]?>"
    )
    assert Tool._input_fields["scale"].default == 1.5
    assert Tool._input_fields["mask"].default is None
    assert _argv(Tool, tmp_path, x=3) == ["tool", "3", "--scale", "1.5"]
    assert _argv(Tool, tmp_path, x=3, verbose=True, names=["a", "b"]) == [
        "tool",
        "3",
        "--scale",
        "1.5",
        "--verbose",
        "--names",
        "a",
        "b",
    ]
    with pytest.raises(SpecError, match="'x'"):
        Tool(x="three")


def test_literal_words_keep_their_place(tmp_path: Path) -> None:
    """Fixed words after the command stay where the template puts them."""
    Grid = shell.define("mrgrid <in_file:File> regrid <out|out_file:File> -voxel <voxel:float>")
    src = tmp_path / "a.mif"
    src.write_text("x")
    argv = _argv(Grid, tmp_path, in_file=src, voxel=0.5)
    assert argv[:3] == ["mrgrid", str(src), "regrid"]
    assert argv[-2:] == ["-voxel", "0.5"]


def test_derived_names() -> None:
    """Without ``name=``, a readable name comes from the command, absolute paths included."""
    assert shell.define("cp <a:File> <out|b:File>")._task_name == "cp"
    abs_tool = shell.define("/usr/bin/python3 /data/tools/resample.py <a:File> <out|b:File>")
    assert abs_tool._task_name == "resample"
    assert shell.define("/opt/bin/bet <a:File>")._task_name == "bet"
    assert shell.define("cp <a:File> <out|b:File>", name="Copy")._task_name == "Copy"


def test_bad_templates_are_reported() -> None:
    """Unknown types, a missing command and duplicate fields are definition errors."""
    with pytest.raises(SpecError, match="Frob"):
        shell.define("tool <x:Frob>")
    with pytest.raises(SpecError, match="no command"):
        shell.define("<x:int>")
    with pytest.raises(SpecError, match="twice"):
        shell.define("tool <x:int> <x:int>")


def _write_script(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(0o755)
    return path


def test_absolute_command_split_run(tmp_path: Path, cache_dir: Path, worker: str) -> None:
    """A command given by absolute path runs from any job directory, split over inputs."""
    script = _write_script(
        tmp_path / "tools" / "double.py" if (tmp_path / "tools").mkdir() is None else tmp_path,
        "import sys\nopen(sys.argv[2], 'w').write(str(2 * int(open(sys.argv[1]).read())))\n",
    )
    inputs = []
    for i in range(3):
        path = tmp_path / f"n{i}.txt"
        path.write_text(str(i + 1))
        inputs.append(path)
    Double = shell.define(f"{sys.executable} {script} <in_file:File> <out|out_file:File>")
    assert Double._task_name == "double"
    with Submitter(cache_dir=cache_dir, worker=worker) as sub:
        result = sub(Double().split(in_file=inputs))
    assert not result.errored, result.errors
    assert [Path(p).read_text() for p in result.outputs.out_file] == ["2", "4", "6"]
    for path, job_dir in zip(result.outputs.out_file, result.job_dirs, strict=True):
        assert Path(path).parent == job_dir
    assert result.outputs.return_code == [0, 0, 0]


def test_standard_outputs(cache_dir: Path) -> None:
    """Every shell task outputs return_code, stdout and stderr, also kept as files."""
    Echo = shell.define("sh -c <script:str>")
    with Submitter(cache_dir=cache_dir) as sub:
        result = sub(Echo(script="echo out; echo err >&2"))
    assert result.outputs.return_code == 0
    assert result.outputs.stdout == "out\n"
    assert result.outputs.stderr == "err\n"
    assert (result.output_dir / "stdout.txt").read_text() == "out\n"


def test_failing_command_shows_command_and_stderr_tail(cache_dir: Path) -> None:
    """A non-zero exit fails the job; the error has the command line and stderr's tail."""
    Fail = shell.define("sh -c <script:str>")
    script = "for i in $(seq 1 50); do echo line$i >&2; done; exit 3"
    with Submitter(cache_dir=cache_dir) as sub:
        result = sub(Fail(script=script))
    assert result.errored
    failure = result.errors[0]
    assert failure.error_type == "CommandError"
    assert "exited with code 3" in failure.message
    assert "sh -c" in failure.message
    assert "line50" in failure.message and "line10\n" not in failure.message
    assert (failure.output_dir / "_error.json").exists()
    assert not (failure.output_dir / "_result.pkl").exists()
    with pytest.raises(Exception, match="exited with code 3"):
        Fail(script=script)(cache_dir=cache_dir)


def test_missing_executable_fails_clearly(cache_dir: Path) -> None:
    """A command that cannot be started fails its job, naming the command."""
    Nope = shell.define("/nonexistent/tool <x:int>")
    with Submitter(cache_dir=cache_dir) as sub:
        result = sub(Nope(x=1))
    assert result.errored and "/nonexistent/tool" in result.errors[0].message


def test_missing_output_file_fails(cache_dir: Path) -> None:
    """An output the command did not create fails the job, naming the output."""
    Lazy = shell.define("true <out|result:File>")
    with Submitter(cache_dir=cache_dir) as sub:
        result = sub(Lazy())
    assert result.errored and "'result'" in result.errors[0].message


@shell.define
class Smooth:
    """Class form: positions, path templates and globbed outputs."""

    executable = "sh -c"
    script: str = shell.arg(position=1)
    name: str = shell.arg(position=2)
    in_file: File = shell.arg(position=3)
    fwhm: float = shell.arg(argstr="--fwhm=", default=4.0, position=-1)

    class Outputs:
        smoothed: File = shell.out(path_template="{in_file.stem}_smooth.txt", position=4)
        logs: list[File] = shell.out(glob="*.log")


def test_class_form(tmp_path: Path, cache_dir: Path) -> None:
    """The class form places arguments by position and collects templated and globbed outputs."""
    src = tmp_path / "brain.txt"
    src.write_text("data")
    script = 'cp "$1" "$2"; echo "$3" > a.log; echo x > b.log'
    task = Smooth(script=script, name="smooth", in_file=src)
    argv = Smooth.command_line(task.inputs.asdict(), tmp_path / "job")
    assert argv == [
        "sh",
        "-c",
        script,
        "smooth",
        str(src),
        str(tmp_path / "job" / "brain_smooth.txt"),
        "--fwhm=4.0",
    ]
    with Submitter(cache_dir=cache_dir) as sub:
        result = sub(task)
    assert not result.errored, result.errors
    assert Path(result.outputs.smoothed).read_text() == "data"
    assert [Path(p).name for p in result.outputs.logs] == ["a.log", "b.log"]
    assert (result.output_dir / "a.log").read_text() == "--fwhm=4.0\n"


def test_class_form_needs_an_executable() -> None:
    """A class without a usable executable is a definition error."""
    with pytest.raises(SpecError, match="executable"):

        @shell.define
        class NoExe:
            x: int = shell.arg()


def test_command_error_survives_pickling() -> None:
    """CommandError keeps its context across process boundaries."""
    import pickle

    err = CommandError("boom", command="cp a b", return_code=2, stderr="tail")
    back = pickle.loads(pickle.dumps(err))
    assert (back.command, back.return_code, back.stderr, str(back)) == ("cp a b", 2, "tail", "boom")
    assert os.fspath(File("/x")) == "/x"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("cp <in_file:File <out|out_file:File>", r"'<in_file:File' at position 3 is not a field"),
        ("cp <in_file:File> <out|out_file:File", r"'<out\|out_file:File' at position 18"),
        ("cp in_file:File> <out|out_file:File>", r"'in_file:File>' at position 3"),
        ("cp <in_file:File> <out|:File>", r"'<out\|:File>' at position 18"),
        (
            "cp <in_file:File> <out|copy:File=copy_{nope}.txt>",
            r"output 'copy' file name 'copy_\{nope\}.txt' uses \{nope\}, which is not an input",
        ),
    ],
    ids=["input-unclosed", "output-unclosed", "unopened", "output-unnamed", "unknown-field"],
)
def test_template_typos_are_refused_when_defined(template: str, message: str) -> None:
    """Each of these used to define a task (one with no inputs, one writing a file named
    '<out|out_file:File'), or failed only when a job ran."""
    with pytest.raises(SpecError, match=message):
        shell.define(template, name="Typo")


def test_output_file_names_may_use_inputs() -> None:
    Copy = shell.define("cp <in_file:File> <out|copy:File=copy_{in_file.stem}{suffix}>", name="C")
    assert set(Copy._output_fields) >= {"copy"}
