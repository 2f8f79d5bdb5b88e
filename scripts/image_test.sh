#!/usr/bin/env bash
# `make image-test`: image_test.sh SERVER_LAYOUT:TAG WASM_LAYOUT:TAG MODULE.wasm
#
# Server image: skopeo reads it; labels carry version and revision; umoci unpacks it; the
# image's own entrypoint, command, user and working directory (from the unpacked runtime
# config) run from the unpacked root filesystem and answer /healthz, and the bootstrap admin
# token lands in /var/lib/tollgate/bootstrap-token (mode 0600, owned by the image's user) and is
# accepted by the admin API. As root that run is faithful: chroot into the root filesystem
# (nothing but the static binary and a few files: a dynamic binary would not start), as uid
# 65532, with the root filesystem bind-mounted read-only, tmpfs on /var/lib/tollgate and /tmp
# (as Kubernetes mounts volumes there), in a fresh network namespace (the image's listeners
# 0.0.0.0:8181/9191 collide with nothing). Without root: umoci --rootless and the binary run
# directly, its listeners and store moved by TOLLGATE_* to free ports and a temporary directory.
#
# Wasm image: one tar+gzip layer (compat variant), annotated, whose plugin.wasm is
# byte-identical to MODULE; a copy with --preserve-digests (as the push does) keeps the digest.
set -euo pipefail
cd "$(dirname "$0")/.."
rootless=
[ "$(id -u)" = 0 ] || rootless=--rootless

server_ref=$1 wasm_ref=$2 module=$3
server_layout=${server_ref%:*} wasm_layout=${wasm_ref%:*}
mkdir -p target
work=$(mktemp -d "$PWD/target/image-test.XXXXXX")
server_pid=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
	rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT
fail() { echo "image-test: FAIL: $*" >&2; exit 1; }
say() { echo "image-test: $*"; }

json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {'d': d}))" "$@"; }

# --- server image: metadata -------------------------------------------------------------------
skopeo inspect "oci:$server_ref" > "$work/server-inspect.json"
skopeo inspect --config "oci:$server_ref" > "$work/server-config.json"
version=$(json "$work/server-inspect.json" "d['Labels']['org.opencontainers.image.version']")
revision=$(json "$work/server-inspect.json" "d['Labels']['org.opencontainers.image.revision']")
[ -n "$version" ] && [ -n "$revision" ] || fail "labels lack version or revision"
[ "$(json "$work/server-config.json" "d['config']['User']")" = "65532:65532" ] || fail "image user is not 65532:65532"
[ "$(json "$work/server-inspect.json" "len(d['Layers'])")" = 1 ] || fail "server image should have one layer"
say "server image $server_ref: version $version, revision $revision, user 65532:65532, $(du -sh "$server_layout" | cut -f1) on disk"

# --- server image: unpack and run -------------------------------------------------------------
umoci unpack $rootless --image "$server_ref" "$work/bundle" >/dev/null
rootfs=$work/bundle/rootfs
runtime=$work/bundle/config.json
[ -x "$rootfs/usr/local/bin/tollgate" ] || fail "no /usr/local/bin/tollgate in the image"
[ ! -e "$rootfs/lib" ] && [ ! -e "$rootfs/usr/lib" ] || fail "the image carries libraries: not a static binary on an empty base"
mapfile -t args < <(json "$runtime" "'\n'.join(d['process']['args'])")
cwd=$(json "$runtime" "d['process']['cwd']")
uid=$(json "$runtime" "d['process']['user']['uid']")
gid=$(json "$runtime" "d['process']['user']['gid']")
say "runs: ${args[*]} (uid $uid, gid $gid, cwd $cwd)"

token_file=/var/lib/tollgate/bootstrap-token
if [ "$(id -u)" = 0 ] && unshare --mount --net true 2>/dev/null; then
	say "mode: chroot, read-only root filesystem, own network namespace"
	# One script in fresh mount and network namespaces: mounts and listeners vanish with it.
	unshare --mount --net --fork bash -s "$rootfs" "$uid" "$gid" "$cwd" "$token_file" "${args[@]}" <<'EOF'
set -euo pipefail
rootfs=$1 uid=$2 gid=$3 cwd=$4 token_file=$5; shift 5
fail() { echo "image-test: FAIL: $*" >&2; exit 1; }
ip link set lo up
mount --make-rprivate /
mount --bind "$rootfs" "$rootfs"
mount -o remount,bind,ro "$rootfs"
mount -t tmpfs -o "uid=$uid,gid=$gid,mode=0700" tmpfs "$rootfs/var/lib/tollgate"
mount -t tmpfs -o mode=1777 tmpfs "$rootfs/tmp"
touch "$rootfs/probe" 2>/dev/null && fail "root filesystem is writable"
# chroot keeps the working directory when it lies inside the new root: the image's, by hand.
(cd "$rootfs$cwd" && exec chroot --userspec="$uid:$gid" "$rootfs" "$@") > "$rootfs/../server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
	curl -fsS http://127.0.0.1:8181/healthz >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { cat "$rootfs/../server.log" >&2; fail "server exited"; }
	sleep 0.2
