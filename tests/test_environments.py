"""Environments: shell commands run natively, in Podman and in Bubblewrap, and are recorded.

Real runs throughout: the Podman, Docker and Bubblewrap tests need
``scripts/setup-containers.sh`` (podman with runc, Debian's dockerd started, the image
``localhost/localtest:latest`` in both, bwrap and the busybox root filesystem); each skips,
saying what is missing, where they are absent (under CI they fail instead). Apptainer is not
packaged for Debian 12: its command line is checked word by word, and its real-run test skips
unless it is present.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs
import pytest
import rdflib

from conftest import requires_slurm, skip_unless_ci
from provgraph import (
    CommandError,
    ContainerError,
    File,
    ProvenanceError,
    ProvenanceStore,
    SpecError,
    Submitter,
    hash_value,
    python,
    shell,
    workflow,
)
from provgraph.environments import (
    Apptainer,
    Bubblewrap,
    Docker,
    Native,
    Podman,
    Singularity,
)
from provgraph.environments.base import Mount, place_files
from provgraph.hashing import file_content_digest
from provgraph.provenance import vocab
from provgraph.provenance.store import load_trig

IMAGE = "localhost/localtest:latest"
ROOTFS = Path(os.environ.get("IMAGE_DIR", "/var/tmp/ci-images")) / "busybox-rootfs"
SETUP = "run scripts/setup-containers.sh as root to prepare it"

# upper-cases a file; tells where it ran: "<$container or none> <in|out of /pg/job>"
Upper = shell.define(
    'sh -c \'tr a-z A-Z < "$0" > "$1"; echo "$0"; '
    'echo "${container:-none} $(test -d /pg/job && echo in || echo out)"; echo note >&2\' '
    "<in_file:File> <out|out_file:File>",
    name="Upper",
)
Script = shell.define("sh -c <script:str>", name="Script")


E = TypeVar("E")


def _usable(env: Any) -> str | None:
    """Why ``env`` cannot run here, or None when it can."""
    try:
        env.describe()
    except ContainerError as err:
        return str(err)
    return None


def _ready(env: E) -> E:
    """``env`` if it can run here; else a skip (a failure under CI) saying what is missing."""
    reason = _usable(env)
    if reason is not None:
        skip_unless_ci(f"{reason} ({SETUP})")
    return env


@pytest.fixture(scope="session")
def podman() -> Podman:
    """The busybox image in Podman."""
    return _ready(Podman(IMAGE))


@pytest.fixture(scope="session")
def docker() -> Docker:
    """The busybox image in Docker (imported from the same root filesystem)."""
    return _ready(Docker(IMAGE))


@pytest.fixture(scope="session")
def bwrap() -> Bubblewrap:
    """The busybox root filesystem in Bubblewrap."""
    return _ready(Bubblewrap(ROOTFS))


@pytest.fixture(params=["native", "podman", "docker", "bubblewrap"])
def env(request: pytest.FixtureRequest) -> Any:
    """Each environment in turn (the containers skip where absent)."""
    if request.param == "native":
        return Native()
    return request.getfixturevalue("bwrap" if request.param == "bubblewrap" else request.param)


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    """An input file in a directory of its own."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    path = folder / "words.txt"
    path.write_text("hello\ncontainers\n")
    return path


def _image_digest(ref: str) -> str:
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True,
        text=True,
        check=True,
    )
    return "sha256:" + done.stdout.strip()


built: list[str] = []  # IDs of the images _import_image made (a rebuilt tag leaves the old one)


def _import_image(ref: str, note: str) -> None:
    """The busybox root filesystem plus ``/etc/note`` as a local image, without a registry."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(ROOTFS, arcname=".")
        data = note.encode()
        info = tarfile.TarInfo("./etc/note")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    subprocess.run(
        ["podman", "import", "-q", "--change", 'CMD ["/bin/sh"]', "-", ref],
        input=buffer.getvalue(),
        capture_output=True,
        check=True,
    )
    built.append(_image_digest(ref).removeprefix("sha256:"))


@pytest.fixture
def scratch_image(podman: Podman) -> Iterator[str]:
    """A fresh image name for one test; every image it named is removed afterwards."""
    if not ROOTFS.is_dir():
        skip_unless_ci(f"no busybox root filesystem at {ROOTFS} to build images from; {SETUP}")
    ref = f"localhost/provgraph-test-{uuid.uuid4().hex[:12]}:latest"
    built.clear()
    yield ref
    subprocess.run(["podman", "rmi", "-f", ref, *built], capture_output=True, check=False)


# -- real runs -----------------------------------------------------------------------------------


def test_same_output_in_every_environment(env: Any, text_file: Path, cache_dir: Path) -> None:
    """Input file in, output file out: the same content, landing in the job's directory."""
    with Submitter(cache_dir=cache_dir, environment=env, progress=False) as sub:
        result = sub(Upper(in_file=text_file))
    assert not result.errored, result.errors
    out = Path(result.outputs.out_file)
    assert out.read_text() == "HELLO\nCONTAINERS\n"
    assert out.parent == result.output_dir and out.parent.parent == cache_dir
    assert out.is_file() and out.name == "out_file.txt"
    seen_as, where = result.outputs.stdout.splitlines()
    if isinstance(env, Native):
        assert seen_as == str(text_file) and where == "none out"
    else:  # the command saw the inside paths, and the job's directory at /pg/job
        assert seen_as == "/pg/in/0/words.txt" and where.endswith(" in")
    assert result.outputs.stderr == "note\n"
    assert result.outputs.return_code == 0


