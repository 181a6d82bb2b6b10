"""The actions of a Workflow Run RO-Crate: each job run and workflow run a ``CreateAction``,
the runs of one step of a workflow run a ``ControlAction``, a submission the engine's
``OrganizeAction``; and who ran them (the person, the engine)."""

from __future__ import annotations

import datetime
import re
import urllib.parse
from typing import Any

from .. import __version__
from ..exceptions import ProvenanceError
from . import vocab as V
from ._crate_parts import (
    WORKFLOW_RUN_TERMS,
    Crate,
    G,
    P,
    as_workflow,
    ref,
    refs,
    tool,
    value_entity,
)
from ._facts import Facts

_COMPLETED = "http://schema.org/CompletedActionStatus"
_FAILED = "http://schema.org/FailedActionStatus"
_UNITS = {  # resource usage recorded per job run: property -> (name, QUDT unit)
    "cpuUserTime": ("CPU time in user mode", "https://qudt.org/vocab/unit/SEC"),
    "cpuSystemTime": ("CPU time in system mode", "https://qudt.org/vocab/unit/SEC"),
    "peakMemory": ("peak resident memory", "https://qudt.org/vocab/unit/BYTE"),
}
_ENVIRONMENT = {  # environment facts written as PropertyValues of each action's environment
    "pythonVersion": "python_version",
    "platform": "platform",
    "hostname": "hostname",
    "cpuCount": "cpu_count",
}
_RUN_FACTS = (
    "jobHash",
    "nodeName",
    "workflowNode",
    "taskName",
    "status",
    "worker",
    "workerHost",
    "elementIndex",
)
_LINKS = ("reused", "rerunOf", "reproduced", "partOf")

# ---------------------------------------------------------------------------------------------
# actions


def _iso(when: str) -> str:
    """A recorded time as the profiles write it: milliseconds and a ``+hh:mm`` offset."""
    try:
        moment = datetime.datetime.fromisoformat(str(when))
    except ValueError:
        return str(when)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("Z", "+00:00")


def _times(facts: Facts, run: str) -> dict[str, Any]:
    times = {}
    start, end = facts.one(run, P("startedAtTime")), facts.one(run, P("endedAtTime"))
    if start is not None:
        times["startTime"] = _iso(start)
    if end is not None:
        times["endTime"] = _iso(end)
    return times


def _status(facts: Facts, run: str) -> dict[str, Any]:
    status = facts.one(run, G("status"))
    if status is None:
        return {}
    if status == "succeeded":
        return {"actionStatus": _COMPLETED}
    messages = [str(facts.one(e, G("errorMessage"), "")) for e in facts.all(run, G("error"))]
    error = "; ".join(m for m in messages if m) or f"the run ended {status}"
    return {"actionStatus": _FAILED, "error": error}


