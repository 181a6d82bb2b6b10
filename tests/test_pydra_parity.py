"""Pydra 1.0 behaviours of Python task definitions (issue 18), written here from Pydra's
documented behaviour: arg/out declarations, the class form, how returned values map to
outputs, definition-time checks, repr, and the error for an unset input."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provgraph import (
    MissingInputError,
    MultiInputObj,
    ProvenanceStore,
    SpecError,
    SpecValueError,
    Submitter,
    TaskFailedError,
    python,
    workflow,
)
from provgraph import task_hash as provgraph_task_hash

try:
    from fileformats import generic
except ImportError:  # pragma: no cover - fileformats is an extra
    generic = None


def _run(task: Any, tmp_path: Path) -> Any:
    with Submitter(cache_dir=tmp_path / "cache", progress=False) as sub:
        result = sub(task)
    assert not result.errored, result.errors
    return result.outputs


def test_arg_and_out_declarations_add_help_defaults_and_types(tmp_path: Path) -> None:
    def scale(a: int, k: float = 2.0) -> float:
        return a * k

    Scale = python.define(
        scale,
        inputs={"a": python.arg(help="the value"), "k": python.arg(default=3.0)},
        outputs={"scaled": python.out(help="a times k")},
    )
    assert Scale._input_fields["a"].help == "the value" and Scale._input_fields["a"].type is int
    assert Scale._input_fields["k"].default == 3.0
    assert Scale._output_fields["scaled"].help == "a times k"
    assert Scale._output_fields["scaled"].type is float  # from the return annotation
    assert _run(Scale(a=2), tmp_path).scaled == 6.0
    Typed = python.define(scale, inputs={"a": float}, outputs={"b": float})
    assert Typed._input_fields["a"].type is float and list(Typed._output_fields) == ["b"]
    with pytest.raises(SpecError, match="not a parameter"):
        python.define(scale, inputs={"z": python.arg(help="?")})
    with pytest.raises(SpecError, match=r"python.arg\(name=...\)"):
        python.define(scale, inputs=[python.arg(help="no name")])


def test_the_class_form(tmp_path: Path) -> None:
    @python.define
    class Sample(python.Task["Sample.Outputs"]):
        """Sum and product."""

        a: int
        b: float = 2.0
        c: float = python.arg(default=1.0, help="an offset")

        class Outputs(python.Outputs):
            total: float
            product: float = python.out(help="a times b")

        @staticmethod
        def function(a: int, b: float, c: float) -> tuple[float, float]:
            return a + b + c, a * b

    assert list(Sample._input_fields) == ["a", "b", "c"]
    assert Sample._input_fields["a"].mandatory and Sample._input_fields["b"].default == 2.0
    assert Sample._input_fields["c"].help == "an offset"
    assert Sample._output_fields["product"].help == "a times b"
    assert Sample.__doc__ == "Sum and product." and Sample.function(1, 2.0, 0.0) == (3.0, 2.0)
    outputs = _run(Sample(a=3), tmp_path)
    assert (outputs.total, outputs.product) == (6.0, 6.0)
    with pytest.raises(SpecError, match="static method 'function'"):

        @python.define
        class NoFunction:
            a: int

    with pytest.raises(SpecError, match=r"inputs \['z'\] are not parameters"):

        @python.define
        class Mismatch:
            z: int

            @staticmethod
            def function(a: int) -> int:
                return a


def test_returned_values_map_to_outputs(tmp_path: Path) -> None:
    @python.define(outputs=["low", "high"])
    def Bounds(x: int) -> dict:
        return {"high": x + 1, "low": x - 1, "ignored": 0}

    outputs = _run(Bounds(x=5), tmp_path / "a")
    assert (outputs.low, outputs.high) == (4, 6)

    @python.define(outputs=["low", "high"])
    def Nothing(x: int) -> tuple[int, int]:
        return None  # type: ignore[return-value]

    outputs = _run(Nothing(x=1), tmp_path / "b")
    assert (outputs.low, outputs.high) == (None, None)

    @python.define(outputs=[])
    def SideEffect(x: int) -> None:
        return None

    assert _run(SideEffect(x=1), tmp_path / "c").asdict() == {}

    @python.define(outputs=["low", "high"])
    def Partial(x: int) -> dict:
        return {"low": x}

    with Submitter(cache_dir=tmp_path / "d", progress=False) as sub:
        failed = sub(Partial(x=1))
    assert failed.errored and "without ['high']" in failed.errors[0].message


def test_output_names_must_fit_the_return_annotation() -> None:
    # a SpecValueError: a SpecError and, as Pydra raises it, a ValueError
    with pytest.raises(SpecValueError, match=r"Length of the outputs \(3: .* \(2 values\)"):

        @python.define(outputs=["a", "b", "c"])
        def Two(x: int) -> tuple[int, int]:
            return x, x

    with pytest.raises(SpecError, match="return one int"):

        @python.define(outputs=["a", "b"])
        def One(x: int) -> int:
            return x

    with pytest.raises(SpecError, match="declares no output"):

        @python.define(outputs=[])
        def Something(x: int) -> int:
            return x

    @python.define(outputs=["a", "b"])
    def Loose(x: int) -> tuple:  # a bare tuple, or no annotation, says nothing: accepted
        return x, x

    assert list(Loose._output_fields) == ["a", "b"]


def test_repr_lists_the_inputs_set(tmp_path: Path) -> None:
    @python.define
    def Add(a: int, b: int = 10) -> int:
        return a + b

    assert repr(Add(a=1)) == "Add(a=1)"
    assert repr(Add(a=1, b=10)) == "Add(a=1, b=10)"
    assert repr(Add().split(a=[1, 2])) == "Add(a=[1, 2]).split('a')"


def test_an_unset_mandatory_input_is_a_value_error_too(tmp_path: Path) -> None:
    @python.define
    def Add(a: int, b: int) -> int:
        return a + b

    with (
        Submitter(cache_dir=tmp_path / "cache", progress=False) as sub,
        pytest.raises(ValueError, match="Mandatory field") as caught,
    ):
        sub(Add(a=1))
    assert isinstance(caught.value, MissingInputError) and isinstance(caught.value, SpecError)
    assert isinstance(caught.value, TypeError)  # as provgraph raised it before


def test_function_is_reachable_and_reserved() -> None:
    def double(a: int) -> int:
        return 2 * a

    Double = python.define(double)
    assert Double.function is double and Double(a=2).function(4) == 8
    with pytest.raises(SpecError, match="'function' is reserved"):

        @python.define
        def Uses(function: int) -> int:
            return function


def test_a_failing_task_called_directly_raises_its_own_error_type(tmp_path: Path) -> None:
    """Called directly, a task that raised ValueError raises an error that is both provgraph's
    TaskFailedError (with every failure listed) and a ValueError, as Pydra re-raises it."""
    from provgraph import TaskFailedError

    @python.define
    def Picky(x: int) -> int:
        if x < 0:
            raise ValueError(f"negative: {x}")
        if x == 0:
            raise FileNotFoundError("no zero file")
        return x

    with pytest.raises(ValueError, match="negative: -1") as caught:
        Picky(x=-1)(cache_dir=tmp_path / "a", progress=False)
    assert isinstance(caught.value, TaskFailedError)
    assert caught.value.errors[0].error_type == "ValueError"
    assert pickle.loads(pickle.dumps(caught.value)).args == caught.value.args  # it travels
    with pytest.raises(FileNotFoundError, match="no zero file") as other:
        Picky(x=0)(cache_dir=tmp_path / "b", progress=False)
    assert isinstance(other.value, TaskFailedError)
    assert other.value.errors[0].error_type == "FileNotFoundError"
    # it travels to another process and back (pickled, as pools and Dask send errors)
    sent = pickle.dumps(other.value)
    code = (
        "import pickle, sys; e = pickle.loads(sys.stdin.buffer.read()); print(type(e).__name__, e)"
    )
    back = subprocess.run(
        [sys.executable, "-c", code], input=sent, capture_output=True, check=True
    ).stdout.decode()
    assert back.startswith("TaskFailedFileNotFoundError Picky failed with errors")

    @python.define
    def Lookup(key: str) -> int:
        return {"a": 1}[key]

    with pytest.raises(TaskFailedError) as plain:  # KeyError's str() is a repr: kept plain
        Lookup(key="b")(cache_dir=tmp_path / "c", progress=False)
    assert not isinstance(plain.value, KeyError) and "KeyError" in str(plain.value)
    assert Picky(x=3)(cache_dir=tmp_path / "d", progress=False).out == 3


def test_a_path_input_may_name_what_the_task_creates(tmp_path: Path) -> None:
    """An input typed pathlib.Path that does not exist is a plain path (hashed by its name),
    as in Pydra; one that exists is hashed by content; File inputs must exist."""
    from provgraph import File, InputFileError

    @python.define
    def Write(target: Path, text: str) -> Path:
        target.write_text(text)
        return target

    @python.define
    def Read(source: File) -> str:
        return Path(source).read_text()

    target = tmp_path / "made.txt"
    outputs = _run(Write(target=target, text="hello"), tmp_path / "a")
    assert outputs.out == target and target.read_text() == "hello"
    with (
        Submitter(cache_dir=tmp_path / "b", progress=False) as sub,
        pytest.raises(InputFileError, match="does not exist"),
    ):
        sub(Read(source=tmp_path / "missing.txt"))


def test_workflow_output_types_are_checked_against_their_nodes() -> None:
    """A workflow output declared str but bound to an int output is refused at definition;
    a list where splitting makes one is accepted."""
    from provgraph import workflow

    @python.define
    def Count(text: str) -> int:
        return len(text)

    with pytest.raises(SpecError, match=r"output 'out' is declared str, but .* gives int"):

        @workflow.define
        def Wrong(text: str) -> str:
            return workflow.add(Count(text=text), name="count").out

    @workflow.define
    def Many(texts: list[str]) -> list[int]:
        return workflow.add(Count().split(text=texts), name="count").out

    assert list(Many._output_fields) == ["out"]


def test_shell_inputs_mutually_exclusive_or_required_together(tmp_path: Path) -> None:
    """shell.arg(xor=..., requires=...): inputs breaking a rule are refused before any command
    runs, with the fields named; names that are not inputs are refused at definition."""
    from provgraph import shell

    @shell.define
    class Greet:
        executable = "echo"
        loud: bool = shell.arg(default=False, argstr="-e", xor=["quiet"])
        quiet: bool = shell.arg(default=False, argstr="-n", xor=["loud"])
        name: str = shell.arg(default=None, position=-1, requires=["greeting"])
        greeting: str = shell.arg(default=None, position=-2)

    assert _run(Greet(loud=True, greeting="hi", name="you"), tmp_path / "a").stdout == "hi you\n"
    with Submitter(cache_dir=tmp_path / "b", progress=False) as sub:
        with pytest.raises(SpecError, match="'loud' and 'quiet' are mutually exclusive"):
            sub(Greet(loud=True, quiet=True))
        with pytest.raises(SpecError, match=r"'name' requires \['greeting'\]"):
            sub(Greet(name="you"))
    assert not list((tmp_path / "b").glob("Greet-*/stdout.txt"))  # no command ran
    with pytest.raises(SpecError, match=r"names \['lodu'\] in xor="):

        @shell.define
        class Typo:
            executable = "echo"
            loud: bool = shell.arg(default=False, argstr="-e", xor=["lodu"])


def test_class_form_inherits_fields_and_keeps_helpers(tmp_path: Path) -> None:
    """Fields of base classes (and of a task class used as base) are inherited; helpers and
    constants stay on the task class; T.Outputs is the class's; the class name is kept; a
    function parameter the class does not declare is refused at definition."""

    class Offsets:
        offset: int = 1

    @python.define
    class Shifted(Offsets):
        FACTOR = 10
        x: int

        class Outputs:
            out: int

        @staticmethod
        def scale(v: int) -> int:
            return v * Shifted.FACTOR

        @staticmethod
        def function(x: int, offset: int) -> int:
            return Shifted.scale(x) + offset

    assert set(Shifted._input_fields) == {"offset", "x"} and Shifted.__name__ == "Shifted"
    assert "out" in Shifted.Outputs.__annotations__ and Shifted._input_fields["offset"].default == 1
    assert _run(Shifted(x=2), tmp_path).out == 21

    with pytest.raises(SpecError, match=r"needs \['b'\], which the class does not declare"):

        @python.define
        class Undeclared:
            a: int

            @staticmethod
            def function(a: int, b: int) -> int:
                return a + b


def test_declarations_of_the_wrong_kind_are_refused() -> None:
    def f(a: int) -> int:
        return a

    with pytest.raises(SpecError, match=r"inputs\['a'\].*expected a type or python.arg"):
        python.define(f, inputs={"a": python.out(help="wrong")})
    with pytest.raises(SpecError, match="not its name as text"):
        python.define(f, outputs={"out": "int"})


def test_loose_return_annotations_accept_several_outputs(tmp_path: Path) -> None:
    """Optional tuples, lists and dicts say nothing against several names: accepted, and the
    values map at run time."""

    @python.define(outputs=["a", "b"])
    def Maybe(x: int) -> tuple[int, int] | None:
        return None if x < 0 else (x, x + 1)

    @python.define(outputs=["a", "b"])
    def AsList(x: int) -> list[int]:
        return [x, x * 2]

    assert (_run(Maybe(x=1), tmp_path / "a").b, _run(AsList(x=3), tmp_path / "b").b) == (2, 6)


def test_rules_are_checked_at_definition_when_they_can_be() -> None:
    """An xor input with a default that excludes the others is refused; in a workflow, constant
    inputs breaking a rule are refused when the workflow is defined, before anything runs."""
    from provgraph import shell, workflow

    with pytest.raises(SpecError, match="could never be set"):

        @shell.define
        class Stuck:
            executable = "echo"
            mode: str = shell.arg(default="fast", argstr="--mode", xor=["preset"])
            preset: str = shell.arg(default=None, argstr="--preset")

    @shell.define
    class Say:
        executable = "echo"
        a: str = shell.arg(default=None, argstr="-a", xor=["b"])
        b: str = shell.arg(default=None, argstr="-b", xor=["a"])

    with pytest.raises(SpecError, match="'a' and 'b' are mutually exclusive"):

        @workflow.define
        def Both(x: str) -> str:
            return workflow.add(Say(a="1", b="2"), name="say").stdout

    @workflow.define
    def Connected(x: str) -> str:  # a connection's value is not known yet: checked per job
        return workflow.add(Say(a=x), name="say").stdout

    assert list(Connected._output_fields) == ["out"]


def test_combined_failures_travel_between_processes() -> None:
    """Every TaskFailedError-and-builtin pair pickles, also with tblib's exception pickling
    installed (as Dask installs it)."""
    from provgraph.exceptions import TASK_FAILED_AS

    support = pytest.importorskip("tblib.pickling_support", reason="tblib comes with dask")
    support.install()
    for name, kind in TASK_FAILED_AS.items():
        back = pickle.loads(pickle.dumps(kind(f"failed with {name}", errors=[])))
        assert type(back) is kind and str(back) == f"failed with {name}"


def test_multi_input_obj_takes_one_value_or_a_list(tmp_path: Path) -> None:
    """MultiInputObj[int] holds a list whether given one value or several; one value and a
    one-item list are the same job; a single connection can feed it in a workflow."""
    from provgraph import workflow

    @python.define
    def Total(values: MultiInputObj[int]) -> int:
        return sum(values)

    assert Total(values=3).values == [3] and Total(values=[1, 2]).values == [1, 2]
    with pytest.raises(SpecError, match="values"):
        Total(values="three")
    with Submitter(cache_dir=tmp_path / "cache", progress=False) as sub:
        assert sub(Total(values=3)).outputs.out == 3
        assert sub(Total(values=[3])).stats["reused"] == 1  # the same job

    @python.define
    def Double(x: int) -> int:
        return 2 * x

    @workflow.define
    def Chain(x: int) -> int:
        one = workflow.add(Double(x=x), name="double")
        return workflow.add(Total(values=one.out), name="total").out

    assert _run(Chain(x=4), tmp_path / "wf").out == 8


def test_calling_a_task_with_pydras_cache_root_and_a_worker(tmp_path: Path) -> None:
    """Task(...)(cache_root=..., worker="cf") runs it on a real pool, in that cache."""

    @python.define
    def Square(x: int) -> int:
        return x * x

    outputs = Square().split(x=[1, 2, 3])(
        cache_root=tmp_path / "cache", worker="cf", n_procs=2, progress=False
    )
    assert outputs.out == [1, 4, 9] and list((tmp_path / "cache").glob("Square-*"))
    with pytest.raises(SpecError, match="cache_root is another name for cache_dir"):
        Submitter(cache_dir=tmp_path / "a", cache_root=tmp_path / "b")


# -- workflows built from input values (difference 7) ---------------------------------------


@workflow.define(dynamic=True)
def Chosen(x: int, loud: bool, copies: int = 1) -> str:
    """Branches on an input value, loops over another, and uses tasks defined below it."""
    said = ""
    for k in range(copies):
        task = Shout(x=x + k, before=said) if loud else Whisper(x=x + k, before=said)
        said = workflow.add(task, name=f"say{k}").out
    return said


@python.define
def Shout(x: int, before: str = "") -> str:
    return f"{before}{x}!"


@python.define
def Whisper(x: int, before: str = "") -> str:
    return f"{before}({x})"


def test_dynamic_workflow_is_built_from_its_input_values(tmp_path: Path) -> None:
    with Submitter(cache_dir=tmp_path) as sub:
        loud = sub(Chosen(x=1, loud=True, copies=3))
        quiet = sub(Chosen(x=1, loud=False))
        again = sub(Chosen(x=1, loud=True, copies=3))
    assert loud.outputs.out == "1!2!3!" and quiet.outputs.out == "(1)"
    assert again.output_dir == loud.output_dir  # the same values: the same graph, reused
    assert sum(stats["executed"] for stats in again.node_stats.values()) == 0
    assert set(loud.node_stats) > {"Chosen/say2"} and "Chosen/say1" not in quiet.node_stats


def test_dynamic_workflow_inside_a_static_one(tmp_path: Path) -> None:
    @workflow.define
    def Outer(x: int) -> str:
        return workflow.add(Chosen(x=5, loud=True, copies=2)).out

    assert Outer(x=0)(cache_dir=tmp_path).out == "5!6!"
    with pytest.raises(MissingInputError, match=r"Mandatory field 'loud' is not set"):
        Chosen(x=1)(cache_dir=tmp_path)


@python.define
def HowMany(n: int) -> int:
    return n


@workflow.define
def FromUpstream(n: int, x: int) -> str:
    count = workflow.add(HowMany(n=n))
    return workflow.add(Chosen(x=x, loud=True, copies=count.out)).out


def test_dynamic_workflow_built_per_job_when_split_or_connected(tmp_path: Path) -> None:
    """Each job of a split or connected dynamic workflow is built from its own values, when
    the engine opens it: elements of one split may have different graphs."""
    with Submitter(cache_dir=tmp_path, progress=False) as sub:
        by_copies = sub(Chosen(x=1, loud=True).split(copies=[1, 3]))
        by_x = sub(Chosen(loud=False, copies=2).split(x=[1, 5]))
        upstream = sub(FromUpstream(x=7).split(n=[1, 2]))
        again = sub(Chosen(x=1, loud=True).split(copies=[1, 3]))
    assert by_copies.outputs.out == ["1!", "1!2!3!"]
    assert by_x.outputs.out == ["(1)(2)", "(5)(6)"]
    assert upstream.outputs.out == ["7!", "7!8!"]
    assert sum(stats["executed"] for stats in again.node_stats.values()) == 0
    # the element with three copies has three nodes (its first the other's, reused), the
    # other one
    assert set(by_copies.node_stats) == {
        "Chosen[0]/say0",
        "Chosen[1]/say0",
        "Chosen[1]/say1",
        "Chosen[1]/say2",
    }
    assert by_copies.node_stats["Chosen[1]/say0"]["reused"] == 1
    steps = ProvenanceStore(tmp_path).query(
        "SELECT ?run (COUNT(DISTINCT ?step) AS ?n) WHERE { ?run a pg:WorkflowRun ; "
        "pg:taskName 'Chosen' . GRAPH ?run { ?plan pg:hasStep ?step } } GROUP BY ?run"
    )
    # each element's workflow run records the graph its own values built: 1 and 3 steps (by
    # copies, twice: a workflow built per job is opened again, its jobs all reused), 2 and 2
    # (by x), 1 and 2 (from upstream)
    assert sorted(int(n) for _, n in steps) == [1, 1, 1, 2, 2, 2, 3, 3]


def test_dynamic_workflow_per_job_on_cf(tmp_path: Path) -> None:
    with Submitter(cache_dir=tmp_path, worker="cf", n_procs=2, progress=False) as sub:
        result = sub(FromUpstream(x=2).split(n=[3, 1]))
    assert result.outputs.out == ["2!3!4!", "2!"] and not result.errored


@workflow.define
def TwoSteps(x: int) -> str:
    first = workflow.add(Shout(x=x), name="first")
    return workflow.add(Shout(x=x, before=first.out), name="second").out


def test_propagate_rerun_false_reruns_only_the_submitted_task(tmp_path: Path) -> None:
    with Submitter(cache_dir=tmp_path) as sub:
        sub(TwoSteps(x=1))
        shallow = sub(TwoSteps(x=1), rerun=True, propagate_rerun=False)
        deep = sub(TwoSteps(x=1), rerun=True)
    assert shallow.outputs.out == deep.outputs.out == "1!1!"
    inner = ("TwoSteps/first", "TwoSteps/second")
    assert [shallow.node_stats[n]["executed"] for n in inner] == [0, 0]
    assert [deep.node_stats[n]["executed"] for n in inner] == [1, 1]
    with pytest.raises(SpecError, match=r"propagate_rerun='no'"):
        Submitter(cache_dir=tmp_path)(TwoSteps(x=1), propagate_rerun="no")  # type: ignore[call-overload]


def test_file_mock_and_sample(tmp_path: Path) -> None:
    from provgraph import File, InputFileError, shell

    Cat = shell.define("cat <path:File>")
    mocked = File.mock("nowhere/a.txt")
    assert Cat.command_line({"path": mocked}, tmp_path) == [
        "cat",
        str(Path("nowhere/a.txt").absolute()),
    ]
    with pytest.raises(InputFileError, match=r"does not exist"):
        Cat(path=mocked)(cache_dir=tmp_path / "cache")
    one, same = File.sample(tmp_path, seed=1), File.sample(tmp_path / "b", seed=1)
    other = File.sample(tmp_path, seed=2)
    assert one.read_bytes() == same.read_bytes() != other.read_bytes()
    assert one.stat().st_size == 256 and one.parent == tmp_path


def test_split_container_ndim_zips_a_nested_list_with_an_outer_product(tmp_path: Path) -> None:
    """Pydra's container_ndim: x, a 2-level list, zipped with the 2x2 outer product a x v."""
    from provgraph import SplitterError

    @python.define
    def Label(a: int, v: str, x: int) -> str:
        return f"{a}{v}{x}"

    values = dict(a=[1, 2], v=["a", "b"], x=[[10, 100], [20, 200]])
    split = Label().split((["a", "v"], "x"), container_ndim={"x": 2}, **values)
    assert split(cache_dir=tmp_path).out == ["1a10", "1b100", "2a20", "2b200"]
    with pytest.raises(SplitterError, match=r"has 1"):
        Label().split((["a", "v"], "x"), container_ndim={"x": 2}, a=[1], v=["a"], x=[3])
    with pytest.raises(SplitterError, match=r"'b', which is not split over"):
        Label().split("a", container_ndim={"b": 2}, a=[1])