def test_exit_code_and_streams_come_back(env: Any, tmp_path: Path) -> None:
    """A failing command's exit code, stdout and stderr come back exactly."""
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    script = "printf 'out 1\\nout 2\\n'; printf 'err\\n' >&2; exit 42"
    with pytest.raises(CommandError) as caught:
        Script._execute({"script": script}, job_dir, env)  # type: ignore[attr-defined]
    assert caught.value.return_code == 42
    assert caught.value.stderr == "err"
    assert (job_dir / "stdout.txt").read_text() == "out 1\nout 2\n"
    assert (job_dir / "stderr.txt").read_text() == "err\n"
    done = Script._execute({"script": "echo fine; exit 0"}, job_dir, env)  # type: ignore[attr-defined]
    assert (done["return_code"], done["stdout"], done["stderr"]) == (0, "fine\n", "")


def test_failed_job_is_reported_with_its_code(env: Any, cache_dir: Path) -> None:
    """Through the submitter, a failing command fails its job with the code in the message."""
    with Submitter(cache_dir=cache_dir, environment=env, progress=False) as sub:
        result = sub(Script(script="echo bad >&2; exit 3"))
    assert result.errored
    (failure,) = result.errors
    assert failure.error_type == "CommandError"
    assert "exited with code 3" in failure.message and "bad" in failure.message


@pytest.mark.parametrize("name", ["podman", "docker", "bwrap"])
def test_containers_isolate(name: str, text_file: Path, tmp_path: Path, request: Any) -> None:
    """No network but loopback, inputs read-only, and the job's directory writable."""
    env = request.getfixturevalue(name)
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    Probe = shell.define("sh -c <script:str> <in_file:File>", name="Probe")
    script = (
        'ip -o link | cut -d: -f2 | tr -d " "; '
        'if touch "$(dirname "$0")/new" 2>/dev/null; then echo writable; else echo read-only; fi; '
        "touch made-here && echo made"
    )
    done = Probe._execute({"script": script, "in_file": File(text_file)}, job_dir, env)  # type: ignore[attr-defined]
    assert done["stdout"].split() == ["lo", "read-only", "made"]
    assert (job_dir / "made-here").exists() and not (text_file.parent / "new").exists()


def test_apptainer_real_run(text_file: Path, cache_dir: Path) -> None:
    """Apptainer runs the task in the busybox root filesystem as a sandbox image."""
    if shutil.which("apptainer") is None:
        pytest.skip("apptainer is not installed (see apptainer.org/docs/admin); not on Debian 12")
    if not ROOTFS.is_dir():
        pytest.skip(f"no busybox root filesystem at {ROOTFS}; {SETUP}")
    with Submitter(cache_dir=cache_dir, environment=Apptainer(ROOTFS), progress=False) as sub:
        result = sub(Upper(in_file=text_file))
    assert not result.errored, result.errors
    assert Path(result.outputs.out_file).read_text() == "HELLO\nCONTAINERS\n"


def test_docker_runs_the_image_by_its_id(docker: Docker, text_file: Path, cache_dir: Path) -> None:
    """Docker runs the image it described (by ID), and the provenance records that ID."""
    with Submitter(cache_dir=cache_dir, environment=docker, progress=False) as sub:
        result = sub(Upper(in_file=text_file))
    assert not result.errored, result.errors
    assert Path(result.outputs.out_file).read_text() == "HELLO\nCONTAINERS\n"
    image_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    [(recorded,)] = ProvenanceStore(cache_dir).query(
        "SELECT ?d WHERE { ?run a pg:JobRun ; prov:used/pg:containerDigest ?d }"
    )
    assert str(recorded) == image_id


INTERRUPTED_IN_DOCKER = """
import sys
from provgraph import Submitter, shell
from provgraph.environments import Docker
Sleep = shell.define("sh -c <script:str>", name="Sleep")
with Submitter(cache_dir=sys.argv[1], environment=Docker({image!r}), progress=False) as sub:
    sub(Sleep(script="touch started; sleep 60"))
"""


def test_an_interrupted_docker_job_leaves_no_container(docker: Docker, tmp_path: Path) -> None:
    """Ctrl-C while a command runs in Docker: the container is removed, not left running."""
    import signal
    import sys
    import time

    before = set(_docker_containers())
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_IN_DOCKER.format(image=IMAGE), str(tmp_path)],
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("Sleep-*/started")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    assert set(_docker_containers()) - before == set()


