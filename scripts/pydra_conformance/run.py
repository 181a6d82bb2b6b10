#!/usr/bin/env python
"""Run Pydra's own behaviour tests on the installed Pydra and on provgraph (via the shim).

    python scripts/pydra_conformance/run.py --mirror /work/.mirror/nipype+pydra/repo
    python scripts/pydra_conformance/run.py /path/to/extracted/pydra/checkout

Each test module runs in a fresh interpreter, once with a normal ``sys.path`` (the installed
Pydra) and once with ``shim/`` first on it (provgraph under Pydra's names). Prints a table per
module and writes every test's outcome on both sides to ``--json``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIM = HERE / "shim"

MODULES = [
    "pydra/engine/tests/test_state.py",
    "pydra/engine/tests/test_task_state.py",
    "pydra/compose/tests/test_python_fields.py",
    "pydra/compose/tests/test_python_run.py",
    "pydra/engine/tests/test_cache_dirs.py",
    "pydra/engine/tests/test_task_file.py",
    "pydra/compose/shell/tests/test_shell_cmdline.py",
    "pydra/compose/shell/tests/test_shell_templating.py",
    "pydra/compose/shell/tests/test_shell_run.py",
    "pydra/compose/tests/test_workflow_run.py",
]


def extract(gitdir: Path, dest: Path) -> str:
    """Write HEAD's tree of the bare repository ``gitdir`` into ``dest``; blobs absent from
    the mirror (large files) are skipped. Returns the commit."""
    git = ["git", f"--git-dir={gitdir}"]
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    listing = subprocess.run(
        [*git, "ls-tree", "-r", "-z", "HEAD"], check=True, capture_output=True
    ).stdout.split(b"\0")
    entries = []
    for raw in filter(None, listing):
        meta, path = raw.split(b"\t", 1)
        mode, kind, sha = meta.split()
        if kind == b"blob":
            entries.append((mode.decode(), sha.decode(), path.decode()))
    if dest.exists():
        shutil.rmtree(dest)
    batch = subprocess.Popen(
        [*git, "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    skipped = []
    for mode, sha, path in entries:
        batch.stdin.write(sha.encode() + b"\n")
        batch.stdin.flush()
        header = batch.stdout.readline().split()
        if header[-1] == b"missing":
            skipped.append(path)
            continue
        data = batch.stdout.read(int(header[2]))
        batch.stdout.read(1)
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            os.symlink(data.decode(), target)
        else:
            target.write_bytes(data)
            if mode == "100755":
                target.chmod(0o755)
    batch.stdin.close()
    batch.wait()
    (dest / ".pconf-commit").write_text(commit + "\n")
    if skipped:
        print(
            f"extracted {commit[:12]} to {dest}; blobs missing from the mirror, skipped: "
            + ", ".join(skipped),
            file=sys.stderr,
        )
    return commit


def run_module(side: str, module: str, checkout: Path, work: Path, args) -> dict:
    tag = f"{side}-{Path(module).stem}"
    record = work / "records" / f"{tag}.jsonl"
    log = work / "logs" / f"{tag}.log"
    cwd = work / "cwd" / tag
    for p in (record.parent, log.parent):
        p.mkdir(parents=True, exist_ok=True)
    if cwd.exists():
        shutil.rmtree(cwd)
    cwd.mkdir(parents=True)
    record.unlink(missing_ok=True)
    env = dict(os.environ)
    path = [str(HERE)]
    if side == "provgraph":
        path.insert(0, str(SHIM))
        env["PROVGRAPH_CACHE_DIR"] = str(cwd / "provgraph-default-cache")
        env.setdefault("PROVGRAPH_KEY_FILE", str(work / "provgraph-key"))
        env["PCONF_WORKFLOW_MODE"] = args.workflow_mode
    env["PYTHONPATH"] = os.pathsep.join(path)
    env["PYDRA_CONFORMANCE_CHECKOUT"] = str(checkout)
    env["PCONF_RECORD"] = str(record)
    env["PCONF_TEST_TIMEOUT"] = str(args.test_timeout)
    env["NO_ET"] = "true"
    # Pydra's default run cache (platformdirs) lands in the module's own directory, not ~/.cache
    env["XDG_CACHE_HOME"] = str(cwd / "xdg-cache")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-o",
        "addopts=",
        "-o",
        "consider_namespace_packages=true",
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        "-p",
        "pconf_plugin",
        "--rootdir",
        str(checkout),
        "-q",
        "-rN",
        "--tb=short",
        str(checkout / module),
    ]
    start = time.time()
    timed_out = False
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(timeout=args.module_timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, 9)
            proc.wait()
    took = time.time() - start
    print(
        f"  {side:9s} {module:55s} {took:7.1f} s" + (" (module timeout)" if timed_out else ""),
        file=sys.stderr,
        flush=True,
    )
    return {
        "side": side,
        "module": module,
        "record": str(record),
        "log": str(log),
        "seconds": round(took, 1),
        "timed_out": timed_out,
        "rc": proc.returncode,
    }


def read_record(path: str) -> tuple[list[str], dict[str, dict], list[dict]]:
    collected, tests, collect_errors = [], {}, []
    if not Path(path).exists():
        return collected, tests, collect_errors
    for line in Path(path).read_text().splitlines():
        e = json.loads(line)
        if e["event"] == "collected":
            collected.append(e["nodeid"])
        elif e["event"] == "collect_error":
            collect_errors.append(e)
        else:
            t = tests.setdefault(e["nodeid"], {"outcome": "passed"})
            if e["outcome"] == "failed" and t["outcome"] != "failed":
                t.update(
                    outcome="failed",
                    when=e["when"],
                    exc_type=e.get("exc_type"),
                    message=e.get("message"),
                    internal=e.get("internal", False),
                )
            elif e["outcome"] == "skipped" and t["outcome"] == "passed":
                t["outcome"] = "xfailed" if e["wasxfail"] else "skipped"
                if e.get("exc_type"):
                    t.update(
                        exc_type=e["exc_type"],
                        internal=e.get("internal", False),
                        message=e.get("message"),
                    )
            elif e["outcome"] == "passed" and e["wasxfail"] and e["when"] == "call":
                t["outcome"] = "xpassed"
    return collected, tests, collect_errors


# Pydra modules the shim does not provide (its stand-ins raise when used)
INTERNAL_MODULES = (
    "pydra.engine.state",
    "pydra.engine.job",
    "pydra.engine.workflow",
    "pydra.engine.lazy",
    "pydra.engine.node",
    "pydra.engine.graph",
    "pydra.engine.result",
    "pydra.engine.hooks",
    "pydra.engine.audit",
    "pydra.compose.shell.templating",
    "pydra.utils.hash",
    "pydra.workers.cf",
)
INTERNAL_NAMES = {("pydra.utils.general", "position_sort")}


def internal_uses(path: Path) -> dict[str, set[str]]:
    """For each test function of a module: the names it uses that were imported from a Pydra
    internal (read from the source; used when the module could not be collected)."""
    import ast

    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                if node.module in INTERNAL_MODULES or (node.module, a.name) in INTERNAL_NAMES:
                    imported.add(a.asname or a.name)
    uses = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith(
            "test"
        ):
            uses[node.name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & imported
    return uses


def classify(t: dict) -> str:
    if t.get("internal"):
        return "internal"
    if t["outcome"] == "not run":
        return t.get("exc_type") or "not run"
    return t.get("exc_type") or t["outcome"]


def summarise(modules, runs, checkout, args, meta):
    rows, results = [], {}
    total = collections.Counter()
    causes = collections.defaultdict(list)
    for module in modules:
        real_c, real_t, real_err = read_record(runs[("pydra", module)]["record"])
        pg_c, pg_t, pg_err = read_record(runs[("provgraph", module)]["record"])
        ids = list(dict.fromkeys(real_c + list(real_t) + pg_c + list(pg_t)))
        static = internal_uses(checkout / module) if pg_err else {}
        for nodeid in ids:
            pg = pg_t.get(nodeid)
            if pg is None:
                if pg_err:
                    e = pg_err[0]
                    func = nodeid.split("::")[-1].split("[")[0]
                    used = sorted(static.get(func, ()))
                    pg = {
                        "outcome": "collect error",
                        "exc_type": "collect " + e["exc_type"],
                        "message": e["message"],
                        "internal": e["internal"] or bool(used),
                    }
                    if used:
                        pg["internal_by_source"] = used
                else:
                    pg = {
                        "outcome": "not run",
                        "exc_type": "module timeout"
                        if runs[("provgraph", module)]["timed_out"]
                        else "not run",
                    }
            real = real_t.get(nodeid)
            if real is None:
                real = (
                    {
                        "outcome": "collect error",
                        "exc_type": real_err[0]["exc_type"],
                        "message": real_err[0]["message"],
                    }
                    if real_err
                    else {"outcome": "not run"}
                )
            results[nodeid] = {"module": module, "pydra": real, "provgraph": pg}
        c = collections.Counter()
        fail_kinds = collections.Counter()
        for nodeid in ids:
            r = results[nodeid]
            c["collected"] += 1
            if r["pydra"]["outcome"] != "passed":
                continue
            c["pydra_pass"] += 1
            pg = r["provgraph"]
            if pg["outcome"] == "passed":
                c["pg_pass"] += 1
                continue
            kind = classify(pg)
            if kind == "internal":
                c["internal"] += 1
            else:
                c["pg_fail"] += 1
                causes[kind].append(nodeid)
            fail_kinds[kind] += 1
        total.update(c)
        rows.append((module, c, fail_kinds))

    lines = []
    head = f"{'module':48s} {'coll':>5s} {'pydra':>6s} {'pg':>5s} {'intl':>5s}  "
    head += "failures on provgraph (tests passing on Pydra)"
    lines.append(head)
    lines.append("-" * len(head))
    for module, c, kinds in rows:
        kinds_text = ", ".join(f"{k} {n}" for k, n in kinds.most_common())
        lines.append(
            f"{module.split('pydra/', 1)[1]:48s} {c['collected']:5d} {c['pydra_pass']:6d} "
            f"{c['pg_pass']:5d} {c['internal']:5d}  {kinds_text}"
        )
    lines.append("-" * len(head))
    n = total["pydra_pass"] - total["internal"]
    pct = 100.0 * total["pg_pass"] / n if n else 0.0
    lines.append(
        f"{'total':48s} {total['collected']:5d} {total['pydra_pass']:6d} "
        f"{total['pg_pass']:5d} {total['internal']:5d}"
    )
    lines.append("")
    lines.append(
        f"provgraph passes {total['pg_pass']} of {n} ({pct:.1f}%) "
        f"[N = passing on Pydra ({total['pydra_pass']}) minus internal ({total['internal']})]"
    )
    text = "\n".join(lines)
    print(text)
    out = {
        "meta": meta
        | {
            "summary": {
                "passed": total["pg_pass"],
                "of": n,
                "percent": round(pct, 1),
                "collected": total["collected"],
                "pass_on_pydra": total["pydra_pass"],
                "internal": total["internal"],
            }
        },
        "runs": {f"{s}:{m}": v for (s, m), v in runs.items()},
        "causes": {k: v for k, v in sorted(causes.items(), key=lambda kv: -len(kv[1]))},
        "tests": results,
        "table": text,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"\nper-test outcomes: {args.json}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkout", nargs="?", help="an extracted Pydra checkout")
    ap.add_argument("--mirror", help="a bare git mirror of Pydra: extract its HEAD first")
    ap.add_argument(
        "--workdir", default="/tmp/pconf", help="scratch directory (default %(default)s)"
    )
    ap.add_argument("--json", default=None, help="results file (default WORKDIR/results.json)")
    ap.add_argument("--jobs", type=int, default=3, help="modules run at once (default %(default)s)")
    ap.add_argument(
        "--test-timeout", type=int, default=120, help="seconds per test (default %(default)s)"
    )
    ap.add_argument("--module-timeout", type=int, default=1800, help="seconds per module run")
    ap.add_argument(
        "--workflow-mode",
        default="auto",
        choices=["auto", "static", "dynamic"],
        help="how the shim maps workflow.define (see shim/pydra/compose/workflow.py)",
    )
    ap.add_argument("--only", action="append", help="run only modules whose path contains this")
    ap.add_argument(
        "--side",
        choices=["both", "pydra", "provgraph", "none"],
        default="both",
        help="run one side only (or none: just report), reusing "
        "the last records of the side not run (from WORKDIR/records)",
    )
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    args.json = args.json or str(work / "results.json")
    if args.mirror:
        checkout = Path(args.checkout) if args.checkout else work / "src"
        commit = extract(Path(args.mirror), checkout)
    elif args.checkout:
        checkout = Path(args.checkout)
        marker = checkout / ".pconf-commit"
        commit = marker.read_text().strip() if marker.exists() else "unknown"
    else:
        ap.error("give a checkout path or --mirror GITDIR")
    checkout = checkout.resolve()
    modules = [m for m in MODULES if not args.only or any(o in m for o in args.only)]
    from importlib.metadata import version

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "pydra_version": version("pydra"),
        "provgraph_version": version("provgraph"),
        "checkout": str(checkout),
        "commit": commit,
        "workflow_mode": args.workflow_mode,
        "test_timeout": args.test_timeout,
        "python": sys.version.split()[0],
    }
    sides = {"both": ["pydra", "provgraph"], "none": []}.get(args.side, [args.side])
    jobs = [(s, m) for m in modules for s in sides]
    start = time.time()
    runs = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_module, s, m, checkout, work, args): (s, m) for s, m in jobs}
        for f in concurrent.futures.as_completed(futures):
            runs[futures[f]] = f.result()
    for s in {"pydra", "provgraph"} - set(sides):
        for m in modules:
            tag = f"{s}-{Path(m).stem}"
            runs[(s, m)] = {
                "side": s,
                "module": m,
                "record": str(work / "records" / f"{tag}.jsonl"),
                "log": str(work / "logs" / f"{tag}.log"),
                "seconds": None,
                "timed_out": False,
                "rc": None,
                "reused": True,
            }
    meta["wall_seconds"] = round(time.time() - start, 1)
    print(
        f"Pydra {meta['pydra_version']} vs provgraph {meta['provgraph_version']}; checkout "
        f"{commit[:12]}; {meta['wall_seconds']} s\n"
    )
    summarise(modules, runs, checkout, args, meta)


if __name__ == "__main__":
    main()