done
health=$(curl -fsS http://127.0.0.1:8181/healthz) || { cat "$rootfs/../server.log" >&2; fail "/healthz did not answer"; }
echo "image-test: /healthz: $health"
f=$rootfs$token_file
[ -f "$f" ] || fail "no bootstrap token file $token_file"
[ "$(stat -c '%a %u' "$f")" = "600 $uid" ] || fail "bootstrap token file is $(stat -c '%a %u' "$f"), want 600 $uid"
token=$(cat "$f")
[[ $token =~ ^tgsa_[0-9A-Za-z]{32}_[0-9a-f]{8}$ ]] || fail "bootstrap token file does not hold a token"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" http://127.0.0.1:8181/api/v1/serviceaccounts)
[ "$code" = 200 ] || fail "admin API with the bootstrap token: HTTP $code"
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8181/api/v1/serviceaccounts)
[ "$code" = 401 ] || fail "admin API without a token: HTTP $code"
echo "image-test: bootstrap token file $token_file (0600, uid $uid) accepted by the admin API"
kill "$pid"; wait "$pid" || true
EOF
else
	say "mode: rootless (binary from the unpacked root filesystem, listeners moved)"
	read -r http grpc < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
	mkdir -p "$work/data"
	run=()  # the image's command, its absolute paths moved into the unpacked root filesystem
	for a in "${args[@]}"; do
		if [[ $a == /* ]] && [ -e "$rootfs$a" ]; then run+=("$rootfs$a"); else run+=("$a"); fi
	done
	TOLLGATE_STORE="sqlite://$work/data/tollgate.db" TOLLGATE_HTTP_LISTEN=127.0.0.1:$http \
		TOLLGATE_GRPC_LISTEN=127.0.0.1:$grpc TOLLGATE_BOOTSTRAP_TOKEN_FILE=$work/data/bootstrap-token \
		"${run[@]}" > "$work/server.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 1 100); do
		curl -fsS "http://127.0.0.1:$http/healthz" >/dev/null 2>&1 && break
		kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "server exited"; }
		sleep 0.2
	done
	say "/healthz: $(curl -fsS "http://127.0.0.1:$http/healthz")" || fail "/healthz did not answer"
	[ "$(stat -c %a "$work/data/bootstrap-token")" = 600 ] || fail "bootstrap token file mode"
	token=$(cat "$work/data/bootstrap-token")
	[[ $token =~ ^tgsa_[0-9A-Za-z]{32}_[0-9a-f]{8}$ ]] || fail "bootstrap token file does not hold a token"
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$http/api/v1/serviceaccounts")
	[ "$code" = 200 ] || fail "admin API with the bootstrap token: HTTP $code"
	say "bootstrap token file (0600) accepted by the admin API"
fi

# --- wasm image -------------------------------------------------------------------------------
skopeo inspect --raw "oci:$wasm_ref" > "$work/wasm-manifest.json"
python3 - "$wasm_layout" "$work/wasm-manifest.json" "$module" <<'EOF'
import gzip, hashlib, io, json, sys, tarfile
layout, manifest_path, module_path = sys.argv[1:]
m = json.load(open(manifest_path))
fail = lambda msg: sys.exit(f"image-test: FAIL: wasm image: {msg}")
if len(m["layers"]) != 1 or m["layers"][0]["mediaType"] != "application/vnd.oci.image.layer.v1.tar+gzip":
    fail(f"want one application/vnd.oci.image.layer.v1.tar+gzip layer, have {m['layers']}")
if m.get("annotations", {}).get("module.wasm.image/variant") != "compat":
    fail("no module.wasm.image/variant=compat annotation")
digest = m["layers"][0]["digest"]
blob = open(f"{layout}/blobs/sha256/{digest[7:]}", "rb").read()
if "sha256:" + hashlib.sha256(blob).hexdigest() != digest:
    fail("layer blob does not match its digest")
# As Istio's fetcher reads it: gunzip, untar, the entry named plugin.wasm.
with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
    names = tar.getnames()
    if names != ["plugin.wasm"]:
        fail(f"layer holds {names}, want only plugin.wasm")
    plugin = tar.extractfile("plugin.wasm").read()
module = open(module_path, "rb").read()
if plugin != module:
    fail(f"plugin.wasm ({len(plugin)} bytes) differs from {module_path} ({len(module)} bytes)")
print(f"image-test: wasm layer's plugin.wasm is byte-identical to {module_path} "
      f"({len(module)} bytes, sha256 {hashlib.sha256(module).hexdigest()})")
EOF
digest=$(skopeo inspect --format '{{.Digest}}' "oci:$wasm_ref")
grep -qx "manifest-digest $digest" "$wasm_layout.digest" || fail "printed digest is not the layout's ($digest)"
skopeo copy --quiet --preserve-digests "oci:$wasm_ref" "oci:$work/copy:t" >/dev/null
[ "$(skopeo inspect --format '{{.Digest}}' "oci:$work/copy:t")" = "$digest" ] || fail "a copy changes the wasm image digest"
# (Not umoci unpack: it builds a Linux runtime config and refuses the image's os, wasip1.)
say "wasm image $wasm_ref: digest $digest (WasmPlugin.spec.sha256 ${digest#sha256:}), survives a digest-preserving copy"

# --- push: both images to a throwaway local registry (Debian's docker-registry), as
# `make image wasm-image REGISTRY=...` pushes them; the registry serves the same digests.
if command -v docker-registry >/dev/null 2>&1; then
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "127.0.0.1:%s"}\n' \
		"$work/registry" "$port" > "$work/registry.yml"
	docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
	for ref in "$server_ref" "$wasm_ref"; do
		layout=${ref%:*} name=$(basename "${ref%:*}") tag=${ref##*:}
		skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$ref" "docker://127.0.0.1:$port/test/$name:$tag"
		remote=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://127.0.0.1:$port/test/$name:$tag")
		grep -qx "manifest-digest $remote" "$layout.digest" || fail "$name: the registry serves $remote, not the digest make printed"
		say "pushed $name:$tag to a local registry: digest $remote unchanged"
	done
	kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
else
	say "docker-registry not installed: push not tested"
fi
say "ok"