def _docker_containers() -> list[str]:
    """Names of every Docker container, running or not."""
    done = subprocess.run(
        ["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_cf_worker_runs_in_podman(podman: Podman, tmp_path: Path, cache_dir: Path) -> None:
    """The environment travels to pool processes: a split runs in Podman on the cf worker."""
    files = []
    for i, word in enumerate(["one", "two", "three"]):
        path = tmp_path / f"in{i}" / "w.txt"
        path.parent.mkdir()
        path.write_text(word)
        files.append(path)
    with Submitter(cache_dir=cache_dir, worker="cf", n_procs=2, progress=False) as sub:
        result = sub(Upper().split(in_file=files), environment=podman)
    assert not result.errored, result.errors
    assert [Path(p).read_text() for p in result.outputs.out_file] == ["ONE", "TWO", "THREE"]
    assert all(s.splitlines()[1] == "podman in" for s in result.outputs.stdout)
    store = ProvenanceStore(cache_dir)
    rows = list(
        store.query(
            "SELECT ?run WHERE { ?run a pg:JobRun ; prov:used ?c . "
            '?c pg:containerRuntime "podman" }'
        )
    )
    assert len(rows) == 3


def test_precedence_call_then_task_then_submitter(
    podman: Podman, bwrap: Bubblewrap, cache_dir: Path
) -> None:
    """The call's environment wins over the task's, which wins over the submitter's."""
    Where = shell.define(
        "sh -c 'echo \"${container:-none} $(test -d /pg/job && echo in || echo out)\"' <label:str>",
        name="Where",
        environment=bwrap,
    )
    Plain = shell.define(
        "sh -c 'echo \"${container:-none} $(test -d /pg/job && echo in || echo out)\"' <label:str>",
        name="Plain",
    )
    with Submitter(cache_dir=cache_dir, environment=podman, progress=False) as sub:
        by_task = sub(Where(label="a")).outputs.stdout
        by_call = sub(Where(label="b"), environment=Native()).outputs.stdout
        by_submitter = sub(Plain(label="c")).outputs.stdout
    assert (by_task, by_call, by_submitter) == ("none in\n", "none out\n", "podman in\n")


@attrs.frozen
class CountingPodman(Podman):
    """Podman that counts how often the submitter asks it to describe itself."""

    calls: ClassVar[list[str]] = []

    def describe(self) -> dict[str, str]:
        self.calls.append(self.reference)
        return super().describe()


@workflow.define(outputs=["first", "second"])
def TwoSteps(in_file: File) -> tuple[File, File]:
    one = workflow.add(Upper(in_file=in_file), name="one")
    two = workflow.add(Upper(in_file=one.out_file), name="two")
    return one.out_file, two.out_file


def test_environment_described_once_per_submission(
    podman: Podman, text_file: Path, cache_dir: Path
) -> None:
    """Many jobs, one description per submission (and again for the next submission)."""
    counting = CountingPodman(IMAGE)
    CountingPodman.calls.clear()
    with Submitter(cache_dir=cache_dir, environment=counting, progress=False) as sub:
        other = text_file.with_name("other.txt")
        other.write_text("more\n")
        result = sub(TwoSteps().split(in_file=[text_file, other]))
        assert not result.errored, result.errors
        assert CountingPodman.calls == [IMAGE]  # four jobs, one description
        sub(TwoSteps(in_file=text_file))
    assert CountingPodman.calls == [IMAGE, IMAGE]


# -- provenance and hashing ----------------------------------------------------------------------


def test_provenance_names_the_image_digest(
    podman: Podman, text_file: Path, cache_dir: Path
) -> None:
    """A containerised run used an entity naming runtime, version, image, tag and digest."""
    with Submitter(cache_dir=cache_dir, environment=podman, progress=False) as sub:
        result = sub(Upper(in_file=text_file))
    assert not result.errored, result.errors
    store = ProvenanceStore(cache_dir)
    rows = [
        tuple(map(str, row))
        for row in store.query(
            """SELECT ?runtime ?version ?image ?name ?tag ?digest WHERE {
                 ?run a pg:JobRun ; pg:taskName "Upper" ; prov:used ?c .
                 ?c a prov:Entity, pg:ContainerEnvironment ; pg:containerRuntime ?runtime ;
                    pg:runtimeVersion ?version ; pg:containerImage ?image ;
                    pg:imageName ?name ; pg:imageTag ?tag ; pg:containerDigest ?digest .
               }"""
        )
    ]
    from provgraph.provenance.query import show_job

    [shown] = show_job(store, result.output_dir.name)
    assert shown["container"] == [
        {"runtime": "podman", "image": IMAGE, "digest": _image_digest(IMAGE)}
    ]
    report = cache_dir / "report.html"
    store.export(report, "html")
    assert _image_digest(IMAGE) in report.read_text()
    version = subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout
    assert rows == [
        (
            "podman",
            version.strip(),
            IMAGE,
            "localhost/localtest",
            "latest",
            _image_digest(IMAGE),
        )
    ]


def test_recorded_container_is_declared_and_valid(
    bwrap: Bubblewrap, text_file: Path, cache_dir: Path
) -> None:
    """The container terms are declared in the ontology, and the record passes the shapes."""
    import pyshacl

    with Submitter(cache_dir=cache_dir, environment=bwrap, progress=False) as sub:
        result = sub(Upper(in_file=text_file))
    assert not result.errored, result.errors
    dataset = rdflib.Dataset()
    for path in [*cache_dir.glob("*/_prov-*.trig"), *cache_dir.glob(".provenance/*/*.trig")]:
        load_trig(dataset, path)
    graph = rdflib.Graph()
    for s, p, o, _ in dataset.quads():
        graph.add((s, p, o))
    container = rdflib.URIRef(vocab.PG + "ContainerEnvironment")
    (entity,) = set(graph.subjects(rdflib.RDF.type, container))
    assert graph.value(entity, rdflib.URIRef(vocab.PG + "containerDigest")) == rdflib.Literal(
        str(ROOTFS)
    )
    assert graph.value(entity, rdflib.URIRef(vocab.PROV + "atLocation")) == rdflib.URIRef(
        ROOTFS.as_uri()
    )
    ontology = rdflib.Graph().parse(vocab.ontology_path("provgraph.ttl"))
    declared = {str(s) for s in ontology.subjects() if str(s).startswith(vocab.PG)}
    used = {str(p) for p in graph.predicates() if str(p).startswith(vocab.PG)}
    used |= {str(o) for o in graph.objects(None, rdflib.RDF.type) if str(o).startswith(vocab.PG)}
    assert used <= declared, used - declared
    shapes = rdflib.Graph().parse(vocab.ontology_path("shapes.ttl"))
    conforms, _, report = pyshacl.validate(graph, shacl_graph=shapes)
    assert conforms, report
    graph.remove((entity, rdflib.URIRef(vocab.PG + "containerDigest"), None))
    assert not pyshacl.validate(graph, shacl_graph=shapes)[0]


def test_rebuilt_image_is_a_new_job_only_with_environment_in_hash(
    scratch_image: str, text_file: Path, tmp_path: Path
) -> None:
    """Same image name, new content: a new job directory when the environment is hashed,
    the cached result otherwise; each run records the digest it ran with."""
    env = Podman(scratch_image)
    hashed, plain = tmp_path / "hashed", tmp_path / "plain"
    dirs: dict[str, list[Path]] = {"hashed": [], "plain": []}
    digests = []
    for note in ("first build", "second build"):
        _import_image(scratch_image, note)
        digests.append(_image_digest(scratch_image))
        for label, cache, in_hash in (("hashed", hashed, True), ("plain", plain, False)):
            with Submitter(
                cache_dir=cache, environment=env, environment_in_hash=in_hash, progress=False
            ) as sub:
                result = sub(Upper(in_file=text_file))
            assert not result.errored, result.errors
            dirs[label].append(result.output_dir)
    assert digests[0] != digests[1]
    assert dirs["hashed"][0] != dirs["hashed"][1]
    assert dirs["plain"][0] == dirs["plain"][1]
    recorded = {
        str(d)
        for (d,) in ProvenanceStore(hashed).query(
            "SELECT ?d WHERE { ?run a pg:JobRun ; prov:used/pg:containerDigest ?d }"
        )
    }
    assert recorded == set(digests)
    (count,) = next(
        iter(ProvenanceStore(plain).query("SELECT (COUNT(?r) AS ?n) WHERE { ?r a pg:JobRun }"))
    )
    assert int(count) == 1  # the second submission reused the first run


def test_switching_runtime_with_environment_in_hash(
    podman: Podman, bwrap: Bubblewrap, text_file: Path, cache_dir: Path
) -> None:
    """Podman then Bubblewrap: new job and workflow directories; native is like no environment."""
    dirs = []
    for env in (podman, bwrap, Native(), None):
        with Submitter(
            cache_dir=cache_dir, environment=env, environment_in_hash=True, progress=False
        ) as sub:
            result = sub(TwoSteps(in_file=text_file))
            single = sub(Upper(in_file=text_file))
        assert not result.errored and not single.errored, result.errors
        dirs.append((result.output_dir, single.output_dir))
    assert len({d for d, _ in dirs[:3]}) == 3 and len({d for _, d in dirs[:3]}) == 3
    assert dirs[2] == dirs[3]


def test_python_tasks_ignore_the_environment(podman: Podman, cache_dir: Path) -> None:
    """A Python task runs in-process whatever the environment, and hashes the same."""

    @python.define
    def Twice(x: int) -> int:
        return 2 * x

    found = []
    for env in (None, podman):
        with Submitter(
            cache_dir=cache_dir, environment=env, environment_in_hash=True, progress=False
        ) as sub:
            result = sub(Twice(x=4))
        found.append((result.outputs.out, result.output_dir, result.stats["reused"]))
    assert found[0][:2] == found[1][:2] and found[1][2] == 1


# -- checks before anything runs -----------------------------------------------------------------


@python.define
def Touch(name: str) -> str:
    Path(name).write_text("ran")
    return name


@workflow.define(outputs=["out"])
def TouchThenUpper(name: str, in_file: File) -> File:
    workflow.add(Touch(name=name), name="touch")
    up = workflow.add(Upper(in_file=in_file), name="up")
    return up.out_file


@pytest.mark.parametrize(
    ("environment", "runtime", "hint"),
    [
        (Podman(IMAGE, executable="/nonexistent/podman"), "podman", "apt-get install podman"),
        (Docker(IMAGE, executable="/nonexistent/docker"), "docker", "apt-get install docker.io"),
        (Apptainer("/tmp/x.sif", executable="/nonexistent/apptainer"), "apptainer", "Apptainer"),
        (Bubblewrap(ROOTFS, executable="/nonexistent/bwrap"), "bubblewrap", "bubblewrap"),
    ],
    ids=["podman", "docker", "apptainer", "bubblewrap"],
)
def test_missing_runtime_fails_before_any_job(
    environment: Any, runtime: str, hint: str, text_file: Path, cache_dir: Path
) -> None:
    """A missing runtime raises ContainerError naming it and how to get it; nothing ran."""
    with (
        Submitter(cache_dir=cache_dir, environment=environment, progress=False) as sub,
        pytest.raises(ContainerError) as caught,
    ):
        sub(TouchThenUpper(name=str(cache_dir.parent / "touched"), in_file=text_file))
    assert caught.value.runtime == runtime
    message = str(caught.value)
    assert message.startswith(f"{runtime}: ") and hint in message and "was not found" in message
    assert not (cache_dir.parent / "touched").exists()
    assert [p.name for p in cache_dir.iterdir() if not p.name.startswith(".")] == []


def test_missing_image_fails_before_any_job(
    podman: Podman, text_file: Path, cache_dir: Path
) -> None:
    """An image Podman does not have is named, with how to list and get images."""
    ref = f"localhost/provgraph-absent-{uuid.uuid4().hex[:8]}:v1"
    Tool = shell.define("cat <in_file:File>", name="Tool", environment=Podman(ref))
    with (
        Submitter(cache_dir=cache_dir, progress=False) as sub,
        pytest.raises(ContainerError) as caught,
    ):
        sub(Tool(in_file=text_file))
    message = str(caught.value)
    assert ref in message and "podman image ls" in message and "podman pull" in message
    assert caught.value.image == ref
    assert [p.name for p in cache_dir.iterdir() if not p.name.startswith(".")] == []


def test_missing_root_filesystem_and_sif(tmp_path: Path) -> None:
    """Bubblewrap without its root filesystem, Apptainer without its image, say so."""
    if shutil.which("bwrap") is not None:
        with pytest.raises(ContainerError, match="is not a directory"):
            Bubblewrap(tmp_path / "nothing").describe()
    fake = tmp_path / "bin" / "apptainer"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'apptainer version 0.0-test'\n")
    fake.chmod(0o755)
    with pytest.raises(ContainerError, match="does not exist") as caught:
        Apptainer(tmp_path / "none.sif", executable=str(fake)).describe()
    assert caught.value.runtime == "apptainer"
    sif = tmp_path / "image.sif"
    sif.write_bytes(b"not really a SIF, but bytes to hash")
    info = Apptainer(sif, executable=str(fake)).describe()
    assert info["runtime_version"] == "apptainer version 0.0-test"
    assert info["digest"] == "xxh3-128:" + file_content_digest(sif).hex()
    assert info["image"] == info["location"] == str(sif)


# -- definitions and command lines (no runtime needed) -------------------------------------------


def _placement(tmp_path: Path) -> tuple[Any, Path, Path]:
    job = tmp_path / "job"
    job.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.nii").write_text("a")
    return place_files({"in_file": File(data / "a.nii"), "voxel": 1.5}, job), job, data


def test_docker_command_line(tmp_path: Path) -> None:
    """Docker: no pull, no network, job dir as workdir, the caller's uid, read-only inputs."""
    placement, job, data = _placement(tmp_path)
    argv = Docker("example/tool", "2.1", options=["--cpus=2"]).wrap(["tool", "x"], placement)
    assert argv == [
        "docker",
        "run",
        "--rm",
        "--pull=never",
        f"--name={placement.name}",
        "--workdir=/pg/job",
        "--network=none",
        f"--user={os.getuid()}:{os.getgid()}",
        f"--mount=type=bind,source={job},target=/pg/job",
        f"--mount=type=bind,source={data},target=/pg/in/0,readonly",
        "--cpus=2",
        "example/tool:2.1",
        "tool",
        "x",
    ]
    networked = Podman("example/tool", network=True).wrap(["tool"], placement)
    assert "--network=none" not in networked and not any(w.startswith("--user") for w in networked)
    assert networked[0] == "podman" and networked[-2:] == ["example/tool:latest", "tool"]


def test_apptainer_command_line(tmp_path: Path) -> None:
    """Apptainer: contained, binds with modes, no network, the image then the command."""
    placement, job, data = _placement(tmp_path)
    sif = tmp_path / "tool.sif"
    argv = Apptainer(sif).wrap(["tool", "x"], placement)
    assert argv == [
        "apptainer",
        "exec",
        "--containall",
        "--pwd",
        "/pg/job",
        "--bind",
        f"{job}:/pg/job:rw",
        "--bind",
        f"{data}:/pg/in/0:ro",
        "--net",
        "--network",
        "none",
        str(sif),
        "tool",
        "x",
    ]
    assert Singularity is Apptainer
    singularity = Apptainer(sif, executable="singularity", network=True).wrap(["t"], placement)
    assert singularity[0] == "singularity" and "--net" not in singularity
    odd = tmp_path / "a:b"
    odd.mkdir()
    (odd / "f").write_text("x")
    with pytest.raises(ContainerError, match="':'"):
        Apptainer(sif).wrap(["t"], place_files({"f": File(odd / "f")}, job))
    with pytest.raises(SpecError, match="apptainer pull"):
        Apptainer("docker://busybox")


def test_bubblewrap_command_line(tmp_path: Path) -> None:
    """Bubblewrap: the root filesystem's entries bound read-only, then the job's mounts."""
    root = tmp_path / "root"
    for name in ("bin", "etc", "proc"):
        (root / name).mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    placement, job, data = _placement(tmp_path)
    argv = Bubblewrap(root).wrap(["tool"], placement)
    assert argv[:2] == ["bwrap", "--unshare-all"] and "--share-net" not in argv
    tail = argv[argv.index("--setenv") :]
    assert tail == [
        "--setenv", "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--setenv", "HOME", "/pg/job",
        "--ro-bind", str(root / "bin"), "/bin",
        "--ro-bind", str(root / "etc"), "/etc",
        "--symlink", "usr/lib", "/lib",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
        "--bind", str(job), "/pg/job",
        "--ro-bind", str(data), "/pg/in/0",
        "--remount-ro", "/", "--chdir", "/pg/job", "--",
        "tool",
    ]  # fmt: skip
    assert "--share-net" in Bubblewrap(root, network=True).wrap(["t"], placement)


def test_placement_rewrites_paths(tmp_path: Path) -> None:
    """Inputs in one directory share a mount; others get the next; links bring their target."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    for path in (one / "a.txt", one / "b.txt", two / "c.txt"):
        path.write_text(path.name)
    (two / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    (tmp_path / "elsewhere.txt").write_text("far")
    inputs = {
        "a": File(one / "a.txt"),
        "many": [File(one / "b.txt"), File(two / "c.txt")],
        "link": Path(two / "link.txt"),
        "n": 3,
        "text": str(one / "a.txt"),
    }
    placed = place_files(inputs, tmp_path / "job")
    assert placed.inputs == {
        "a": File("/pg/in/0/a.txt"),
        "many": [File("/pg/in/0/b.txt"), File("/pg/in/1/c.txt")],
        "link": Path("/pg/in/2/link.txt"),
        "n": 3,
        "text": str(one / "a.txt"),  # a string is not a path: left alone
    }
    assert isinstance(placed.inputs["a"], File)
    assert placed.mounts == (
        Mount(source=str(tmp_path / "job"), target="/pg/job", writable=True),
        Mount(source=str(one), target="/pg/in/0"),
        Mount(source=str(two), target="/pg/in/1"),
        Mount(source=os.path.realpath(tmp_path / "elsewhere.txt"), target="/pg/in/2/link.txt"),
    )
    assert str(placed.job_dir) == "/pg/job"


def test_commas_in_paths_are_refused_for_oci(tmp_path: Path) -> None:
    """Podman's --mount cannot carry a comma in a path; the error says which path."""
    odd = tmp_path / "a,b"
    odd.mkdir()
    with pytest.raises(ContainerError, match="','"):
        Podman("x").wrap(["t"], place_files({}, odd))


def test_image_references() -> None:
    """Tags come from the image or tag=, once; 'latest' when neither names one."""
    assert Podman("localhost/tool").reference == "localhost/tool:latest"
    assert Podman("localhost/tool:1.0").reference == "localhost/tool:1.0"
    assert Podman("localhost/tool", "1.0").reference == "localhost/tool:1.0"
    assert Podman("host:5000/tool").reference == "host:5000/tool:latest"
    assert Docker("tool@sha256:abc").reference == "tool@sha256:abc"
    with pytest.raises(SpecError, match="tag"):
        Podman("localhost/tool:1.0", "2.0")
    with pytest.raises(SpecError, match="image"):
        Podman("")
    with pytest.raises(SpecError, match="options"):
        Podman("x", options="--cpus=2")  # type: ignore[arg-type]


def test_environments_pickle_and_hash() -> None:
    """Environments survive pickling, compare by value and hash by value."""
    for env in (Native(), Podman("a", "1"), Docker("a"), Apptainer("/x.sif"), Bubblewrap("/r")):
        again = pickle.loads(pickle.dumps(env))
        assert again == env and hash(again) == hash(env)
        assert hash_value(again) == hash_value(env)
    assert hash_value(Podman("a", "1")) != hash_value(Podman("a", "2"))
    assert hash_value(Podman("a")) != hash_value(Docker("a"))


def test_environment_is_not_part_of_the_definition(tmp_path: Path) -> None:
    """A task's environment is not in its definition hash; a bad one is a SpecError."""
    plain = shell.define("cat <in_file:File>", name="Cat")
    boxed = shell.define("cat <in_file:File>", name="Cat", environment=Podman("x"))
    assert plain._definition_hash == boxed._definition_hash
    assert boxed._environment == Podman("x") and plain._environment is None
    with pytest.raises(SpecError, match="environment='podman'"):
        shell.define("cat <in_file:File>", environment="podman")
    with pytest.raises(SpecError, match="environment="):
        Submitter(cache_dir=tmp_path, environment="podman", progress=False)
    with pytest.raises(SpecError, match="environment_in_hash"):
        Submitter(cache_dir=tmp_path, environment_in_hash="yes", progress=False)  # type: ignore[arg-type]
    with Submitter(cache_dir=tmp_path, progress=False) as sub, pytest.raises(SpecError):
        sub(plain(in_file=tmp_path), environment=42)


def test_rerun_runs_in_the_recorded_image_and_checks_its_digest(
    scratch_image: str, text_file: Path, cache_dir: Path
) -> None:
    """A rerun of a containerised job runs in the same image (recorded beside the job), and
    refuses once that image name holds other content."""
    _import_image(scratch_image, "first build")
    env = Podman(scratch_image)
    where = Script(script="cat /etc/note; echo; ls -d /pg/job")
    with Submitter(cache_dir=cache_dir, environment=env, progress=False) as sub:
        result = sub(where)
    assert not result.errored, result.errors
    assert result.outputs.stdout == "first build\n/pg/job\n"
    store = ProvenanceStore(cache_dir)
    again = store.rerun(result.output_dir.name.rsplit("-", 1)[-1])
    assert again.outputs["stdout"] == "first build\n/pg/job\n"  # not on the host: in the image
    assert again.all_reproduced
    rows = store.query("SELECT ?d WHERE { ?run pg:rerunOf ?old ; prov:used/pg:containerDigest ?d }")
    assert [str(d) for (d,) in rows] == [_image_digest(scratch_image)]
    _import_image(scratch_image, "second build")
    with pytest.raises(ProvenanceError, match=r"image '.*provgraph-test-.*' has changed"):
        store.rerun(result.output_dir.name.rsplit("-", 1)[-1])


def test_diff_names_the_container_change(
    podman: Podman, bwrap: Bubblewrap, text_file: Path, tmp_path: Path
) -> None:
    """Two runs of one job, in Podman then in Bubblewrap: diff reports the container change."""
    runs = []
    for env in (podman, bwrap):
        cache = tmp_path / env.runtime
        with Submitter(cache_dir=cache, environment=env, progress=False) as sub:
            result = sub(Upper(in_file=text_file))
        assert not result.errored, result.errors
        [(run,)] = ProvenanceStore(cache).query("SELECT ?r WHERE { ?r a pg:JobRun }")
        runs.append((cache, str(run)))
    merged = tmp_path / "merged"  # both records in one store: copy the second into the first
    shutil.copytree(runs[0][0], merged)
    for item in runs[1][0].iterdir():
        if item.is_dir() and item.name != ".provenance":
            shutil.copytree(item, merged / item.name, dirs_exist_ok=True)
    shutil.copytree(
        runs[1][0] / ".provenance" / "environments",
        merged / ".provenance" / "environments",
        dirs_exist_ok=True,
    )
    store = ProvenanceStore(merged)
    store.refresh(scan=True)
    report = store.diff(runs[0][1], runs[1][1])
    box = report["environment"]["container"]
    assert box["changed"] and report["environment"]["changed"]
    assert (box["before"]["runtime"], box["after"]["runtime"]) == ("podman", "bubblewrap")
    assert box["before"]["digest"] == podman.describe()["digest"]
    assert "out_file" not in report["outputs"]  # the same file content either way
    from provgraph.provenance.diff import diff_text

    assert "container: podman localhost/localtest:latest sha256:" in diff_text(report)


@requires_slurm("start a one-node cluster with scripts/start-slurm.sh")
def test_scancel_stops_the_container_of_a_slurm_job(podman: Podman, tmp_path: Path) -> None:
    """SIGTERM from scancel reaches the job: it removes its container before it goes."""
    import threading
    import time

    def running_containers() -> list[str]:
        out = subprocess.run(
            ["podman", "ps", "-a", "--filter", "name=provgraph-", "--format", "{{.Names}}"],
            capture_output=True,
            text=True,
        ).stdout
        return out.split()

    before = set(running_containers())
    with Submitter(
        cache_dir=tmp_path, worker="slurm", poll_interval=0.2, environment=podman, progress=False
    ) as sub:
        ids = sub.worker.submitted_ids

        def cancel_once_the_container_runs() -> None:
            for _ in range(600):
                if set(running_containers()) - before and ids:
                    subprocess.run(["scancel", ids[0]], check=True)
                    return
                time.sleep(0.1)

        watcher = threading.Thread(target=cancel_once_the_container_runs, daemon=True)
        watcher.start()
        result = sub(Script(script="sleep 120"))
        watcher.join(timeout=1)
    [error] = result.errors
    assert "was cancelled: CANCELLED" in error.message
    for _ in range(100):  # the container goes with its job
        if not set(running_containers()) - before:
            break
        time.sleep(0.1)
    assert set(running_containers()) - before == set()


def test_moving_an_image_between_nodes_changes_the_workflow_hash(
    bwrap: Bubblewrap, tmp_path: Path
) -> None:
    """With the environment in the hash, which node runs where is part of a workflow's hash."""

    def study(on_first: Any, on_second: Any) -> Any:
        first = shell.define("echo <x:int>", name="First", environment=on_first)
        second = shell.define("echo <x:int>", name="Second", environment=on_second)

        @workflow.define
        def Moved(x: int) -> str:
            workflow.add(first(x=x), name="a")
            return workflow.add(second(x=x), name="b").stdout

        return Moved(x=1)

    dirs = []
    for placed in ((bwrap, None), (None, bwrap)):
        with Submitter(cache_dir=tmp_path, environment_in_hash=True, progress=False) as sub:
            result = sub(study(*placed))
        assert not result.errored, result.errors
        dirs.append(result.output_dir)
    assert dirs[0] != dirs[1]


def test_a_linked_input_is_read_in_every_environment(
    env: Any, tmp_path: Path, cache_dir: Path
) -> None:
    """A symbolic link to a file elsewhere (as DataLad makes them) is readable inside."""
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "blob").write_text("linked content\n")
    (tmp_path / "data").mkdir()
    link = tmp_path / "data" / "sub-01.txt"
    link.symlink_to(tmp_path / "store" / "blob")
    with Submitter(cache_dir=cache_dir, environment=env, progress=False) as sub:
        result = sub(Upper(in_file=link))
    assert not result.errored, result.errors
    assert Path(result.outputs.out_file).read_text() == "LINKED CONTENT\n"


def test_pinned_image_runs_by_its_id_and_equals_the_unpinned() -> None:
    env = Podman("localhost/tool", "1.0")
    pinned = env.pinned({"digest": "sha256:" + "ab" * 32})
    assert pinned == env and hash(pinned) == hash(env)  # the same environment, fixed
    words = pinned.wrap(["true"], place_files({}, Path("/tmp/job")))
    assert words[-2:] == ["sha256:" + "ab" * 32, "true"]
    assert env.wrap(["true"], place_files({}, Path("/tmp/job")))[-2] == "localhost/tool:1.0"


def test_a_tag_moved_during_a_run_does_not_change_the_image_that_runs(
    scratch_image: str, cache_dir: Path
) -> None:
    """Jobs run the image found when the submission started, even if its tag moves meanwhile:
    what runs is what the provenance records."""
    _import_image(scratch_image, "first build")
    first_digest = _image_digest(scratch_image)

    @python.define
    def Rebuild(ref: str) -> str:
        _import_image(ref, "second build")  # the tag now names another image
        return "cat /etc/note"

    @workflow.define
    def Moving(ref: str) -> str:
        rebuilt = workflow.add(Rebuild(ref=ref), name="rebuild")
        return workflow.add(Script(script=rebuilt.out), name="note").stdout  # runs after

    with Submitter(cache_dir=cache_dir, environment=Podman(scratch_image), progress=False) as sub:
        result = sub(Moving(ref=scratch_image))
    assert not result.errored, result.errors
    assert _image_digest(scratch_image) != first_digest  # the tag did move
    assert result.outputs.out == "first build"  # but the job ran the image described
    [(recorded,)] = ProvenanceStore(cache_dir).query(
        "SELECT ?d WHERE { ?run pg:nodeName 'Moving/note' ; prov:used/pg:containerDigest ?d }"
    )
    assert str(recorded) == first_digest


@shell.define
class EditCopy:
    executable = ["sed", "-i", "s/hello/hi/"]
    text: File = shell.arg(argstr="", copy_mode="copy")

    class Outputs:
        edited: File = shell.out(callable=lambda text: text)


def test_a_copied_input_is_changed_in_place_in_every_environment(
    env: Any, text_file: Path, cache_dir: Path
) -> None:
    """A copy lies in the job's directory: inside a container it is reached through the
    writable job directory, not bound read-only with the other inputs."""
    with Submitter(cache_dir=cache_dir, environment=env, progress=False) as sub:
        result = sub(EditCopy(text=text_file))
    assert not result.errored, result.errors
    edited = Path(result.outputs.edited)
    assert edited.parent.parent == cache_dir  # <cache>/<job>/words.txt: under its own name
    assert edited.read_text() == "hi\ncontainers\n"
    assert text_file.read_text() == "hello\ncontainers\n"  # the original is untouched
