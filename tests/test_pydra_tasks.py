"""Pydra task packages and fileformats on provgraph (issue 19): the seed's MrGrid walkthrough
on the real ``mrgrid``, command lines of translated definitions compared with Pydra's own,
and fileformats classes as provgraph's types."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from provgraph import ProvenanceStore, SpecError, Submitter, python, workflow

if os.environ.get("PROVGRAPH_CI") != "1":  # under CI these are installed: never skipped
    pytest.importorskip("pydra.tasks.mrtrix3", reason="pydra-tasks-mrtrix3 is not installed")
    pytest.importorskip("fileformats.medimage", reason="fileformats-medimage is not installed")

from fileformats.generic import File as FFile
from fileformats.medimage import Nifti1, NiftiGz, NiftiGzX
from pydra.tasks.mrtrix3.v3_1 import MrGrid

from conftest import requires, requires_slurm
from provgraph.spec._pydra import from_pydra, translate
from pydra_twins import pydra_argv

ROOT = Path(__file__).resolve().parents[1]


def _own_argv(task: object, job_dir: Path) -> list[str]:
    from provgraph.engine.plan import check_value

    own = from_pydra(task)
    inputs = {
        n: check_value(f, own._values[n])
        for n, f in type(own)._input_fields.items()
        if not f.left_implicit(own._values[n])
        and own._values[n] is not None
        and own._values[n] is not __import__("attrs").NOTHING
    }
    return type(own).command_line(inputs, job_dir)


@pytest.fixture
def niftis(tmp_path: Path) -> list:
    folder = tmp_path / "nifti"
    folder.mkdir()
    return [Nifti1.sample(folder, seed=i) for i in range(3)]


@pytest.mark.parametrize(
    "values",
    [
        dict(operation="regrid", voxel=[0.5]),
        dict(operation="regrid", voxel=[0.5, 0.5, 1.0], interp="linear", nthreads=2),
        dict(operation="crop", axis=[(0, 1), (2, 3)], all_axes=True, fill=0.5),
        dict(operation="pad", uniform=2, strides=[1, 2, 3], datatype="float32"),
    ],
)
def test_mrgrid_command_line_is_pydras(values: dict, niftis: list, tmp_path: Path) -> None:
    task = MrGrid(in_file=niftis[0], **values)
    assert _own_argv(task, tmp_path) == pydra_argv(
        MrGrid, {"in_file": niftis[0], **values}, tmp_path
    )


def test_second_package_command_line_without_its_binary(tmp_path: Path) -> None:
    """pydra-tasks-dcm2niix's definition (its binary is not installed here): the same
    command line as Pydra's, word for word."""
    from fileformats.medimage import DicomDir
    from pydra.tasks.dcm2niix import Dcm2Niix

    source = DicomDir.sample(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    values = dict(in_dir=source, out_dir=out, compress="y", bids="y", filename="sub")
    ours = _own_argv(Dcm2Niix(**values), tmp_path)
    assert ours == pydra_argv(Dcm2Niix, values, tmp_path)
    assert ours[0] == "dcm2niix" and ours[-1] == str(source) and "-z" in ours


def test_translation_is_made_once_per_class() -> None:
    assert translate(MrGrid) is translate(MrGrid)
    own = translate(MrGrid)
    assert own._output_fields["out_file"].settable and own._input_fields["operation"].allowed_values
    with pytest.raises(SpecError, match=r"input 'operation': got 'twist'"):
        from_pydra(MrGrid(operation="regrid")).split(operation=["twist"])


def test_pydra_python_tasks_run_on_provgraph(tmp_path: Path) -> None:
    from pydra.compose import python as pydra_python

    @pydra_python.define(outputs=["doubled", "text"])
    def Double(x: int, suffix: str = "!") -> tuple[int, str]:
        return 2 * x, f"{x}{suffix}"

    with Submitter(cache_dir=tmp_path, worker="cf", n_procs=2, progress=False) as sub:
        result = sub(Double(suffix="?").split(x=[1, 2, 3]))
    assert result.outputs.doubled == [2, 4, 6] and result.outputs.text == ["1?", "2?", "3?"]
    assert from_pydra(Double)._input_fields["suffix"].default == "!"
    with pytest.raises(SpecError, match=r"input 'x'"):
        from_pydra(Double)(x="a")  # the translated class checks its inputs as provgraph does


@requires("mrgrid", "apt-get install mrtrix3 (.ci/run does)")
def test_seed_walkthrough_on_real_mrgrid(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("seed_mrgrid", ROOT / "examples/seed_mrgrid.py")
    assert spec is not None and spec.loader is not None
    seed = importlib.util.module_from_spec(spec)
    sys.modules["seed_mrgrid"] = seed
    spec.loader.exec_module(seed)
    found = seed.main(tmp_path)
    first, again = found["first"], found["again"]
    assert first.node_stats["MrGrid"]["executed"] == 10
    # 1. rerun: the same output directories, nothing executed
    assert again.node_stats["MrGrid"] == {"executed": 0, "reused": 10, "failed": 0, "skipped": 0}
    assert [Path(p).parent for p in again.outputs.out_file] == [
        Path(p).parent for p in first.outputs.out_file
    ]
    # 2. one voxel size changed: one job executed, in a directory of its own
    changed = found["changed"]
    assert changed.node_stats["MrGrid"]["executed"] == 1
    assert Path(changed.outputs.out_file[-1]).parent not in {
        Path(p).parent for p in first.outputs.out_file
    }
    # 3. an input file renamed: the same directories
    assert found["after_rename"].node_stats["MrGrid"]["executed"] == 0
    assert (
        Path(found["after_rename"].outputs.out_file[0]).parent
        == Path(first.outputs.out_file[0]).parent
    )
    out = first.outputs.out_file[0]
    assert type(out).__name__ == "ImageFormat" and Path(out).stat().st_size > 0
    # eleven job runs, each naming mrgrid (its path and content hash), and NIfTI inputs
    assert found["job_runs"] == 11
    store = ProvenanceStore(tmp_path / "cache")
    exes = store.query(
        "SELECT DISTINCT ?loc ?hash WHERE { ?run pg:taskName 'MrGrid' ; pg:executable ?e . "
        "?e prov:atLocation ?loc ; pg:contentHash ?hash }"
    )
    [(location, digest)] = [tuple(row) for row in exes]
    assert str(location).endswith("/mrgrid") and str(digest).startswith("xxh3-128:")
    formats = {
        str(f)
        for (f,) in store.query(
            "SELECT DISTINCT ?f WHERE { ?run pg:taskName 'MrGrid' ; prov:used ?e . "
            "?e pg:format ?f }"
        )
    }
    assert formats == {"medimage/nifti1"}
    made = store.query(
        "SELECT DISTINCT ?f WHERE { ?e prov:wasGeneratedBy/pg:taskName 'MrGrid' ; pg:format ?f }"
    )
    assert {str(f) for (f,) in made} == {"medimage/vnd.mrtrix3.image-format"}


@requires("mrgrid", "apt-get install mrtrix3 (.ci/run does)")
def test_mrgrid_connected_in_a_workflow_on_a_process_pool(niftis: list, tmp_path: Path) -> None:
    """A Pydra class made a provgraph class (from_pydra) takes connections in a workflow."""
    Grid = from_pydra(MrGrid)

    @workflow.define
    def Twice(in_file: Nifti1) -> object:
        first = workflow.add(Grid(operation="regrid", in_file=in_file, voxel=[2.0]), name="a")
        second = Grid(operation="regrid", in_file=first.out_file, voxel=[4.0])
        return workflow.add(second, name="b").out_file

    with Submitter(cache_dir=tmp_path / "cache", worker="cf", n_procs=2, progress=False) as sub:
        result = sub(Twice(in_file=niftis[0]))
    result.raise_for_errors()
    assert Path(result.outputs.out).exists() and Path(result.outputs.out).suffix == ".mif"
    assert result.node_stats["Twice/b"]["executed"] == 1


# -- fileformats classes as provgraph's own types ------------------------------------------


@python.define
def Size(image: Nifti1) -> int:
    return Path(image).stat().st_size


@python.define
def Members(image: NiftiGz) -> int:
    return len(image.fspaths)


def test_fileformats_types_in_own_tasks(niftis: list, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        first = sub(Size(image=str(niftis[0])))
        copy = tmp_path / "other-name.nii"
        shutil.copy(niftis[0], copy)
        again = sub(Size(image=copy))  # renamed: the same content, the same job
    assert first.outputs.out == Path(niftis[0]).stat().st_size
    assert again.output_dir == first.output_dir
    not_nifti = tmp_path / "plain.txt"
    not_nifti.write_text("text")
    with pytest.raises(SpecError, match=r"input 'image'.*Nifti1"):
        Size(image=not_nifti)
    with pytest.raises(SpecError, match=r"input 'image'"):
        Members(image=niftis[0])  # a .nii is not a .nii.gz
    formats = ProvenanceStore(cache).query("SELECT DISTINCT ?f WHERE { ?e pg:format ?f }")
    assert {str(f) for (f,) in formats} == {"medimage/nifti1"}


def test_fileformats_generic_file(tmp_path: Path) -> None:
    @python.define
    def Read(path: FFile) -> str:
        return Path(path).read_text()

    text = tmp_path / "a.txt"
    text.write_text("hello")
    assert Read(path=text)(cache_dir=tmp_path / "cache").out == "hello"


@python.define
def Sidecar(image: NiftiGzX) -> str:
    return json.loads(image.json_file.read_text())["RepetitionTime"] * "x"


def _nifti_gz_x(folder: Path, stem: str, source: Path, tr: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    image, sidecar = folder / f"{stem}.nii.gz", folder / f"{stem}.json"
    image.write_bytes(gzip.compress(Path(source).read_bytes(), mtime=0))
    sidecar.write_text(json.dumps({"RepetitionTime": tr}))
    return [image, sidecar]


def test_a_nifti_with_its_json_sidecar_is_one_file_set(niftis: list, tmp_path: Path) -> None:
    """Both files of the set are hashed (a change to the sidecar alone is a new job),
    renaming the pair is not, and the record lists both files as members, with the format."""
    first = NiftiGzX(_nifti_gz_x(tmp_path / "a", "sub-01", niftis[0], 2))
    renamed = NiftiGzX(_nifti_gz_x(tmp_path / "b", "other", niftis[0], 2))
    changed = NiftiGzX(_nifti_gz_x(tmp_path / "c", "sub-01", niftis[0], 3))
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        results = [sub(Sidecar(image=x)) for x in (first, renamed, changed)]
    assert [r.outputs.out for r in results] == ["xx", "xx", "xxx"]
    assert results[1].output_dir == results[0].output_dir
    assert results[2].output_dir != results[0].output_dir
    rows = ProvenanceStore(cache).query(
        "SELECT DISTINCT ?f ?loc WHERE { ?e pg:format ?f ; prov:hadMember/prov:atLocation ?loc }"
    )
    found = {(str(f), Path(str(loc)).name) for f, loc in rows}
    assert {f for f, _name in found} == {NiftiGzX.mime_like}
    assert {name for _f, name in found} >= {"sub-01.nii.gz", "sub-01.json"}


@requires("mrgrid", "apt-get install mrtrix3 (.ci/run does)")
def test_mrgrid_on_a_dask_cluster(niftis: list, tmp_path: Path) -> None:
    """The Pydra task object on a real Dask LocalCluster: its translated class travels to
    the workers, and the walkthrough's outputs come back as fileformats images."""
    pytest.importorskip("distributed", reason="dask is not installed")
    task = MrGrid(operation="regrid").split(
        ("in_file", "voxel"), in_file=niftis, voxel=[[1.0], [1.5], [2.0]]
    )
    with Submitter(cache_dir=tmp_path / "cache", worker="dask", n_workers=1, progress=False) as sub:
        result = sub(task)
    result.raise_for_errors()
    sizes = [Path(p).stat().st_size for p in result.outputs.out_file]
    assert len(sizes) == 3 and all(size > 0 for size in sizes)
    assert all(type(p).__name__ == "ImageFormat" for p in result.outputs.out_file)


# -- found in review: each failed before its fix --------------------------------------------


def test_fileformats_directories_and_dotted_names_hash_by_content(tmp_path: Path) -> None:
    from fileformats.medimage import DicomDir

    from provgraph import hash_value

    first = DicomDir.sample(tmp_path / "a")
    moved = shutil.copytree(first, tmp_path / "b" / "renamed.v2")
    assert hash_value(DicomDir(moved)) == hash_value(first)
    source = Nifti1.sample(tmp_path / "n", seed=3)
    digests = set()
    for name in ("scan.nii", "scan.v2.nii", "brain_0.5mm.nii"):
        digests.add(hash_value(Nifti1(shutil.copy(source, tmp_path / name))))
    assert len(digests) == 1


def test_pydra_xor_groups_are_kept(tmp_path: Path) -> None:
    from pydra.compose import shell as pshell

    @pshell.define(xor=[["a", "b"], ["c", "d", None]])
    class Tool(pshell.Task["Tool.Outputs"]):
        executable = "echo"
        a: int | None = pshell.arg(argstr="-a", default=None)
        b: int | None = pshell.arg(argstr="-b", default=None)
        c: int | None = pshell.arg(argstr="-c", default=None)
        d: int | None = pshell.arg(argstr="-d", default=None)

        class Outputs(pshell.Outputs):
            pass

    with Submitter(cache_dir=tmp_path, progress=False) as sub:
        assert sub(Tool(a=1, c=3)).outputs.stdout == "-a 1 -c 3\n"
        with pytest.raises(SpecError, match=r"'a' and 'b' are mutually exclusive"):
            sub(from_pydra(Tool)(a=1, b=2))
        with pytest.raises(SpecError, match=r"one of the inputs \['a', 'b'\] must be set"):
            sub(from_pydra(Tool)(c=3))


def test_untranslatable_definitions_name_task_field_and_feature() -> None:
    from pydra.tasks.mrtrix3.v3_1 import MrConvert

    with pytest.raises(SpecError, match=r"MrConvert: field 'export_grad_fsl' uses a path_template"):
        from_pydra(MrConvert)


def test_fileformats_values_in_containers_moved_caches_and_lists(
    niftis: list, tmp_path: Path
) -> None:
    from provgraph.environments.base import place_files
    from provgraph.provenance.record import describe_value

    placed = place_files({"image": niftis[0]}, tmp_path / "job")
    inside = str(placed.inputs["image"])
    assert inside.startswith("/pg/in/") and inside.endswith(Path(niftis[0]).name)
    assert str(Path(niftis[0]).parent) in {m.source for m in placed.mounts}
    described = describe_value([niftis[0], niftis[1]])
    assert [m["format"] for m in described["members"]] == ["medimage/nifti1"] * 2

    cache = tmp_path / "cache"
    from provgraph import shell

    @shell.define
    class CopyNifti:
        executable = "cp"
        src: Nifti1 = shell.arg(argstr="", position=1)

        class Outputs:
            out: Nifti1 = shell.outarg(argstr="", position=2, path_template="copy.nii")

    first = CopyNifti(src=niftis[0])(cache_dir=cache)
    cache.rename(tmp_path / "moved")
    again = CopyNifti(src=niftis[0])(cache_dir=tmp_path / "moved")
    assert Path(again.out).exists() and str(tmp_path / "moved") in str(again.out)
    assert Path(first.out).name == Path(again.out).name


def test_every_mrtrix3_interface_translates_or_is_refused_by_name() -> None:
    """Each definition of pydra-tasks-mrtrix3 either translates or is refused with a
    SpecError naming the task (at most a tenth of them); none fails otherwise."""
    import inspect as _inspect

    import pydra.tasks.mrtrix3.v3_1 as package
    from pydra.compose import shell as pshell

    classes = [
        c
        for _n, c in sorted(vars(package).items())
        if _inspect.isclass(c) and issubclass(c, pshell.Task) and c is not pshell.Task
    ]
    translated, refused = 0, []
    for cls in classes:
        try:
            from_pydra(cls)
        except SpecError as err:
            assert cls.__name__ in str(err)
            refused.append(cls.__name__)
            continue
        translated += 1
    assert translated >= 0.9 * len(classes), refused


def _pydra_copy() -> type:
    """A Pydra shell definition (cp, a fileformats File in, an outarg out)."""
    from pydra.compose import shell as pshell

    @pshell.define
    class PCopy(pshell.Task["PCopy.Outputs"]):
        executable = "cp"
        in_file: FFile = pshell.arg(argstr="", position=1)

        class Outputs(pshell.Outputs):
            out_file: FFile = pshell.outarg(argstr="", position=2, path_template="{in_file}_copy")

    return PCopy


def _texts(folder: Path) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(2):
        path = folder / f"t{k}.txt"
        path.write_text(f"text {k}\n")
        paths.append(FFile(path))
    return paths


@requires_slurm("start a one-node cluster with scripts/start-slurm.sh (.ci/run does)")
def test_pydra_task_objects_on_slurm(tmp_path: Path) -> None:
    task = _pydra_copy()().split(in_file=_texts(tmp_path / "in"))
    with Submitter(cache_dir=tmp_path / "cache", worker="slurm", poll_interval=0.3) as sub:
        result = sub(task)
    result.raise_for_errors()
    assert [Path(p).read_text() for p in result.outputs.out_file] == ["text 0\n", "text 1\n"]
    assert [Path(p).name for p in result.outputs.out_file] == ["t0_copy.txt", "t1_copy.txt"]


def test_pydra_task_object_in_a_container(tmp_path: Path) -> None:
    """Its fileformats input is bound into the container and named by its path inside."""
    from conftest import skip_unless_ci
    from provgraph.environments import Bubblewrap

    rootfs = Path(os.environ.get("IMAGE_DIR", "/var/tmp/ci-images")) / "busybox-rootfs"
    if shutil.which("bwrap") is None or not rootfs.is_dir():
        skip_unless_ci("bubblewrap or its busybox root (scripts/setup-containers.sh) is missing")
    task = _pydra_copy()(in_file=_texts(tmp_path / "in")[1])
    with Submitter(cache_dir=tmp_path / "cache", environment=Bubblewrap(rootfs)) as sub:
        result = sub(task)
    result.raise_for_errors()
    assert Path(result.outputs.out_file).read_text() == "text 1\n"
