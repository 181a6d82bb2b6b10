#!/usr/bin/env bash
# setup-rocrate-validator.sh - the RO-Crate tools provgraph's crate export is checked with, working
# with no network. .ci/run calls it before the tests; run it by hand to run the crate validation
# tests and docs examples for real (without it they skip, saying so). Idempotent. It:
#   - makes a venv of its own, $ROCRATE_VENV (default: .rcvenv beside this checkout's src/), with
#     roc-validator (command rocrate-validator), rocrate (ro-crate-py), runcrate and requests-cache.
#     These pin older prov/networkx than provgraph needs: never install them in provgraph's venv;
#   - seeds the validator's HTTP cache ($ROCRATE_VENV/http-cache) with the JSON-LD contexts the
#     validator would otherwise download: RO-Crate 1.1 and the Workflow Run terms from provgraph's
#     own copies (src/provgraph/provenance/contexts), RO-Crate 1.3 from ro-crate-py;
#   - smoke-tests the validator on nothing (its --help).
#
# Validate a crate afterwards with:
#   $ROCRATE_VENV/bin/rocrate-validator validate --offline --cache-path $ROCRATE_VENV/http-cache \
#     -p provenance-run-crate-0.5 --no-paging -f json -o report.json --skip-availability-check CRATE
# (tests/test_rocrate.py does exactly this).
set -euo pipefail
die() { echo "setup-rocrate-validator.sh: ERROR: $*" >&2; exit 1; }
log() { echo "setup-rocrate-validator.sh: $*"; }
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ROCRATE_VENV:-$root/.rcvenv}"
contexts="$root/src/provgraph/provenance/contexts"

if [ ! -x "$venv/bin/rocrate-validator" ] || [ ! -x "$venv/bin/runcrate" ]; then
  log "installing roc-validator, rocrate, runcrate into $venv"
  python3 -m venv "$venv"
  # (pip's warnings about this machine's extra package indexes are not ours to show)
  "$venv/bin/pip" install -q --disable-pip-version-check roc-validator rocrate runcrate requests-cache \
    2> >(grep -v "^WARNING: Location" >&2) || die "pip could not install the validator tools"
fi

log "seeding the offline HTTP cache $venv/http-cache"
CONTEXTS="$contexts" "$venv/bin/python" - "$venv/http-cache" <<'PY'
"""Put the JSON-LD contexts into a requests-cache database, as if downloaded."""
import importlib.resources
import io
import os
import sys
from pathlib import Path

from requests.adapters import HTTPAdapter
from requests_cache import CachedSession
from urllib3.response import HTTPResponse

here = Path(os.environ["CONTEXTS"])
wfrun = (here / "workflow-run.jsonld").read_bytes()
bodies = {
    "https://w3id.org/ro/crate/1.1/context": (here / "ro-crate-1.1.jsonld").read_bytes(),
    "https://w3id.org/ro/crate/1.3/context":
        (importlib.resources.files("rocrate") / "data" / "ro-crate.jsonld").read_bytes(),
    "https://w3id.org/ro/terms/workflow-run": wfrun,
    "https://w3id.org/ro/terms/workflow-run/context": wfrun,
}


class FromDisk(HTTPAdapter):
    def send(self, request, **kwargs):
        raw = HTTPResponse(body=io.BytesIO(bodies[request.url]), status=200,
                           headers={"Content-Type": "application/ld+json"},
                           preload_content=False, request_url=request.url)
        return self.build_response(request, raw)


session = CachedSession(cache_name=sys.argv[1], backend="sqlite", expire_after=-1,
                        allowable_methods=("GET",), allowable_codes=(200, 302, 404))
session.mount("https://", FromDisk())
for url in bodies:
    answer = session.get(url, headers={"Accept": "application/ld+json, application/json, */*;q=0.1"})
    if answer.status_code != 200:
        sys.exit(f"could not seed {url}: HTTP {answer.status_code}")
print("seeded", len(bodies), "contexts")
PY
"$venv/bin/rocrate-validator" --help >/dev/null || die "rocrate-validator does not run"
log "ready: $venv/bin/rocrate-validator (offline cache $venv/http-cache)"