def _pg_facts(facts: Facts, run: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in _RUN_FACTS:
        value = facts.one(run, G(name))
        if value is not None:
            found[f"pg:{name}"] = value
    for name in _LINKS:
        targets = facts.all(run, G(name))
        if name == "partOf":  # through the runs that only group a split's elements
            targets = [t for t in (_described_parent(facts, t) for t in targets) if t]
        if targets:
            found[f"pg:{name}"] = refs(targets)
    return found


def _described_parent(facts: Facts, run: str) -> str | None:
    """The nearest run at or above ``run`` that the crate describes as an action."""
    seen: set[str] = set()
    while run and run not in seen and facts.has(run):
        seen.add(run)
        if not (facts.is_a(run, G("WorkflowRun")) and facts.plan(run) is None):
            return run
        run = facts.one(run, G("partOf"))
    return None


def _inputs_outputs(crate: Crate, run: str) -> dict[str, Any]:
    facts = crate.facts
    usages = [
        (facts.one(u, P("entity")), facts.one(u, P("hadRole")))
        for u in facts.all(run, P("qualifiedUsage"))
    ]
    usages = sorted(  # by entity, not by usage node: blank node labels differ by backend
        (entity, role if facts.is_a(role, G("Parameter")) else None)
        for entity, role in usages
        if entity is not None
        and role != G("environmentRole")
        and not facts.is_a(entity, G("Environment"))
    )
    # the members of a list a run used are used too (and listed), but the parameter is the list's
    members = {(m, role) for entity, role in usages for m in facts.all(entity, P("hadMember"))}
    used = [
        value_entity(crate, entity, None if (entity, role) in members else role)
        for entity, role in usages
    ]
    made: list[str] = []
    for entity in facts.subjects(P("wasGeneratedBy"), run):
        roles = [facts.one(g, P("hadRole")) for g in facts.all(entity, P("qualifiedGeneration"))]
        role = next((r for r in roles if r is not None), None)
        made.append(value_entity(crate, entity, role))
    return {"object": refs(used), "result": refs(made)}


def _environment(crate: Crate, run: str) -> dict[str, Any]:
    """The environment(s) a run used: PropertyValues, and the container image if any."""
    facts = crate.facts
    found: dict[str, Any] = {}
    values: list[str] = []
    for env in facts.all(run, P("used")):
        if not facts.is_a(env, G("Environment")):
            continue
        for prop, name in _ENVIRONMENT.items():
            value = facts.one(env, G(prop))
            if value is not None:
                identifier = f"{env}#{prop}"
                crate.add(
                    {"@id": identifier, "@type": "PropertyValue", "name": name, "value": value}
                )
                values.append(identifier)
        image = facts.one(env, G("containerImage"))
        if image is not None:
            found["containerImage"] = ref(_image(crate, env, str(image)))
    if values:
        found["environment"] = refs(values)
    return found


def _image(crate: Crate, env: str, image: str) -> str:
    facts = crate.facts
    runtime = str(facts.one(env, G("containerRuntime"), ""))
    digest = str(facts.one(env, G("containerDigest"), ""))
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    registry, _, short = name.partition("/") if "/" in name else ("docker.io", "", name)
    kind = "SIFImage" if runtime == "apptainer" else "DockerImage"
    identifier = f"{env}#image"
    crate.add(
        {
            "@id": identifier,
            "@type": "ContainerImage",
            "additionalType": ref(f"{WORKFLOW_RUN_TERMS}#{kind}"),
            "name": short if kind == "DockerImage" else image,
            "registry": registry if kind == "DockerImage" else "local file",
            **({"tag": tag} if tag else {}),
            **({"sha256": digest.removeprefix("sha256:")} if digest else {}),
            "pg:containerRuntime": runtime or None,
            "pg:containerImage": image,
        }
    )
    return identifier


def _resources(crate: Crate, run: str) -> dict[str, Any]:
    usage: list[str] = []
    for prop, (name, unit) in _UNITS.items():
        value = crate.facts.one(run, G(prop))
        if value is None:
            continue
        identifier = f"{run}#{prop}"
        crate.add(
            {
                "@id": identifier,
                "@type": "PropertyValue",
                "propertyID": G(prop),
                "name": name,
                "value": value,
                "unitCode": unit,
            }
        )
        usage.append(identifier)
    return {"resourceUsage": refs(usage)} if usage else {}


def _run_action(crate: Crate, run: str) -> str:
    """A job run or workflow run as a ``CreateAction`` whose instrument is its definition."""
    facts = crate.facts
    plan = facts.plan(run)
    label = str(
        facts.one(run, G("nodeName"))
        or facts.one(run, G("workflowNode"))
        or facts.one(run, G("taskName"))
        or "task"
    )
    kind = "workflow" if facts.is_a(run, G("WorkflowRun")) else "job"
    crate.add(
        {
            "@id": run,
            "@type": "CreateAction",
            "name": f"Run of {label}",
            "description": f"provgraph {kind} run of {label}",
            **({"instrument": ref(tool(crate, plan))} if plan is not None else {}),
            "agent": ref(_person(crate, run)),
            **_times(facts, run),
            **_status(facts, run),
            **_inputs_outputs(crate, run),
            **_environment(crate, run),
            **_resources(crate, run),
            **_pg_facts(facts, run),
        }
    )
    if run not in crate.mentions:
        crate.mentions.append(run)
    return run


# ---------------------------------------------------------------------------------------------
# the run tree: submissions, workflow runs and the steps they ran


def _children(facts: Facts, run: str, seen: set[str] | None = None) -> list[str]:
    """The runs directly inside ``run`` (or reused by it), looking through the plan-less runs
    that only group the elements of a split. A job a workflow run reused is that workflow
    run's, not also its submission's (which lists it too)."""
    seen = set() if seen is None else seen
    found: list[str] = []
    reused = [
        r
        for r in facts.all(run, G("reused"))
        if facts.is_a(r, G("WorkflowRun"))
        or not [
            w
            for w in facts.subjects(G("reused"), r)
            if w != run and facts.is_a(w, G("WorkflowRun"))
        ]
    ]
    for child in [*facts.subjects(G("partOf"), run), *reused]:
        if child in seen or not facts.has(child):
            continue
        seen.add(child)
        if facts.is_a(child, G("WorkflowRun")) and facts.plan(child) is None:
            found.extend(_children(facts, child, seen))
        elif facts.is_a(child, G("JobRun")) or facts.is_a(child, G("WorkflowRun")):
            found.append(child)
    return sorted(found, key=lambda r: (str(facts.one(r, P("startedAtTime"), "")), r))


def _step_of(crate: Crate, definition: str, run: str) -> str | None:
    """Which step of a workflow definition a run inside one of its runs ran: by its node name,
    else by the step's definition. A workflow whose structure was never recorded (its run was
    interrupted) gets its steps from the node names of the runs inside it."""
    facts = crate.facts
    steps = facts.all(definition, G("hasStep"))
    node = facts.one(run, G("nodeName")) or facts.one(run, G("workflowNode"))
    name = str(node).rsplit("/", 1)[-1] if node is not None else None
    for step in steps:
        if name is not None and facts.label(step) == name:
            return str(step)
    plan = facts.plan(run)
    for step in steps:
        if name is None and facts.one(step, G("stepDefinition")) == plan:
            return str(step)
    if steps or name is None:
        return None
    digest = str(facts.one(definition, G("definitionHash"), "")).rsplit(":", 1)[-1]
    step = V.step_iri(digest, name)
    entity: dict[str, Any] = {"@id": step, "@type": "HowToStep", "name": name}
    if plan is not None:
        entity["workExample"] = ref(tool(crate, plan))
    crate.add(entity)
    workflow = crate.entities[tool(crate, definition)]
    workflow.setdefault("step", [])
    if ref(step) not in workflow["step"]:
        workflow["step"].append(ref(step))
        if plan is not None:
            workflow.setdefault("hasPart", []).append(ref(tool(crate, plan)))
    return step


def _orchestrate(crate: Crate, run: str) -> list[str]:
    """The run as an action, its steps as ControlActions (returned), recursively."""
    facts = crate.facts
    _run_action(crate, run)
    plan = facts.plan(run)
    if plan is None:
        return []
    definition = tool(crate, plan)
    workflow = crate.entities[definition]
    if "ComputationalWorkflow" not in workflow["@type"]:
        as_workflow(crate, plan, workflow)
    by_step: dict[str, list[str]] = {}
    if facts.is_a(run, G("JobRun")):  # a task submitted alone
        by_step[f"{plan}#step"] = [run]
    elif facts.one(plan, G("taskKind")) != "workflow":  # a task split over inputs
        for child in _children(facts, run):
            by_step.setdefault(f"{plan}#step", []).append(child)
    else:
        for child in _children(facts, run):
            step = _step_of(crate, plan, child)
            if step is not None:
                by_step.setdefault(step, []).append(child)
    controls: list[str] = []
    for step, runs in by_step.items():
        for child in runs:
            if child == run:
                continue
            if facts.is_a(child, G("WorkflowRun")):
                controls.extend(_orchestrate(crate, child))
            else:
                _run_action(crate, child)
        controls.append(_control(crate, run, step, runs))
    action = crate.entities[run]
    if not action.get("result") and facts.one(plan, G("taskKind")) != "workflow":
        # the run of a task submitted alone or split made what its jobs made
        made = [
            r
            for child in by_step.get(f"{plan}#step", [])
            if child != run
            for r in crate.entities[child].get("result", [])
        ]
        action["result"] = made
    return controls


def _control(crate: Crate, run: str, step: str, runs: list[str]) -> str:
    facts = crate.facts
    name = str(crate.entities.get(step, {}).get("name") or facts.label(step, "step"))
    identifier = f"{run}#control:{urllib.parse.quote(name, safe='')}"
    failed = [r for r in runs if facts.one(r, G("status")) != "succeeded"]
    starts = [s for r in runs if (s := facts.one(r, P("startedAtTime"))) is not None]
    ends = [e for r in runs if (e := facts.one(r, P("endedAtTime"))) is not None]
    problem = f"{len(failed)} of {len(runs)} runs did not succeed (or never ended)"
    crate.add(
        {
            "@id": identifier,
            "@type": "ControlAction",
            "name": f"Orchestration of step {name}",
            "instrument": ref(step),
            "object": refs(runs),
            **({"startTime": _iso(min(starts))} if starts else {}),
            **({"endTime": _iso(max(ends))} if ends else {}),
            "actionStatus": _FAILED if failed else _COMPLETED,
            **({"error": problem} if failed else {}),
        }
    )
    return identifier


def organize(crate: Crate, submission: str) -> list[str]:
    """A submission as the engine's OrganizeAction; returns its top-level runs."""
    facts = crate.facts
    tops = _children(facts, submission)
    controls: list[str] = []
    for top in tops:
        controls.extend(_orchestrate(crate, top))
    crate.add(
        {
            "@id": submission,
            "@type": "OrganizeAction",
            "name": f"provgraph submission of {facts.one(submission, G('taskName'), 'a task')}",
            "instrument": ref(_engine(crate, submission, tops)),
            "agent": ref(_person(crate, submission)),
            "object": refs(controls),
            "result": refs(tops),
            **_times(facts, submission),
            **_status(facts, submission),
            **_pg_facts(facts, submission),
        }
    )
    crate.mentions.append(submission)
    return tops


def _software_agent(facts: Facts, run: str) -> str | None:
    agents = [
        a for a in facts.all(run, P("wasAssociatedWith")) if facts.is_a(a, P("SoftwareAgent"))
    ]
    return agents[0] if agents else None


def _engine(crate: Crate, submission: str, tops: list[str]) -> str:
    """The provgraph that ran a submission (the agent its runs were associated with)."""
    facts = crate.facts
    engine = _software_agent(facts, submission)
    for top in tops:
        engine = engine or _software_agent(facts, top)
    engine = engine or V.agent_iri()
    label = facts.label(engine, f"provgraph {__version__}")
    crate.add(
        {
            "@id": engine,
            "@type": "SoftwareApplication",
            "name": "provgraph",
            "description": "provgraph, a dataflow engine recording W3C PROV",
            "version": label.rsplit(" ", 1)[-1],
            "url": ref("https://pypi.org/project/provgraph/"),
        }
    )
    return engine


_ORCID = re.compile(r"(https://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])")


def orcid(value: str) -> str:
    """An ORCID as its https IRI; anything else is refused, saying what was expected."""
    match = _ORCID.fullmatch(value.strip())
    if match is None:
        raise ProvenanceError(
            f"export ro-crate: agent_orcid (or PROVGRAPH_AGENT_ORCID) {value!r} is not an ORCID; "
            "expected 0000-0002-1825-0097 or https://orcid.org/0000-0002-1825-0097"
        )
    return f"https://orcid.org/{match.group(2)}"


def _person(crate: Crate, run: str) -> str:
    """Who ran ``run``: the person its engine acted for (login@host), or, when the exporter
    says who that is (name, ORCID), that person."""
    facts = crate.facts
    engine = _software_agent(facts, run)
    login = facts.one(engine, P("actedOnBehalfOf")) if engine is not None else None
    if login is None:
        people = facts.of_type(P("Person"))
        login = people[0] if people else V.user_iri()[0]
    options = crate.options
    identifier = orcid(options.agent_orcid) if options.agent_orcid else str(login)
    crate.add(
        {
            "@id": identifier,
            "@type": "Person",
            "name": options.agent_name or facts.label(login, "unknown"),
            **({"identifier": [str(login)]} if identifier != login else {}),
        }
    )
    if not crate.agent:
        crate.agent = identifier
    return identifier
