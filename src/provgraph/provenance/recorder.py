"""The recorder: the submitter hook that turns a submission's events into records.

In the submitting process, before a job is sent, :meth:`Recorder.prepare_job` names the job's
record in the journal and hands the worker the plain data the record needs, with
:func:`provgraph.provenance.record.write_job_run` to write it there. Workflow runs and the
submission are recorded as they start (their own graphs under ``.provenance/runs/``, before any
job that is ``pg:partOf`` them can be written) and completed when the submission ends (one file
under ``.provenance/submissions/``: end times, statuses, and the earlier runs it reused).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import pyoxigraph as ox

from .. import _signing, cache
from ..cache import atomic_write
from ..engine import events
from ..engine.runtime import JobRun, input_sources
from ..hashing import hash_value
from . import _triples as T
from . import deferred, journal
from . import vocab as V
from ._describe import describe_later
from .index import file_base
from .record import (
    A,
    G,
    P,
    _agents,
    _blank,
    _n,
    _place,
    _plan,
    _time,
    _trig,
    describe_value,
    field_types,
    pickle_definition,
    publish_from_result,
    record_name,
    record_path,
    recover,
    workflow_structure,
    write_job_run,
    write_under_provenance,
)

__all__ = ["Recorder"]


def _now() -> float:
    return datetime.datetime.now(tz=datetime.UTC).timestamp()


def _sealed(path: Path) -> bool:
    """True when ``path`` holds data sealed with this user's key (else it is written anew)."""
    try:
        return _signing.unseal_file(path) is not None
    except OSError:
        return False


def _keep_replaced_record(directory: Path, run_id: str) -> None:
    """Before a forced rerun replaces a saved result: the record of the run that saved it,
    if it was never written (its process was killed before), is written from the result's
    record data now, while that result is still there."""
    if run_id and not os.path.exists(record_path(directory, run_id)):
        try:
            publish_from_result(directory, run_id)
        except Exception as err:  # (the rerun goes on: it is what was asked for)
            print(
                f"provgraph: warning: the record of run {run_id} in {directory} could not be "
                f"written before its result is replaced: {type(err).__name__}: {err}",
                file=sys.stderr,
            )