_DYNAMIC_MODULE = """
import sys
from provgraph import Submitter, python, workflow

@python.define
def Inner(x: int) -> int:
    return x * 10

@workflow.define(dynamic=True)
def Dyn(x: int) -> int:
    return workflow.add(Inner(x=x), name="inner").out

with Submitter(cache_dir=sys.argv[1], progress=False) as sub:
    print(sub(Dyn().split(x=[1, 2])).outputs.out)
"""


def test_split_dynamic_workflow_sees_a_changed_inner_task(tmp_path: Path) -> None:
    """A workflow built per job is opened again at each submission (its job hash cannot
    cover the graph its values build): a task changed inside it runs again."""
    script = tmp_path / "dyn.py"
    cache = tmp_path / "cache"
    outputs = []
    for body in ("x * 10", "x * 1000"):
        script.write_text(_DYNAMIC_MODULE.replace("x * 10", body))
        done = subprocess.run(
            [sys.executable, str(script), str(cache)], capture_output=True, text=True, check=True
        )
        outputs.append(done.stdout.strip())
    assert outputs == ["[10, 20]", "[1000, 2000]"]


@python.define
def Stamped(x: int, log: str) -> int:
    with open(log, "a") as fh:
        fh.write(f"{x}\n")
    return x


@workflow.define(dynamic=True)
def AlwaysAgain(x: int, log: str) -> int:
    return workflow.add(Stamped(x=x, log=log), name="stamp", rerun=True).out


