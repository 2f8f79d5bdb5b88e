#!/usr/bin/env python3
"""`make manifests`: copies envoy/istio/*.yaml to --out, naming the images `make image` and
`make wasm-image` built: the tollgate container's `image:`, the WasmPlugin's `url:` and its
`sha256:` (the filter image's manifest digest, which Istio checks for oci:// URLs). Line-based,
so the files keep their comments. Fails if a manifest that should carry a reference does not."""
import argparse
import os
import re
import sys

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--image", required=True)
p.add_argument("--wasm-url", required=True)
p.add_argument("--wasm-digest-file", required=True)
p.add_argument("files", nargs="+")
a = p.parse_args()

digest = None
with open(a.wasm_digest_file) as f:
    for line in f:
        if line.startswith("manifest-digest sha256:"):
            digest = line.split(":", 1)[1].strip()
if not digest or not re.fullmatch(r"[a-f0-9]{64}", digest):
    sys.exit(f"no manifest digest in {a.wasm_digest_file}: run make wasm-image")

# (pattern, replacement) per line; the server image is whichever container image ends in /tollgate:TAG.
RULES = [
    (re.compile(r"^(\s*(?:- )?image:\s*)\S+/tollgate(?::[^\s@]+)?(?:@sha256:[a-f0-9]{64})?(\s*(?:#.*)?)$"), rf"\g<1>{a.image}\g<2>", "image"),
    (re.compile(r"^(\s*url:\s*)oci://\S+(\s*(?:#.*)?)$"), rf"\g<1>{a.wasm_url}\g<2>", "url"),
    (re.compile(r"^(\s*sha256:\s*)\S+(\s*(?:#.*)?)$"), rf'\g<1>"{digest}"\g<2>', "sha256"),
]

os.makedirs(a.out, exist_ok=True)
for path in a.files:
    with open(path) as f:
        text = f.read()
    seen = set()
    out = []
    for line in text.splitlines(keepends=True):
        body, nl = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        for rx, repl, what in RULES:
            if rx.match(body):
                body = rx.sub(repl, body)
                seen.add(what)
        out.append(body + nl)
    if "kind: WasmPlugin" in text and not {"url", "sha256"} <= seen:
        sys.exit(f"{path}: WasmPlugin without an oci:// url and a sha256 line")
    if "kind: Deployment" in text and "image" not in seen:
        sys.exit(f"{path}: Deployment without a .../tollgate image")
    dest = os.path.join(a.out, os.path.basename(path))
    with open(dest, "w") as f:
        f.write("".join(out))
    print(f"{dest}" + (f" ({', '.join(sorted(seen))})" if seen else ""))
