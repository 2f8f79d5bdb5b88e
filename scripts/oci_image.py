#!/usr/bin/env python3
"""Writes Tollgate's OCI images as OCI image layouts, with no daemon and nothing pulled.

    oci_image.py server --binary target/x86_64-unknown-linux-musl/release/tollgate --out DIR --tag T ...
    oci_image.py wasm   --module target/wasm32-wasip1/wasm/tollgate_filter.wasm --out DIR --tag T ...

Both are reproducible: every timestamp is --created (the source revision's commit time), tar
entries are sorted with fixed owners, and gzip carries no name or time, so the same inputs give
the same manifest digest.

* server: one layer on an empty base: the static binary at /usr/local/bin/tollgate, /etc/passwd
  and /etc/group naming uid/gid 65532 (`tollgate`), a default /etc/tollgate/tollgate.toml
  (listeners on 0.0.0.0, the SQLite store and the bootstrap token file in /var/lib/tollgate),
  /var/lib/tollgate owned by 65532 and /tmp. It runs as 65532:65532 and writes only under
  /var/lib/tollgate (and SQLite's temporary files under /tmp), so a read-only root filesystem
  with a volume on /var/lib/tollgate (and an emptyDir on /tmp) works.
* wasm: the *compat* variant of the Wasm image specification that Istio's WasmPlugin reads for
  oci:// URLs (github.com/solo-io/wasm spec/spec-compat.md; istio/istio pkg/wasm/imagefetcher.go):
  a single application/vnd.oci.image.layer.v1.tar+gzip layer holding `plugin.wasm`, and the
  manifest annotation module.wasm.image/variant=compat. Standard media types, so any registry
  and skopeo take it. Istio checks WasmPlugin.spec.sha256 against the manifest digest (the
  image digest) for oci:// URLs, against the module's own sha256 for http(s):// URLs; both are
  printed.

Prints `manifest-digest sha256:...` (and for wasm `module-sha256 ...`) on stdout.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

UID = GID = 65532

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

DEFAULT_CONFIG = """\
# Defaults of the Tollgate image; mount your own file over /etc/tollgate to change them
# (envoy/istio/tollgate.yaml does, from a ConfigMap). Flags and TOLLGATE_* override this file.
store = "sqlite:///var/lib/tollgate/tollgate.db"
http_listen = "0.0.0.0:8181"
grpc_listen = "0.0.0.0:9191"
bootstrap_token_file = "/var/lib/tollgate/bootstrap-token"
"""


class Layer:
    """A tar layer built in memory with deterministic metadata."""

    def __init__(self, mtime):
        self.mtime = mtime
        self.entries = []  # (TarInfo, bytes | None)

    def _info(self, name, kind, mode, uid=0, gid=0):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = self.mtime
        return info

    def dir(self, name, mode=0o755, uid=0, gid=0):
        self.entries.append((self._info(name, tarfile.DIRTYPE, mode, uid, gid), None))

    def file(self, name, data, mode=0o644, uid=0, gid=0):
        info = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        info.size = len(data)
        self.entries.append((info, data))

    def tar(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in sorted(self.entries, key=lambda e: e[0].name):
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def gzip_bytes(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(data)
    return buf.getvalue()


class Layout:
    """An OCI image layout directory (oci-layout, index.json, blobs/sha256/...)."""

    def __init__(self, path):
        self.path = path
        if os.path.exists(path):
            shutil.rmtree(path)
        os.makedirs(os.path.join(path, "blobs", "sha256"))
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def blob(self, data, media_type, annotations=None):
        digest = sha256(data)
        with open(os.path.join(self.path, "blobs", "sha256", digest[7:]), "wb") as f:
            f.write(data)
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if annotations:
            desc["annotations"] = annotations
        return desc

    def json_blob(self, obj, media_type, annotations=None):
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        return self.blob(data, media_type, annotations)

    def index(self, manifest_desc, tag, platform=None):
        desc = dict(manifest_desc)
        desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        if platform:
            desc["platform"] = platform
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [desc]}, f, sort_keys=True, indent=2)
            f.write("\n")


def labels(args, title, description):
    out = {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.description": description,
        "org.opencontainers.image.version": args.version,
        "org.opencontainers.image.revision": args.revision,
        "org.opencontainers.image.created": args.created_rfc3339,
        "org.opencontainers.image.source": args.source,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    return {k: v for k, v in out.items() if v}


def write_image(args, layer_tar, config_extra, platform, title, description, manifest_annotations):
    layout = Layout(args.out)
    layer = layout.blob(gzip_bytes(layer_tar), OCI_LAYER_GZIP)
    lab = labels(args, title, description)
    config = {
        "created": args.created_rfc3339,
        "architecture": platform["architecture"],
        "os": platform["os"],
        "config": dict(config_extra, Labels=lab),
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
        "history": [{"created": args.created_rfc3339, "created_by": f"scripts/oci_image.py {args.kind}"}],
    }
    config_desc = layout.json_blob(config, OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": [layer],
        "annotations": dict(lab, **manifest_annotations),
    }
    manifest_desc = layout.json_blob(manifest, OCI_MANIFEST)
    layout.index(manifest_desc, args.tag, platform)
    return manifest_desc["digest"]


def server(args):
    with open(args.binary, "rb") as f:
        binary = f.read()
    if binary[:4] != b"\x7fELF":
        sys.exit(f"{args.binary} is not an ELF executable")
    layer = Layer(args.created)
    for d in ["etc", "etc/tollgate", "usr", "usr/local", "usr/local/bin", "var", "var/lib"]:
        layer.dir(d)
    layer.dir("tmp", 0o1777)
    layer.dir("var/lib/tollgate", 0o700, UID, GID)
    layer.file("etc/passwd", f"root:x:0:0:root:/root:/sbin/nologin\ntollgate:x:{UID}:{GID}:tollgate:/var/lib/tollgate:/sbin/nologin\n".encode())
    layer.file("etc/group", f"root:x:0:\ntollgate:x:{GID}:\n".encode())
    layer.file("etc/tollgate/tollgate.toml", DEFAULT_CONFIG.encode())
    layer.file("usr/local/bin/tollgate", binary, 0o755)
    config = {
        "User": f"{UID}:{GID}",
        "Entrypoint": ["/usr/local/bin/tollgate"],
        "Cmd": ["serve", "--config", "/etc/tollgate/tollgate.toml"],
        "Env": ["PATH=/usr/local/bin", "TOLLGATE_LOG=info"],
        "WorkingDir": "/var/lib/tollgate",
        "ExposedPorts": {"8181/tcp": {}, "9191/tcp": {}},
        "Volumes": {"/var/lib/tollgate": {}},
        "StopSignal": "SIGTERM",
    }
    digest = write_image(args, layer.tar(), config, {"architecture": "amd64", "os": "linux"},
                         "tollgate", "Tollgate server: service-account tokens enforced at Envoy", {})
    print(f"manifest-digest {digest}")


def wasm(args):
    with open(args.module, "rb") as f:
        module = f.read()
    if module[:4] != b"\0asm":
        sys.exit(f"{args.module} is not a WebAssembly module")
    layer = Layer(args.created)
    layer.file("plugin.wasm", module)
    digest = write_image(args, layer.tar(), {}, {"architecture": "wasm", "os": "wasip1"},
                         "tollgate-filter", "Tollgate proxy-wasm filter (Istio WasmPlugin, compat variant)",
                         {"module.wasm.image/variant": "compat"})
    print(f"manifest-digest {digest}")
    print(f"module-sha256 {hashlib.sha256(module).hexdigest()}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["server", "wasm"])
    p.add_argument("--binary")
    p.add_argument("--module")
    p.add_argument("--out", required=True, help="OCI layout directory (replaced)")
    p.add_argument("--tag", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--revision", required=True)
    p.add_argument("--created", type=int, required=True, help="Unix time of every timestamp")
    p.add_argument("--source", default="")
    args = p.parse_args()
    import datetime
    args.created_rfc3339 = datetime.datetime.fromtimestamp(args.created, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if args.kind == "server":
        if not args.binary:
            p.error("server needs --binary")
        server(args)
    else:
        if not args.module:
            p.error("wasm needs --module")
        wasm(args)


if __name__ == "__main__":
    main()
