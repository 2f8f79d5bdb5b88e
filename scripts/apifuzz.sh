#!/usr/bin/env bash
# `make apifuzz`: schemathesis (PyPI, pinned, installed into .venv) against the admin API of a
# freshly started `tollgate serve`, on a temporary store and free loopback ports, authenticated
# with the bootstrap admin token. Fails on any 5xx and on any response that does not match the
# server's own /openapi.json (status code, content type, body schema). Bounded: about 4
# minutes on 2 cores. The server is always stopped, and its log is shown when the run fails.
#
# Overrides (environment): APIFUZZ_MAX_EXAMPLES (examples per operation, default 1000),
# APIFUZZ_SEED (a fixed seed, to reproduce a run), APIFUZZ_WORKERS (default 2),
# TOLLGATE_BIN (skip the build and use this binary), CARGO, PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
# Hypothesis drives the generation; pinned too, so that a new release cannot change a run.
HYPOTHESIS_VERSION=6.170.17
venv=.venv
python=${PYTHON:-python3}
max_examples=${APIFUZZ_MAX_EXAMPLES:-1000}
workers=${APIFUZZ_WORKERS:-2}

# schemathesis, pinned, into the project's venv (the same one the Envoy wheel uses).
st="$venv/bin/schemathesis"
if ! "$st" --version 2>/dev/null | grep -qF "version $SCHEMATHESIS_VERSION" \
  || ! "$venv/bin/python" -c 'import sys, hypothesis; sys.exit(hypothesis.__version__ != sys.argv[1])' "$HYPOTHESIS_VERSION" 2>/dev/null; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION and hypothesis $HYPOTHESIS_VERSION (PyPI) into $venv"
  [ -x "$venv/bin/pip" ] || "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "hypothesis==$HYPOTHESIS_VERSION"
fi

# The server binary: a debug build shares its artifacts with `cargo test`.
tollgate=${TOLLGATE_BIN:-}
if [ -z "$tollgate" ]; then
  ${CARGO:-cargo} build --quiet -p tollgate-server --bin tollgate
  tollgate=target/debug/tollgate
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-apifuzz.XXXXXX")
server_pid=
status=1
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$work/server.log" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Port 0: the kernel picks free ports; the server logs the addresses it bound.
TOLLGATE_BOOTSTRAP_TOKEN_FILE="$work/bootstrap-token" TOLLGATE_LOG=info "$tollgate" serve \
  --store "sqlite://$work/tollgate.db" --http-listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 \
  > "$work/server.log" 2>&1 &
server_pid=$!

addr=
for _ in $(seq 1 100); do
  addr=$(grep -o 'admin API listening addr=[0-9.:]*' "$work/server.log" | head -n 1 | cut -d= -f2 || true)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "error: tollgate serve exited at start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "error: tollgate serve did not report its admin address" >&2; exit 1; }
url="http://$addr"
"$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$url/healthz"
token=$(cat "$work/bootstrap-token")

# A few accounts and tokens so that generated ids hit existing resources, not only 404s.
seed() { # body
  "$python" - "$url" "$token" "$1" <<'PY'
import json, sys, urllib.request
url, token, body = sys.argv[1:4]
request = urllib.request.Request(url + "/api/v1/serviceaccounts", data=body.encode(), method="POST",
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
urllib.request.urlopen(request, timeout=5).read()
PY
}
seed '{"name": "fuzz-viewer", "role": "viewer", "labelPolicy": "{team=\"a\"}", "withToken": true}'
seed '{"name": "fuzz-writer", "role": "writer", "withToken": true, "ttlSeconds": 3600}'
seed '{"tenant": "other", "name": "fuzz-admin", "role": "admin", "withToken": true}'

echo "schemathesis $SCHEMATHESIS_VERSION against $url/openapi.json (max $max_examples examples per operation)"
started=$(date +%s)
args=(
  run "$url/openapi.json"
  --header "Authorization: Bearer $token"
  --checks "${APIFUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth}"
  --max-examples "$max_examples"
  --workers "$workers"
  --phases "${APIFUZZ_PHASES:-examples,coverage,fuzzing,stateful}"
  --request-timeout 10
  --generation-database none
  --no-color
)
[ -n "${APIFUZZ_SEED:-}" ] && args+=(--seed "$APIFUZZ_SEED")
set +e
# From the temporary directory: schemathesis keeps state (.schemathesis/) in its working directory.
root=$(pwd)
(cd "$work" && SCHEMATHESIS_HOOKS="$root/scripts/apifuzz_hooks.py" "$root/$st" "${args[@]}")
result=$?
set -e
echo "schemathesis finished in $(( $(date +%s) - started )) s with exit code $result"

# The server must still be up and healthy after the run.
if ! "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$url/healthz"; then
  echo "error: the server is not healthy after the run" >&2
  result=1
fi
# ...and the run must not have locked itself out (see scripts/apifuzz_hooks.py): a run that
# only saw 401s after some point would pass without testing anything.
if ! "$python" - "$url" "$token" <<'PY'
import sys, urllib.request
url, token = sys.argv[1:3]
request = urllib.request.Request(url + "/api/v1/serviceaccounts", headers={"Authorization": "Bearer " + token})
urllib.request.urlopen(request, timeout=5).read()
PY
then
  echo "error: the bootstrap admin token no longer works after the run" >&2
  result=1
fi
if grep -qF "$token" "$work/server.log"; then
  echo "error: the server log contains the bootstrap token" >&2
  result=1
fi
if grep -q 'panicked' "$work/server.log"; then
  echo "error: the server log shows a panic" >&2
  result=1
fi
status=$result
exit "$result"
