#!/usr/bin/env bash
# `make bench` (after it built everything): runs every benchmark on loopback, prints the results
# and writes them to BENCHMARKS.md with the machine, the versions and the date. Ratios are
# against references measured in the same run; the machine may be shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=./target/release/tollgate-bench
out=BENCHMARKS.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

step() { # name, command...
  local name=$1; shift
  echo "== $name" >&2
  "$@" | tee "$work/$name"
}

step promql taskset -c 1 "$bench" promql
step logql taskset -c 1 "$bench" logql
step answers taskset -c 1 "$bench" answers
step writes taskset -c 1 "$bench" writes
step store taskset -c 1 "$bench" store --writes 200
step check taskset -c 1 "$bench" check --sizes 1000,100000,1000000 --rounds 5 --seconds 1.5
step check-instructions taskset -c 1 "$bench" check-instructions --checks 2000
step envoy taskset -c 1 "$bench" envoy --rounds 3 --seconds 4 --connections 16,1
step revocation taskset -c 1 "$bench" revocation --count 100
step flood taskset -c 1 "$bench" flood --rounds 3 --seconds 4
step vm taskset -c 1 "$bench" vm
step criterion bash -c "taskset -c 1 cargo bench -q -p tollgate-core --bench core -- --warm-up-time 0.5 --measurement-time 2 --noplot \
  | grep -Ev 'change:|Found [0-9]+ outliers|mild|severe|Performance has|No change|Change within|^$'"
module=target/wasm32-wasip1/wasm/tollgate_filter.wasm
size=$(stat -c %s "$module")
module_line="target: filter module <= 1.5 MB: $(awk "BEGIN{printf \"%.2f\", $size/1000000}") MB $([ "$size" -le 1500000 ] && echo MET || echo MISSED)"
echo "$module_line"

envoy_bin=$(command -v envoy || ls .venv/lib/python3*/site-packages/envoy/_bin/envoy | head -n 1)
{
  echo "# Tollgate benchmarks"
  echo
  echo "Written by \`make bench\` on $(date -u '+%Y-%m-%d %H:%M UTC') in $(( $(date +%s) - started )) s, at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo "Every figure is a median over interleaved rounds with its spread, and every comparison a ratio"
  echo "to a reference measured in the same run: never compare absolute numbers across runs."
  echo
  echo "## Machine and versions"
  echo
  echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores; memory $(free -g | awk '/^Mem:/{print $2}') GiB; kernel $(uname -r)"
  echo "- $(rustc --version); Envoy $("$envoy_bin" --version 2>/dev/null | grep -o '[0-9]*\.[0-9]*\.[0-9]*/Clean/RELEASE' | cut -d/ -f1) (V8); $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
  echo
  echo "## Targets"
  echo
  echo '```'
  cat "$work"/* | grep '^target' || true
  echo "$module_line"
  echo '```'
  for section in "envoy:Envoy request path" "check:Server Check alone" "check-instructions:Server Check in instructions" "revocation:Revocation propagation" "flood:A flood of forged tokens" "vm:The filter's own work, in V8 without Envoy" "promql:PromQL enforcement" "logql:LogQL enforcement" "answers:Hiding policy labels from answers" "writes:Write bodies under a policy" "store:Admin writes and replica propagation" "criterion:Micro-benchmarks (criterion)"; do
    echo
    echo "## ${section#*:}"
    echo
    echo '```'
    grep -v '^target' "$work/${section%%:*}" | grep -v '^$' || true
    echo '```'
  done
} > "$out"
echo "wrote $out" >&2
