#!/usr/bin/env bash
# `make run`: the Tollgate server on the embedded SQLite store and Envoy in filter mode in front
# of an upstream: a local Prometheus when one is installed, or UPSTREAM=host:port. Prints the
# bootstrap admin token and commands to copy; Ctrl-C stops every process this started.
#
# Overrides (environment): UPSTREAM, LISTEN_PORT (10000), ENVOY_ADMIN_PORT (9901),
# PROMETHEUS_PORT (9090), TOLLGATE_HTTP_LISTEN (127.0.0.1:8181), TOLLGATE_GRPC_LISTEN
# (127.0.0.1:9191), TOLLGATE_RUN_DIR (.run), TOLLGATE_BIN, TOLLGATE_FILTER_WASM, ENVOY_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

state=${TOLLGATE_RUN_DIR:-.run}
mkdir -p "$state"
tollgate=${TOLLGATE_BIN:-./target/release/tollgate}
wasm=${TOLLGATE_FILTER_WASM:-target/wasm32-wasip1/wasm/tollgate_filter.wasm}
http_listen=${TOLLGATE_HTTP_LISTEN:-127.0.0.1:8181}
grpc_listen=${TOLLGATE_GRPC_LISTEN:-127.0.0.1:9191}
listen_port=${LISTEN_PORT:-10000}
admin_port=${ENVOY_ADMIN_PORT:-9901}

envoy=${ENVOY_BIN:-}
if [ -z "$envoy" ]; then
  envoy=$(command -v envoy || ls .venv/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n 1 || true)
fi
for need in "$tollgate" "$wasm" "$envoy"; do
  [ -n "$need" ] && [ -e "$need" ] || { echo "error: ${need:-envoy} is missing: run 'make run' (it installs and builds everything)" >&2; exit 1; }
done

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped: every process started by make run"
}
trap stop EXIT INT TERM

wait_http() { # url what (python3 is there for the Envoy wheel; curl may not be)
  for _ in $(seq 1 100); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: $2 did not come up ($1)" >&2
  exit 1
}

# The upstream.
if [ -n "${UPSTREAM:-}" ]; then
  upstream_host=${UPSTREAM%:*}
  upstream_port=${UPSTREAM##*:}
  upstream_desc="UPSTREAM=$UPSTREAM"
elif prometheus_bin=$(command -v prometheus || ls /usr/bin/prometheus 2>/dev/null); then
  upstream_host=127.0.0.1
  upstream_port=${PROMETHEUS_PORT:-9090}
  # Prometheus scrapes itself, labelled as one namespace, so label policies have data to act on.
  cat > "$state/prometheus.yml" <<YAML
global: { scrape_interval: 5s }
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets: ['127.0.0.1:$upstream_port']
    labels: { kube_namespace: prometheus }
YAML
  "$prometheus_bin" --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/prometheus" \
    --web.listen-address="127.0.0.1:$upstream_port" --web.enable-remote-write-receiver \
    > "$state/prometheus.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$upstream_port/-/ready" Prometheus
  upstream_desc="Prometheus on 127.0.0.1:$upstream_port (log: $state/prometheus.log)"
else
  echo "error: no upstream: install Prometheus (apt-get install prometheus) or set UPSTREAM=host:port" >&2
  exit 1
fi

# The server. The bootstrap token goes to a 0600 file so it can be shown on every run.
TOLLGATE_BOOTSTRAP_TOKEN_FILE="$state/bootstrap-token" "$tollgate" serve \
  --store "sqlite://$state/tollgate.db" --http-listen "$http_listen" --grpc-listen "$grpc_listen" \
  > "$state/tollgate.log" 2>&1 &
pids+=($!)
wait_http "http://$http_listen/healthz" "the Tollgate server"

# Envoy in filter mode.
sed -e "s|{{LISTEN_PORT}}|$listen_port|" -e "s|{{ADMIN_PORT}}|$admin_port|" \
    -e "s|{{UPSTREAM_HOST}}|$upstream_host|" -e "s|{{UPSTREAM_PORT}}|$upstream_port|" \
    -e "s|{{AUTHZ_HOST}}|${grpc_listen%:*}|" -e "s|{{AUTHZ_PORT}}|${grpc_listen##*:}|" \
    -e "s|{{FILTER_WASM}}|$(realpath "$wasm")|" -e 's|{{FILTER_CONFIG}}|{"cluster":"tollgate"}|' \
    envoy/filter.yaml > "$state/envoy.yaml"
"$envoy" -c "$state/envoy.yaml" --concurrency 1 --disable-hot-restart -l warning > "$state/envoy.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$admin_port/ready" Envoy

token=$(cat "$state/bootstrap-token")
cli=$(realpath "$tollgate")
cat <<TEXT

Tollgate is running.
  admin API      http://$http_listen          (log: $state/tollgate.log)
  web console    http://$http_listen/console/  (sign in with the token below)
  Envoy (filter) http://127.0.0.1:$listen_port   (log: $state/envoy.log)
  upstream       $upstream_desc

Bootstrap admin token (keep it secret; also in $state/bootstrap-token, mode 0600):
  $token

Copy and paste:
  export TOLLGATE_URL=http://$http_listen TOLLGATE_TOKEN=\$(cat $state/bootstrap-token)
  $cli sa create ci-reader --role viewer --label-policy '{kube_namespace="prometheus"}'
  $cli token create ci-reader main --expires-in 30d          # shows the token once
  export T=<the token printed above>
  curl -s -H "Authorization: Bearer \$T" 'http://127.0.0.1:$listen_port/api/v1/query?query=up'
  $cli token list ci-reader
  $cli can-i GET /api/v1/query --as ci-reader
  $cli token create ci-reader next --expires-in 30d          # rotation: a second token...
  $cli token revoke ci-reader <id of main>                   # ...then revoke the first
  $cli sa delete ci-reader                                   # revokes every token
  $cli audit

Ctrl-C stops everything.
TEXT
wait
