#!/usr/bin/env bash
# make fuzz: build every fuzz target (cargo-fuzz, libFuzzer, no sanitizer: the code is safe Rust,
# so coverage-guided search for panics and broken invariants is what matters), replay the kept
# regressions, then fuzz each target for FUZZ_SECONDS from its committed seeds and its working
# corpus. Exits non-zero on the first crash, naming the input to keep.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-300}"
targets=(token selector promql logql filter_config admin_api check_request regex write_bodies answers)
cargo_fuzz="${CARGO_FUZZ:-../.tools/bin/cargo-fuzz}"
bin=target/x86_64-unknown-linux-gnu/release

echo "fuzz: building ${#targets[@]} targets (first build takes minutes)"
"$cargo_fuzz" build -s none

for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t" "regressions/$t"
    if compgen -G "regressions/$t/*" >/dev/null; then
        # Each kept crash, run once: it must pass now.
        "$bin/$t" regressions/"$t"/* >"artifacts/$t/replay.log" 2>&1 ||
            { echo "fuzz: $t: a kept regression fails again, see fuzz/artifacts/$t/replay.log" >&2; exit 1; }
    fi
done

for t in "${targets[@]}"; do
    echo "fuzz: $t for ${seconds}s"
    log="artifacts/$t/run.log"
    if ! "$bin/$t" "corpus/$t" "seeds/$t" -max_total_time="$seconds" -max_len=4096 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1; then
        grep -a -m1 -A3 "panicked\|ERROR" "$log" >&2 || tail -20 "$log" >&2
        echo "fuzz: $t crashed; the input is in fuzz/artifacts/$t/. Fix it, add a regression test," >&2
        echo "      and keep the input in fuzz/regressions/$t/ (see fuzz/README.md)." >&2
        exit 1
    fi
    runs=$(grep -a -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$" || echo "?")
    cov=$(grep -a -o "cov: [0-9]*" "$log" | tail -1 || true)
    echo "fuzz: $t ok: $runs runs, $cov, corpus $(ls "corpus/$t" | wc -l) inputs"
done
