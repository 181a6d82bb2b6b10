"""The remote provenance store: a real Oxigraph server (PyPI ``oxigraph``) on 127.0.0.1 and a
free port, fed by submissions and ``provgraph push``, queried by ``ProvenanceStore(url)``."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import requires_slurm, skip_unless_ci
from provgraph import ProvenanceError, ProvenanceStore, Submitter, python
from provgraph.cli import main as cli

OXIGRAPH = Path(sys.executable).with_name("oxigraph")
JOB_RUNS = "SELECT DISTINCT ?r WHERE { ?r a pg:JobRun }"


@python.define
def Twice(x: int) -> int:
    return 2 * x


@python.define
def Plus(a: int, b: int) -> int:
    return a + b


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Oxigraph:
    """``oxigraph serve`` (read-write) in a temporary folder, on a free port."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        if not OXIGRAPH.exists():
            skip_unless_ci(f"no {OXIGRAPH}: pip install oxigraph (the test extra has it)")
        self.folder, self.port = folder, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Oxigraph:
        self.process = subprocess.Popen(
            [
                str(OXIGRAPH),
                "serve",
                "--location",
                str(self.folder),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--union-default-graph",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(600):  # ready when it answers (polled, not timed)
            try:
                with urllib.request.urlopen(f"{self.url}/query?query=ASK%7B%7D", timeout=5):
                    return self
            except (urllib.error.URLError, OSError):
                if self.process.poll() is not None:
                    raise RuntimeError("oxigraph serve exited") from None
                time.sleep(0.05)
        raise RuntimeError("oxigraph serve did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Oxigraph]:
    running = Oxigraph(tmp_path / "oxigraph").start()
    try:
        yield running
    finally:
        running.stop()


def _runs(store: ProvenanceStore) -> set[str]:
    return {str(r) for (r,) in store.query(JOB_RUNS)}


def _graph_sizes(store: ProvenanceStore, runs: set[str]) -> dict[str, int]:
    values = " ".join(f"<{r}>" for r in runs)
    rows = store.query(
        f"SELECT ?g (COUNT(*) AS ?n) WHERE {{ VALUES ?g {{ {values} }} GRAPH ?g {{ ?s ?p ?o }} }} "
        "GROUP BY ?g"
    )
    return {str(g): int(n) for g, n in rows}


@pytest.mark.parametrize("worker", ["serial", "cf"])
def test_server_holds_what_the_cache_holds(server: Oxigraph, tmp_path: Path, worker: str) -> None:
    """A workflow's records reach the server as they are in the cache: the same job runs, each
    graph with the same number of triples, and the helpers answer the same from both."""
    cache = tmp_path / "cache"
    options = {"n_procs": 2} if worker == "cf" else {}
    with Submitter(
        cache_dir=cache, worker=worker, progress=False, provenance_store=server.url, **options
    ) as sub:
        result = sub(Twice().split(x=[1, 2, 3, 4]))
        again = sub(Plus(a=1, b=2))
    assert not result.errored and again.outputs.out == 3
    local, remote = ProvenanceStore(cache), ProvenanceStore(server.url)
    runs = _runs(local)
    assert len(runs) == 5 and _runs(remote) == runs
    assert _graph_sizes(remote, runs) == _graph_sizes(local, runs)
    assert remote.runs_of("Twice") == local.runs_of("Twice")
    assert len(remote.failed_runs()) == 0
    # each job's record was sent by the process that ran the job, as it was published: the
    # submitter's own push sent only the workflow runs, submissions and environments
    (sent,) = (cache / ".provenance" / "push").glob("*.sent")
    names = [line.split(" ", 1)[1] for line in sent.read_text().splitlines()]
    assert len(names) == 5 and all("/_prov-" in n for n in names)


def test_server_down_then_push_catches_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the server down the run completes (a warning says so); the next submission, then
    ``provgraph push``, send what was pending, with nothing duplicated."""
    oxigraph = Oxigraph(tmp_path / "oxigraph")  # not started yet: nobody listens on its port
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False, provenance_store=oxigraph.url) as sub:
        result = sub(Twice().split(x=[1, 2, 3]))
    assert not result.errored and result.outputs.out == [2, 4, 6]
    assert "provenance not sent" in capsys.readouterr().err
    oxigraph.start()
    try:
        with Submitter(cache_dir=cache, progress=False, provenance_store=oxigraph.url) as sub:
            sub(Twice(x=10))
        local, remote = ProvenanceStore(cache), ProvenanceStore(oxigraph.url)
        runs = _runs(local)
        assert len(runs) == 4 and _runs(remote) == runs
        assert cli(["push", str(cache), oxigraph.url]) == 0
        assert "pushed 0 graph(s)" in capsys.readouterr().out  # nothing left to send
        sizes = _graph_sizes(local, runs)
        (cursor,) = (cache / ".provenance" / "push").glob("*.json")
        cursor.unlink()  # everything is sent again: PUT replaces, nothing doubles
        assert cli(["push", str(cache), oxigraph.url]) == 0
        assert _graph_sizes(remote, runs) == sizes
    finally:
        oxigraph.stop()


def test_server_stopped_mid_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The server goes away between two submissions of one Submitter: no run fails."""
    oxigraph = Oxigraph(tmp_path / "oxigraph").start()
    cache = tmp_path / "cache"
    try:
        with Submitter(cache_dir=cache, progress=False, provenance_store=oxigraph.url) as sub:
            sub(Twice().split(x=[1, 2]))
            oxigraph.stop()
            late = sub(Twice().split(x=[3, 4]))
        assert not late.errored
        assert "provenance not sent" in capsys.readouterr().err
        oxigraph.start()
        assert ProvenanceStore(cache).push(oxigraph.url).error is None
        assert _runs(ProvenanceStore(oxigraph.url)) == _runs(ProvenanceStore(cache))
    finally:
        oxigraph.stop()


PUSHER = """
import sys
from provgraph import Submitter, python

@python.define
def Square(x: int) -> int:
    return x * x

with Submitter(cache_dir=sys.argv[1], progress=False, provenance_store=sys.argv[2]) as sub:
    result = sub(Square().split(x=list(range(int(sys.argv[3])))))
assert not result.errored
"""


def test_many_processes_push_at_once(server: Oxigraph, tmp_path: Path) -> None:
    """Four processes, 500 runs each, pushing to one server at the same time: none lost."""
    script = tmp_path / "pusher.py"
    script.write_text(PUSHER)
    caches = [tmp_path / f"cache{i}" for i in range(4)]
    processes = [
        subprocess.Popen([sys.executable, str(script), str(c), server.url, "500"]) for c in caches
    ]
    assert [p.wait(timeout=900) for p in processes] == [0, 0, 0, 0]
    expected = set().union(*(_runs(ProvenanceStore(c)) for c in caches))
    assert len(expected) == 2000
    assert _runs(ProvenanceStore(server.url)) == expected


def test_credentials_stay_out_of_records(
    server: Oxigraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token from the environment, or a password in the URL, is sent but never written."""
    monkeypatch.setenv("PROVGRAPH_PROVENANCE_STORE_TOKEN", "s3cret-token")
    cache = tmp_path / "cache"
    url = server.url.replace("http://", "http://ana:pa55word@")
    with Submitter(cache_dir=cache, progress=False, provenance_store=url) as sub:
        sub(Twice(x=3))
    assert len(_runs(ProvenanceStore(server.url))) == 1
    for path in cache.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"s3cret-token" not in data and b"pa55word" not in data, path


def test_bad_server_urls(tmp_path: Path) -> None:
    with pytest.raises(ProvenanceError, match=r"provenance_store='ftp://x'; expected the URL"):
        Submitter(cache_dir=tmp_path / "c", provenance_store="ftp://x")
    with pytest.raises(ProvenanceError, match=r"'ftp://x'; expected the URL of a SPARQL server"):
        ProvenanceStore("ftp://x", remote="ftp://x")
    remote = ProvenanceStore(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProvenanceError, match="SPARQL query failed"):
        remote.query(JOB_RUNS)
    with pytest.raises(ProvenanceError, match="needs ProvenanceStore\\(CACHE\\)"):
        remote.export(tmp_path / "x.ttl", "turtle")


needs_slurm = requires_slurm("start a one-node cluster with scripts/start-slurm.sh")


@needs_slurm
def test_slurm_jobs_send_their_records_from_the_node(server: Oxigraph, tmp_path: Path) -> None:
    """On SLURM, each job's record is sent by the SLURM job itself, as it is published."""
    from slurm_tasks import Nap

    cache = tmp_path / "cache"
    with Submitter(
        cache_dir=cache,
        worker="slurm",
        poll_interval=0.3,
        progress=False,
        provenance_store=server.url,
    ) as sub:
        result = sub(Nap().split(seconds=[0.0, 0.1]))
    assert not result.errored
    (sent,) = (cache / ".provenance" / "push").glob("*.sent")
    assert len(sent.read_text().splitlines()) == 2
    assert _runs(ProvenanceStore(server.url)) == _runs(ProvenanceStore(cache))


def test_endpoints_named_by_the_environment(
    server: Oxigraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose endpoints are not Oxigraph's layout is named endpoint by endpoint: here
    the URL given is a placeholder, and the variables say where graphs and queries go."""
    monkeypatch.setenv("PROVGRAPH_PROVENANCE_STORE_GRAPHS", f"{server.url}/store")
    monkeypatch.setenv("PROVGRAPH_PROVENANCE_STORE_QUERY", f"{server.url}/query")
    placeholder = f"http://127.0.0.1:{free_port()}/dataset"  # nothing listens there
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False, provenance_store=placeholder) as sub:
        sub(Twice().split(x=[1, 2]))
    assert _runs(ProvenanceStore(placeholder)) == _runs(ProvenanceStore(cache))


class Silent:
    """A port that accepts connections and never answers (a hung server), counting them."""

    def __init__(self) -> None:
        import threading

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.held:
            connection.close()


def test_a_hung_server_costs_a_few_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that never answers: the run succeeds, the first failed send makes this process
    leave the server alone, and the end of the submission tries once per request in flight."""
    silent = Silent()
    try:
        with Submitter(
            cache_dir=tmp_path / "cache", progress=False, provenance_store=silent.url
        ) as sub:
            result = sub(Twice().split(x=[1, 2, 3, 4, 5, 6]))
        assert not result.errored and result.outputs.out == [2, 4, 6, 8, 10, 12]
        assert "provenance not sent" in capsys.readouterr().err
        assert len(silent.held) <= 1  # one job's send failed; no other job, nor the end, waited
    finally:
        silent.close()


GARBAGE = b"SSH-2.0-OpenSSH_9.2\r\n"


def test_a_server_that_is_not_http_fails_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def answer() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.sendall(GARBAGE)
            connection.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with Submitter(cache_dir=tmp_path / "cache", progress=False, provenance_store=url) as sub:
            result = sub(Twice().split(x=[1, 2]))
        assert not result.errored and result.outputs.out == [2, 4]
        assert "provenance not sent" in capsys.readouterr().err
    finally:
        listener.close()


def test_records_no_journal_names_are_sent_too(server: Oxigraph, tmp_path: Path) -> None:
    """A cache whose journal is gone (or older than journals): the first push sends every
    record on disk."""
    cache = tmp_path / "cache"
    with Submitter(cache_dir=cache, progress=False) as sub:
        sub(Twice().split(x=[1, 2, 3]))
    (cache / ".provenance" / "journal").unlink()
    report = ProvenanceStore(cache).push(server.url)
    assert report.error is None and report.graphs >= 3
    assert len(_runs(ProvenanceStore(server.url))) == 3


def test_imported_records_do_not_cut_the_original(server: Oxigraph, tmp_path: Path) -> None:
    """A lab's results reused through readonly_caches: the user's push leaves the lab's
    workflow runs and submission on the server whole (end, status)."""
    lab, mine = tmp_path / "lab", tmp_path / "mine"
    with Submitter(cache_dir=lab, progress=False, provenance_store=server.url) as sub:
        sub(Twice().split(x=[1, 2]))
    ended = (
        "SELECT (COUNT(?s) AS ?n) WHERE { ?s a pg:Submission ; pg:status 'succeeded' ; "
        "prov:endedAtTime ?e }"
    )
    remote = ProvenanceStore(server.url)
    assert int(next(iter(remote.query(ended)))[0]) == 1
    with Submitter(
        cache_dir=mine, progress=False, readonly_caches=[lab], provenance_store=server.url
    ) as sub:
        again = sub(Twice().split(x=[1, 2]))
    assert again.stats["reused"] == 2
    assert int(next(iter(remote.query(ended)))[0]) == 2  # the lab's, and mine


def test_credentials_are_not_in_reprs() -> None:
    from provgraph.provenance.remote import Remote

    assert "pa55word" not in repr(Remote("http://ana:pa55word@127.0.0.1:9"))