class Recorder:
    """Submitter hook recording provenance: journal, per-job context, workflow runs, the
    submission."""

    def __init__(self, cache_dir: Path, *, remote: str | None = None) -> None:
        self.cache_dir = cache_dir
        self.remote: str | None = None
        if remote is not None:  # (the HTTP client is imported only for a server)
            from .remote import remote_url

            self.remote = remote_url(remote)
        self.user, self.login = V.user_iri()
        self._root = os.path.join(os.fspath(self.cache_dir), "")  # (job directories start so)
        self._definitions: dict[str, str] = {}  # definition hash -> its pickle's path
        self._task_classes: weakref.WeakKeyDictionary[Any, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )  # a task class -> what a record says of it (but its inputs)
        self._journal = journal.Writer(cache_dir)
        # jobs run in this process: their records written by a renderer process beside it
        self._writer: Any = write_job_run
        if self.remote is None and deferred.available():
            self._writer = deferred.DeferredRecords()
        self._reset()

    def _reset(self) -> None:
        self.submission = ""
        self.root_name = ""
        self.started = 0.0
        self.workflow_runs: dict[str, dict[str, Any]] = {}
        self.workflow_ends: dict[str, tuple[bool, float]] = {}  # nested ones, as they finish
        self.n_reused = 0  # jobs taken from the cache
        self.open_records: dict[str, Path] = {}  # journaled, their job not finished yet
        self.workflow_contexts: dict[str, dict[str, Any]] = {}  # workflow jobs' task contexts
        self.workflow_outputs: dict[str, list[ox.Quad]] = {}  # what each generated
        # workflow run -> earlier runs it reused (the submission reused all of them)
        self.reused_in: dict[str, set[str]] = {}
        # submissions of read-only caches whose runs were imported: their ends, copied at the end
        self.ends_to_copy: dict[Path, tuple[Path, str]] = {}
        self.gathered: dict[int, tuple[Any, str]] = {}  # lists gathered from upstream: hashes

    # -- in the submitting process, before each job is sent ---------------------------------
    def prepare_job(self, job: JobRun) -> tuple[dict[str, Any], Any]:
        """Journal the job's record; the plain data the worker-side writer needs, and it."""
        self._workflow_run(job.node.instance.run_id, job.node.instance)
        assert job.output_dir is not None and job.run_id is not None
        # job directories lie right under the cache: the record's path relative to it
        self._journal.add_relative(f"{job.output_dir.name}/{record_name(job.run_id)}")
        self.open_records[job.run_id] = job.output_dir
        context = {
            **self._task_context(job),
            "workflow_run": job.node.instance.run_id,
            "node": job.node.path,
            "container": getattr(job, "environment_info", None),
        }
        if job.replaces is not None:  # a forced rerun: which run, and what it made
            _keep_replaced_record(job.output_dir, job.replaces.run_id)
            context["rerun_of"] = V.run_iri(job.replaces.run_id)
            context["previous_outputs"] = {
                field: describe_value(value)["hash"]
                for field, value in (job.replaces.outputs or {}).items()
            }
        if self.remote is not None:  # the node that runs it sends its record (no credentials)
            from .remote import Remote

            context["remote"] = Remote(self.remote).base
            context["cache_dir"] = str(self.cache_dir)
        return context, self._writer

    def _task_context(self, job: JobRun) -> dict[str, Any]:
        """What a record says of a job's task and inputs (a task's job, or a workflow's)."""
        sources = input_sources(job)
        inputs: dict[str, dict[str, Any]] = {}
        for field, value in (job.inputs or {}).items():
            if sources.get(field):  # (none: a value, e.g. passed through a workflow)
                inputs[field] = {"sources": sources[field]}
                if isinstance(value, (list, tuple)) and len(sources[field]) > 1:
                    inputs[field]["hash"] = self._gathered_hash(value)  # a gathered list's own
            else:
                inputs[field] = describe_later(value)  # (plain: described by the writer)
        return self._definition_context(type(job.node.task), inputs)

    def _gathered_hash(self, value: Any) -> str:
        """The content hash of a list gathered from upstream runs, hashed once per list (the
        jobs of a node given the same list share it)."""
        known = self.gathered.get(id(value))
        if known is None or known[0] is not value:
            known = self.gathered[id(value)] = (value, hash_value(value).hex())
        return known[1]

    def _definition_context(self, task_cls: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """What a record says of a task definition, given its described inputs."""
        known = self._task_classes.get(task_cls)  # (made once per class: every job asks)
        if known is None:
            known = self._task_classes[task_cls] = {
                "cache_dir": str(self.cache_dir),
                "task_name": task_cls._task_name,
                "definition": task_cls._definition_hash.hex(),
                "definition_text": task_cls._definition_text,
                "kind": task_cls._kind,
                "types": field_types(task_cls),
                "definition_file": self._store_definition(task_cls),
                "user": self.user,
                "login": self.login,
            }
        return {**known, "inputs": inputs}

    def _store_definition(self, task_cls: Any) -> str:
        """The task class, pickled once per definition beside the index, for reruns; where
        (``""`` when it cannot be pickled); settled once per definition (on every job's path)."""
        digest = task_cls._definition_hash.hex()
        known = self._definitions.get(digest)
        if known is not None:
            return known
        path = self.cache_dir / ".provenance" / "definitions" / f"{digest}.pkl"
        if not _sealed(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                atomic_write(path, _signing.seal(pickle_definition(task_cls)))
            except Exception:  # a definition that cannot be pickled can still be recorded
                self._definitions[digest] = ""
                return ""
        self._definitions[digest] = str(path)
        return str(path)

    def _record_lost_failure(self, job: Any, outcome: Any) -> None:
        """A failure the worker could not record (its process died, or never got the job)."""
        work = job.job
        if work is None or work.context is None:
            return
        final = record_path(work.output_dir, work.run_id)
        with cache.unlocked_job(work.output_dir) as free:
            if not free:  # another process is running the job now: it will record itself
                return
            if work.output_dir.is_dir():  # a record it left aside is finished, not written twice
                stored = cache.read_result(work.output_dir)
                recover(work.output_dir, stored.run_id if stored is not None else None)
            if not final.exists():
                try:
                    self._write_lost(work, outcome)
                except OSError as err:  # (a full disk): the failure stands, its record is lost
                    print(
                        f"provgraph: warning: cannot record the failure of {work.name}: {err}",
                        file=sys.stderr,
                        flush=True,
                    )

    def _write_lost(self, work: Any, outcome: Any) -> None:
        """The failed record of a job whose process could not write it."""
        started = outcome.started or _now()
        ended = outcome.ended or _now()
        work.output_dir.mkdir(parents=True, exist_ok=True)  # it may have died before making it
        publish = write_job_run(
            work, attrs.evolve(outcome, started=started, ended=max(started, ended))
        )
        publish()

    def _reused(self, job: Any, run_id: str) -> None:
        """A result taken from the cache: its run is reused. A record its process left aside
        (killed between saving the result and publishing) is published by the index's next
        catch-up, which finishes every such record (:func:`.record.finish_abandoned`)."""
        if not run_id:
            return
        self.n_reused += 1
        instance = job.node.instance.run_id
        earlier = self.reused_in.get(instance)
        if earlier is None:
            earlier = self.reused_in[instance] = set()
        earlier.add(run_id)
        directory = job.output_dir
        if directory is None:
            return
        folder = os.fspath(directory)  # (string paths: this runs for every job reused)
        inside = folder.startswith(self._root) and os.sep not in folder[len(self._root) :]
        if not inside:  # from a read-only cache: its record too
            with contextlib.suppress(OSError, SyntaxError, ValueError):  # unreadable: not copied
                self._import(directory, run_id)

    def _run_file(self, run_id: str) -> Path:
        """Where a workflow run's or submission's start record is."""
        return self.cache_dir / ".provenance" / "runs" / f"{run_id.rsplit(':', 1)[-1]}.trig"

    def _import(self, directory: Path, run_id: str) -> None:
        """Copy the record of a run of another (read-only) cache (a job's, or a reused
        workflow's), and the workflow runs and submission it is part of, into this cache's
        store: locations stay where they are (absolute). The job runs inside a reused workflow
        stay in that cache's own store."""
        runs = directory.parent / ".provenance" / "runs"  # that cache's workflow runs
        record = record_path(directory, run_id)
        if not record.exists():
            record = runs / f"{run_id.rsplit(':', 1)[-1]}.trig"
        new_run = False  # a workflow run copied now: its end is to be copied too
        while record.exists():
            run = record.name.removeprefix("_prov-").removesuffix(".trig")
            copy = self.cache_dir / ".provenance" / "imported" / f"{run}.trig"
            if copy.exists():
                if not new_run:  # (every job reused after the first of its workflow run)
                    return
                quads = list(
                    ox.parse(path=copy, format=ox.RdfFormat.TRIG, base_iri=file_base(copy))
                )
            else:
                quads = self._copy_record(record, copy)
                new_run = new_run or record.parent == runs
            part_of = next((q.object for q in quads if q.predicate == G("partOf")), None)
            if part_of is None:  # the submission: the ends of it and its runs, at the end
                self.ends_to_copy[copy.with_name(f"{run}.end.trig")] = (directory.parent, run)
                return
            record = runs / f"{part_of.value.rsplit(':', 1)[-1]}.trig"

    def _copy_ends(self) -> None:
        """Copy, from the end records of the other caches' submissions imported from, the ends
        of those of their runs this cache has imported (all of them so far: an end copied at
        an earlier submission's end is copied again, with the runs imported since). Not
        ended there yet: nothing. A copy that fails is a warning."""
        if not self.ends_to_copy:
            return
        imported = self.cache_dir / ".provenance" / "imported"
        have = {p.name.removesuffix(".trig") for p in imported.glob("*.trig")}

        def kept(quad: Any) -> bool:
            graph = quad.graph_name
            return isinstance(graph, ox.NamedNode) and graph.value.rsplit(":", 1)[-1] in have

        for copy, (other_cache, run) in self.ends_to_copy.items():
            ends = other_cache / ".provenance" / "submissions" / f"{run}.trig"
            if ends.exists():
                with contextlib.suppress(OSError, SyntaxError, ValueError):
                    self._copy_record(ends, copy, keep=kept)
        self.ends_to_copy.clear()

    def _copy_record(
        self, record: Path, copy: Path, keep: Callable[[Any], bool] = lambda q: True
    ) -> list[Any]:
        """Copy another cache's ``record`` (the quads ``keep`` keeps) to ``copy``, journaled."""
        quads = [
            q
            for q in ox.parse(path=record, format=ox.RdfFormat.TRIG, base_iri=file_base(record))
            if keep(q)
        ]
        write_under_provenance(self.cache_dir, copy, quads)
        return quads

    def _workflow_run(self, run_id: str, instance: Any) -> None:
        """Record a workflow run when it is first seen, before any of its jobs runs."""
        if run_id in self.workflow_runs:
            return
        parent = instance.parent if instance is not None else None
        if parent is None:
            name, part_of = self.root_name, self.submission
        else:
            name = type(parent.node.task)._task_name
            part_of = parent.node.instance.run_id
            self._workflow_run(part_of, parent.node.instance)
        self._record_workflow_run(run_id, name, part_of)

    def _record_workflow_run(
        self,
        run_id: str,
        name: str,
        part_of: str,
        context: dict[str, Any] | None = None,
        node: str | None = None,
        job: Any = None,
        output_dir: Path | None = None,
    ) -> None:
        """A workflow run's start record; given its workflow job's ``context``, also the
        workflow's inputs it used (the same entities its first nodes use, with the workflow's
        parameters as roles) and the workflow definition it followed, as plan."""
        if run_id in self.workflow_runs:
            return
        self.workflow_runs[run_id] = {"name": name, "part_of": part_of}
        run = _n(V.run_iri(run_id))
        quads = [
            ox.Quad(run, A, G("WorkflowRun"), run),
            ox.Quad(run, G("taskName"), ox.Literal(name), run),
            ox.Quad(run, G("partOf"), _n(V.run_iri(part_of)), run),
        ]
        if node is not None:  # the workflow node it runs (a nested workflow: its step)
            quads.append(ox.Quad(run, G("workflowNode"), ox.Literal(node), run))
        if output_dir is None and job is not None:
            output_dir = job.output_dir
        if output_dir is not None:
            # the directory its result is kept in (what a cleanup removes with its jobs)
            quads.append(ox.Quad(run, G("outputDir"), _place(output_dir, str(self.cache_dir)), run))
        if context is not None:
            used: list[str] = []
            lines: list[str] = []
            T.usages(lines, run.value, context, str(self.cache_dir), used)
            quads += T.as_quads(lines, run.value)
            quads += _plan(run, context)
            self.workflow_contexts[run_id] = context
        self._write_start(run, quads, plan=context["definition"] if context else None)

    def _write_start(
        self, run: ox.NamedNode, quads: list[ox.Quad], plan: str | None = None
    ) -> None:
        """A run's own graph as it starts: an activity, its start time, what it is, and the
        engine's association with it (with the definition it follows as plan, if any)."""
        association = _blank(run)
        quads = [
            ox.Quad(run, A, P("Activity"), run),
            ox.Quad(run, P("startedAtTime"), _time(_now()), run),
            ox.Quad(run, P("wasAssociatedWith"), _n(V.agent_iri()), run),
            ox.Quad(run, P("qualifiedAssociation"), association, run),
            ox.Quad(association, A, P("Association"), run),
            ox.Quad(association, P("agent"), _n(V.agent_iri()), run),
            *quads,
        ]
        if plan is not None:
            quads.append(ox.Quad(association, P("hadPlan"), _n(V.definition_iri(plan)), run))
        quads += _agents(run, {"user": self.user, "login": self.login})
        path = self._run_file(run.value)
        self._journal.add(path)  # (the submission's journal file, kept open)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, _trig(quads, depth=2))

    # -- events ---------------------------------------------------------------------------
    def __call__(self, event: events.Event) -> None:
        # the events of every job first: for most, nothing more is to be done
        if type(event) is events.JobReused:  # (every job a warm run takes from the cache)
            self._reused(event.job, getattr(event.outcome, "run_id", ""))
            return
        if isinstance(event, events.JobFinished):
            if event.job.job is not None:
                self.open_records.pop(event.job.job.run_id, None)  # its record is settled
            if event.outcome.executed and event.outcome.ok:
                return
        elif isinstance(event, events.JobSubmitted) and type(event.job.node.task)._kind != (
            "workflow"
        ):
            return
        if isinstance(event, events.RunStarted):
            self._reset()
            if self.remote is not None:  # each submission tries the server again
                from .remote import forget_failures

                forget_failures(self.remote)
            self.submission = event.run_id
            self.root_name = event.task_name
            if isinstance(self._writer, deferred.DeferredRecords):
                self._writer.expect(event.n_jobs, reused=lambda: self.n_reused)
            self.started = _now()
            sub = _n(V.run_iri(self.submission))
            self._write_start(
                sub,
                [
                    ox.Quad(sub, A, G("Submission"), sub),
                    ox.Quad(sub, G("taskName"), ox.Literal(self.root_name), sub),
                ],
            )
            if event.workflow_run:  # recorded even when every job is taken from the cache
                context = None
                # a task submitted alone: the run of the whole used its inputs and followed its
                # definition, and keeps its result (a workflow's own run, inside, says so for a
                # workflow: this one only holds it)
                if event.task is not None and type(event.task)._kind != "workflow":
                    values = {
                        k: v for k, v in event.task._recorded_values().items() if v is not None
                    }
                    described = {k: describe_value(v) for k, v in values.items()}
                    context = self._definition_context(type(event.task), described)
                self._record_workflow_run(
                    event.workflow_run,
                    self.root_name,
                    self.submission,
                    context=context,
                    output_dir=event.output_dir if context is not None else None,
                )
        elif (
            isinstance(event, events.JobSubmitted) and type(event.job.node.task)._kind == "workflow"
        ):
            # a workflow job opens: its run is recorded before any result can name it
            job = event.job
            self._workflow_run(job.node.instance.run_id, job.node.instance)
            self._record_workflow_run(
                job.run_id,
                type(job.node.task)._task_name,
                job.node.instance.run_id,
                context=self._task_context(job),
                node=job.node.path,
                job=job,
            )
        elif isinstance(event, events.JobFinished) and not event.outcome.executed:
            # another process ran it meanwhile: the record journaled for this run never comes
            work = event.job.job
            if work is not None and work.run_id != event.outcome.run_id:
                journal.append(
                    self.cache_dir, [record_path(work.output_dir, work.run_id)], withdraw=True
                )
            self._reused(event.job, event.outcome.run_id)
        elif isinstance(event, events.JobFinished) and not event.outcome.ok:
            self._record_lost_failure(event.job, event.outcome)
        elif isinstance(event, events.WorkflowFinished):
            if event.job.inner is not None:  # recorded even when every job in it was cached
                self._workflow_run(event.job.run_id, event.job.inner)
            self.workflow_ends[event.job.run_id] = (event.ok, _now())
            quads = self._workflow_outputs(event.job) if event.ok else []
            if event.job.inner is not None:  # the definition's structure, as this run built it
                run = _n(V.run_iri(event.job.run_id))
                nodes = {name: node.task for name, node in event.job.inner.nodes.items()}
                definition = type(event.job.node.task)._definition_hash.hex()
                quads += workflow_structure(run, definition, nodes)
            self.workflow_outputs[event.job.run_id] = quads
        elif isinstance(event, events.RunFinished):
            self._copy_ends()
            if event.workflow_run and event.outputs is not None:  # the whole's outputs
                self.workflow_outputs[event.workflow_run] = self._outputs_of(
                    event.workflow_run, event.outputs, event.output_sources
                )
            done = event.executed + event.reused
            counts = {
                "executedJobs": event.executed,
                "reusedJobs": event.reused,
                "failedJobs": event.failed,
                "skippedJobs": event.skipped,
            }
            self.submission_ended()  # (while the submission still holds the cache)
            self._write_end(
                "succeeded" if event.failed == 0 else "partial" if done else "failed", counts
            )
            self._journal.close()
            self._push()
        elif isinstance(event, events.RunInterrupted):  # (its records: submission_ended)
            self._copy_ends()
            self._withdraw_unstarted()
            self._write_end("interrupted")
            self._journal.close()  # (not sent now: who interrupts a run wants it to stop)

    def submission_ended(self) -> None:
        """Every record handed to the renderer is written: at the submission's end (while it
        still holds the cache), and again, for whatever else ended it (Ctrl-C, an error
        escaping the engine), before ``sub()`` raises (the second call finds nothing to do)."""
        if isinstance(self._writer, deferred.DeferredRecords):
            self._writer.finish()
        self._copy_ends()  # (the ends of runs imported: after an error too)
        self.gathered.clear()

    def _push(self) -> None:
        """Send what the server has not got yet; a failure is a warning, never the run's."""
        if self.remote is None:
            return
        from .remote import PushReport, push

        try:
            report = push(self.cache_dir, self.remote, quick=True)
        except Exception as err:  # whatever goes wrong, the run's results stand
            report = PushReport(error=f"{type(err).__name__}: {err}")
        if report.error is not None:
            print(
                f"provgraph: warning: provenance not sent: {report.error}; the records stay in "
                f"the cache, and the next submission (or provgraph push {self.cache_dir} URL) "
                "sends them",
                file=sys.stderr,
                flush=True,
            )

    def _workflow_outputs(self, job: Any) -> list[ox.Quad]:
        """The outputs a workflow job's run generated (see :meth:`_outputs_of`)."""
        return self._outputs_of(job.run_id, job.outputs, job.output_sources)

    def _outputs_of(
        self,
        run_id: str,
        outputs: dict[str, Any] | None,
        output_sources: dict[str, list[tuple[str, str]]] | None,
    ) -> list[ox.Quad]:
        """The outputs a workflow run generated: entities of its own, each derived from the
        node output it is (described now, while their files are where the run left them)."""
        run = _n(V.run_iri(run_id))
        context = self.workflow_contexts.get(run_id)
        if context is None or outputs is None:
            return []
        lines: list[str] = []
        for field, value in outputs.items():
            role = T.iri(V.parameter_iri(context["definition"], "output", field))
            sources = (output_sources or {}).get(field, [])
            derived = [T.iri(V.output_iri(V.run_iri(r), f)) for r, f in sources if r]
            T.parameter(lines, role, context, "output", field)
            for source in derived:
                lines.append(f"{source} a prov:Entity .\n")
            entity = T.iri(V.output_iri(run.value, field))
            T.generated(
                lines, run.value, entity, describe_value(value), role, derived, str(self.cache_dir)
            )
        return T.as_quads(lines, run.value)

    def _withdraw_unstarted(self) -> None:
        """Withdraw the journaled records of jobs that never ran (the interrupt came first):
        no reader waits for them. A job that was running is recorded by its next run, which
        names that record in the journal again."""
        withdrawn = []
        for run_id, directory in self.open_records.items():
            if not record_path(directory, run_id).exists():
                withdrawn.append(record_path(directory, run_id))
        self.open_records.clear()
        journal.append(self.cache_dir, withdrawn, withdraw=True)

    def _write_end(self, status: str, counts: dict[str, int] | None = None) -> None:
        """The submission's end: end times and statuses of it and its workflow runs, and the
        earlier runs it reused (one file, each run's triples in its own graph)."""
        ended = _now()
        now = _time(ended)
        sub = _n(V.run_iri(self.submission))
        quads = [  # what it is was said when it started: said twice, it would count twice
            ox.Quad(sub, P("endedAtTime"), now, sub),
            ox.Quad(sub, G("status"), ox.Literal(status), sub),
        ]
        for name, count in (counts or {}).items():  # what `provgraph runs` shows
            quads.append(ox.Quad(sub, G(name), ox.Literal(count), sub))
        for run_id in self.workflow_runs:
            run = _n(V.run_iri(run_id))
            if run_id in self.workflow_ends:
                done, when = self.workflow_ends[run_id]
                state = "succeeded" if done else "failed"
            else:
                state, when = status, ended
            quads += [
                ox.Quad(run, P("endedAtTime"), _time(when), run),
                ox.Quad(run, G("status"), ox.Literal(state), run),
                *self.workflow_outputs.get(run_id, []),
            ]
        # the earlier runs reused (one per job taken from the cache: thousands) written as
        # text, in more blocks of the same graphs, not built as quads: one statement per graph,
        # its objects listed one a line (the same list, for a submission of one workflow run)
        listed = {run_id: _objects(earlier) for run_id, earlier in self.reused_in.items()}
        reused = [_reused_block(run_id, listed.get(run_id, "")) for run_id in self.workflow_runs]
        everything = (  # (the submission reused them all)
            next(iter(listed.values()))
            if len(listed) == 1
            else _objects(set().union(*self.reused_in.values()))
        )
        reused.append(_reused_block(self.submission, everything))
        folder = self.cache_dir / ".provenance" / "submissions"
        path = folder / f"{self.submission.rsplit(':', 1)[-1]}.trig"
        self._journal.add(path)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, _trig(quads, depth=2) + "".join(reused).encode())


def _objects(earlier: Iterable[str]) -> str:
    """The earlier runs, as the objects of one TriG statement: one a line, in order."""
    return " ,\n    ".join([f"<{V.run_iri(e)}>" for e in sorted(earlier)])


def _reused_block(run_id: str, objects: str) -> str:
    """A TriG block of ``run_id``'s graph: the earlier runs it reused (none: nothing)."""
    if not objects:
        return ""
    run = V.run_iri(run_id)
    return f"<{run}> {{\n<{run}> <{V.PG}reused> {objects} .\n}}\n"