@workflow.define(dynamic=True)
def Picky(x: int) -> int:
    if x == 2:
        raise ValueError("no graph for 2")
    return workflow.add(HowMany(n=x)).out


def test_split_dynamic_workflow_keeps_rerun_nodes_and_element_failures(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    with Submitter(cache_dir=tmp_path / "cache", progress=False) as sub:
        for _ in range(2):
            sub(AlwaysAgain(log=str(log)).split(x=[1, 2]))
        picky = sub(Picky().split(x=[1, 2, 3]))
    # a node added with rerun=True runs at every submission, inside a per-job graph too
    assert sorted(log.read_text().split()) == ["1", "1", "2", "2"]
    # a constructor that fails on one element's values fails that element only
    assert picky.errored and picky.outputs.out == [1, None, 3]
    (failure,) = picky.errors
    assert failure.error_type == "ValueError" and "no graph for 2" in failure.message
    runs = ProvenanceStore(tmp_path / "cache").runs()
    assert [run["status"] for run in runs if run["task"] == "Picky"] == ["partial"]


@python.define
def Plus(a: Any) -> Any:
    return a + 1


@workflow.define
def Upstream(x: Any) -> Any:
    first = workflow.add(Plus(a=x), name="first")
    return workflow.add(Plus(a=first.out), name="second").out


def test_a_failed_submission_says_it_failed_with_errors(tmp_path: Path) -> None:
    """As Pydra says it: the submitted task 'failed with errors', naming the failed node."""
    with pytest.raises(TypeError) as caught:  # the task's own error type, as in Pydra
        Upstream(x="hi")(cache_dir=tmp_path)
    text = str(caught.value)
    assert text.startswith("Upstream failed with errors (1 job(s) failed, 1 skipped)")
    assert "Upstream/first" in text


def test_readonly_caches_takes_one_path(tmp_path: Path) -> None:
    with Submitter(cache_dir=tmp_path / "lab", progress=False) as sub:
        sub(HowMany(n=4))
    with Submitter(cache_dir=tmp_path / "own", readonly_caches=tmp_path / "lab") as sub:
        again = sub(HowMany(n=4))
    assert again.outputs.out == 4 and again.stats["reused"] == 1


def test_python_arg_allowed_values(tmp_path: Path) -> None:
    @python.define(inputs={"mode": python.arg(allowed_values=["mean", "max"])})
    def Reduce(values: list[float], mode: str) -> float:
        return sum(values) / len(values) if mode == "mean" else max(values)

    assert Reduce(values=[1.0, 3.0], mode="max")(cache_dir=tmp_path).out == 3.0
    with pytest.raises(SpecValueError, match=r"input 'mode': got 'median'; the value of mode has"):
        Reduce(values=[1.0], mode="median")
    with pytest.raises(SpecError, match="expected a list of values"):
        python.arg(allowed_values="mean")


def test_task_hash_names_the_directory_a_submission_uses(tmp_path: Path) -> None:
    from provgraph import task_hash

    tasks = [HowMany(n=3), HowMany().split(n=[1, 2]), FromUpstream(n=2, x=1), TwoSteps(x=4)]
    with Submitter(cache_dir=tmp_path, progress=False) as sub:
        for task in tasks:
            assert sub(task).output_dir.name.endswith("-" + task_hash(task))
    assert task_hash(HowMany(n=3)) != task_hash(HowMany(n=4))
    with pytest.raises(MissingInputError):
        task_hash(HowMany())


def test_a_returned_dict_maps_by_name(tmp_path: Path) -> None:
    """As in Pydra: keys that are not outputs are left out, an optional output the dict
    leaves out is None; a mandatory one missing is an error naming it."""

    @python.define(outputs={"total": int, "product": int | None})
    def Both(a: int, b: int) -> dict:
        return {"total": a + b, "difference": a - b}

    out = Both(a=2, b=3)(cache_dir=tmp_path)
    assert out.total == 5 and out.product is None and "difference" not in list(out)

    @python.define(outputs={"total": int, "product": int})
    def Strict(a: int) -> dict:
        return {"total": a}

    with pytest.raises(TaskFailedError, match=r"returned a dict without \['product'\]"):
        Strict(a=1)(cache_dir=tmp_path)


@workflow.define
def PassThrough(x: int) -> int:
    return x  # an input passed straight through: no node


@workflow.define
def AroundPassThrough(x: int) -> int:
    before = workflow.add(HowMany(n=x), name="before")
    through = workflow.add(PassThrough(x=before.out))
    return workflow.add(Plus(a=through.out), name="after").out


def test_a_workflow_output_may_be_one_of_its_inputs(tmp_path: Path) -> None:
    """As in Pydra: no identity node needed; the value's provenance goes through it."""
    with Submitter(cache_dir=tmp_path, progress=False) as sub:
        assert sub(PassThrough(x=5)).outputs.out == 5
        assert sub(PassThrough().split(x=[1, 2])).outputs.out == [1, 2]
        around = sub(AroundPassThrough(x=3))
    assert around.outputs.out == 4 and not around.errored
    # the 'after' job used what the 'before' job generated, through the workflow
    rows = ProvenanceStore(tmp_path).query(
        "SELECT ?up WHERE { ?after pg:nodeName 'AroundPassThrough/after' ; prov:used ?e . "
        "?e prov:wasGeneratedBy ?up . ?up pg:nodeName 'AroundPassThrough/before' }"
    )
    assert len(list(rows)) == 1


def test_calling_a_task_may_rerun_it(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    task = Stamped(x=1, log=str(log))
    task(cache_dir=tmp_path / "cache")
    task(cache_dir=tmp_path / "cache")  # reused
    task(cache_dir=tmp_path / "cache", rerun=True)  # as sub(task, rerun=True)
    assert log.read_text().split() == ["1", "1"]


class _Point:
    """A user's class: one value, not a tuple."""


def test_a_function_annotated_none_has_no_outputs_and_must_return_none(tmp_path: Path) -> None:
    @python.define
    def Log(a: int) -> None:
        print(a)

    assert Log._output_fields == {}
    assert _run(Log(a=1), tmp_path).asdict() == {}

    @python.define(outputs=[])
    def Leaky(a: int):  # type: ignore[no-untyped-def]
        return a

    with pytest.raises(ValueError, match="No output fields were specified for Leaky") as caught:
        Leaky(a=1)(cache_dir=tmp_path / "c2", progress=False)
    assert isinstance(caught.value, TaskFailedError)


def test_several_output_names_for_one_returned_value_are_refused_at_definition() -> None:
    with pytest.raises(SpecValueError, match=r"Multiple outputs specified \(\['a', 'b'\]\)"):

        @python.define(outputs=["a", "b"])
        def Mono(x: int) -> _Point:
            return _Point()


def test_a_wrong_count_of_returned_values_names_the_count_expected(tmp_path: Path) -> None:
    @python.define(outputs=["a", "b", "c"])
    def Pair(x: float):  # type: ignore[no-untyped-def]
        return x, x

    with pytest.raises(ValueError, match="expected 3 elements"):
        Pair(x=1.0)(cache_dir=tmp_path, progress=False)


def test_a_returned_value_of_the_wrong_type_fails_as_a_type_error(tmp_path: Path) -> None:
    @python.define(outputs={"n": python.out(type=int)})
    def Half(x):  # type: ignore[no-untyped-def]
        return x / 2

    with pytest.raises(TypeError, match=r"output 'n' of Half: got 1.5 \(float\), expected int"):
        Half(x=3)(cache_dir=tmp_path, progress=False)


def test_definition_mistakes_are_value_errors_worded_as_in_pydra() -> None:
    with pytest.raises(ValueError, match="The argument 'function' is reserved"):

        @python.define
        def Apply(function: Any) -> Any:
            return function

    with pytest.raises(ValueError, match="Only named Arg objects should be provided as inputs"):

        @python.define(inputs=[python.arg(help="an int")])
        def Twice(a: int) -> int:
            return 2 * a


def test_a_default_may_be_an_attrs_factory() -> None:
    import attrs

    @python.define(inputs={"items": python.arg(default=attrs.Factory(list))})
    def Count(items: list[int]) -> int:
        return len(items)

    assert Count().items == []
    with pytest.raises(SpecError, match="takes_self"):

        @python.define(inputs={"items": python.arg(default=attrs.Factory(list, takes_self=True))})
        def Bad(items: list[int]) -> int:
            return len(items)


def test_a_workflow_output_of_the_wrong_type_fails_when_the_workflow_finishes(
    tmp_path: Path,
) -> None:
    @python.define(outputs=["total", "each"])
    def Scaled(k, values):  # type: ignore[no-untyped-def]  # no types to check at definition
        each = [k * v for v in values]
        return sum(each), each

    @workflow.define(outputs={"alpha": int, "beta": list[int]})
    def Wrong(k: int, values: list[int]):  # type: ignore[no-untyped-def]
        s = workflow.add(Scaled(k=k, values=values))
        return s.each, s.each  # alpha declared int, given the list

    with pytest.raises(TypeError, match="Incorrect type for lazy field in 'alpha' field of Wrong"):
        Wrong(k=1, values=[1, 2])(cache_dir=tmp_path, progress=False)

    @workflow.define(outputs={"alpha": int})
    def PerElement(values: list[int]) -> int:
        s = workflow.add(Scaled(values=values).split("k", k=[1, 2]))
        return s.total  # a list from a split node: each item an int, as declared

    assert PerElement(values=[1, 2])(cache_dir=tmp_path, progress=False).alpha == [3, 6]


@pytest.mark.skipif(generic is None, reason="fileformats is not installed")
def test_a_missing_path_for_a_fileformats_input_is_refused_when_the_task_is_made(
    tmp_path: Path,
) -> None:
    from provgraph import InputFileError

    @python.define
    def Size(f: generic.File) -> int:
        return len(Path(f).read_bytes())

    with pytest.raises(FileNotFoundError, match=r"do not exist \(nothing is there\)") as caught:
        Size(f=tmp_path / "absent.txt")
    assert isinstance(caught.value, InputFileError) and caught.value.field == "f"
    (tmp_path / "real.txt").write_text("x")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    (tmp_path / "real.txt").unlink()
    with pytest.raises(InputFileError, match="a broken link is there"):
        Size(f=tmp_path / "link.txt")

    @python.define
    def Either(f: generic.File | str) -> str:
        return str(f)

    assert Either(f="just text").f == "just text"  # the str member takes it


def test_a_multi_output_obj_gives_one_item_alone(tmp_path: Path) -> None:
    from provgraph import MultiOutputObj

    @python.define(outputs={"values": python.out(type=MultiOutputObj[float])})
    def Values(n: int, bad: bool = False):  # type: ignore[no-untyped-def]
        return ["not a number"] if bad else [float(i) for i in range(n)]

    assert Values(n=1)(cache_dir=tmp_path, progress=False).values == 0.0
    assert Values(n=2)(cache_dir=tmp_path, progress=False).values == [0.0, 1.0]
    with pytest.raises(TypeError, match="output 'values' of Values"):
        Values(n=1, bad=True)(cache_dir=tmp_path, progress=False)


def test_several_outputs_may_come_from_a_collection_annotation(tmp_path: Path) -> None:
    import collections.abc

    @python.define(outputs=["a", "b"])
    def Pair(x: int) -> collections.abc.Sequence:  # type: ignore[type-arg]
        return x, x + 1

    assert _run(Pair(x=1), tmp_path).asdict() == {"a": 1, "b": 2}


def test_a_missing_input_file_error_travels_between_processes() -> None:
    from provgraph import InputFileError

    support = pytest.importorskip("tblib.pickling_support", reason="tblib comes with dask")
    support.install()
    try:
        raise InputFileError("input 'f': gone", field="f", path="/x")
    except InputFileError as err:
        back = pickle.loads(pickle.dumps(err))
    assert type(back) is InputFileError and (back.field, back.path) == ("f", "/x")


if generic is not None:

    class Notes(generic.File):  # a user's own format, defined outside fileformats' packages
        ext = ".notes"


@pytest.mark.skipif(generic is None, reason="fileformats is not installed")
def test_a_users_own_fileformats_class_is_a_file_type(tmp_path: Path) -> None:
    path = tmp_path / "a.notes"
    path.write_text("first")

    @python.define
    def Read(doc: Notes) -> Notes:
        return doc

    task = Read(doc=path)  # converted to the user's format when the task is made
    assert isinstance(task.doc, Notes)
    out = _run(task, tmp_path)
    assert isinstance(out.out, Notes) and Path(out.out.fspath).read_text() == "first"
    before = provgraph_task_hash(task)
    path.write_text("second")  # hashed by content, as fileformats' own classes are
    assert provgraph_task_hash(Read(doc=path)) != before


def test_get_fields_lists_a_definitions_fields_by_name() -> None:
    from provgraph import get_fields

    @python.define(outputs={"total": python.out(type=int, help="the sum")})
    def Sum(a: int, b: int = 2) -> int:
        return a + b

    assert list(get_fields(Sum)) == ["a", "b"] and get_fields(Sum)["b"].default == 2
    assert list(get_fields(Sum(a=1))) == ["a", "b"]
    assert get_fields(Sum.Outputs)["total"].help == "the sum"
    with pytest.raises(SpecError, match=r"get_fields\(3\): expected a task class"):
        get_fields(3)


def test_get_fields_of_a_class_forms_own_outputs() -> None:
    from provgraph import get_fields

    @python.define
    class Halves:
        x: float

        class Outputs:
            half: float

        @staticmethod
        def function(x: float) -> float:
            return x / 2

    assert list(get_fields(Halves.Outputs)) == ["half"]
