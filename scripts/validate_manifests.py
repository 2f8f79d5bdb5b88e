#!/usr/bin/env python3
"""Validates Kubernetes/Istio manifests offline: validate_manifests.py FILE_OR_DIR...

Kubernetes kinds against kubernetes-validate's strict schemas (K8S_VERSION, default 1.33),
Istio kinds against the CRD schemas vendored in envoy/istio/schemas (see its README.md),
made strict (unknown fields are errors). Also checks that what the manifests reference fits
together: every WasmPlugin carries a sha256 and an oci:// or https:// URL, every container image
names a tag or digest (--rendered: and no placeholder sha256 is left). Exit status 1 on any error. Run with .venv/bin/python (`make schema-tools`).
"""

import copy
import glob
import json
import os
import re
import sys

import jsonschema
import kubernetes_validate
import yaml

SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "envoy", "istio", "schemas")
K8S_VERSION = os.environ.get("K8S_VERSION", "1.33")

ISTIO = {
    ("extensions.istio.io/v1alpha1", "WasmPlugin"): "wasmplugin-extensions-v1alpha1.json",
    ("security.istio.io/v1", "AuthorizationPolicy"): "authorizationpolicy-security-v1.json",
    ("networking.istio.io/v1alpha3", "EnvoyFilter"): "envoyfilter-networking-v1alpha3.json",
    ("install.istio.io/v1alpha1", "IstioOperator"): "istiooperator-meshconfig-extauthz.json",
}


def strict(schema):
    """Closes every object schema that lists properties and does not preserve unknown fields."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def istio_schema(name, cache={}):
    if name not in cache:
        with open(os.path.join(SCHEMAS, name)) as f:
            schema = json.load(f)
        if not name.startswith("istiooperator"):
            schema = strict(schema)
            # The CRD leaves metadata to the API server: require what these manifests need.
            schema["properties"]["metadata"] = {
                "type": "object", "required": ["name", "namespace"],
                "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                               "namespace": {"type": "string"}}}
            schema["properties"]["apiVersion"] = {"type": "string"}
            schema["properties"]["kind"] = {"type": "string"}
            schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
        cache[name] = jsonschema.Draft7Validator(schema)
    return cache[name]


IMAGE_REF = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$")


RENDERED = False  # --rendered: what `make manifests` wrote, so no placeholder digest


def semantic(doc):
    errors = []
    kind = doc.get("kind")
    if kind == "WasmPlugin":
        spec = doc.get("spec", {})
        url = spec.get("url", "")
        if not re.match(r"^(oci|https)://", url):
            errors.append(f"spec.url {url!r}: expected oci:// or https://")
        if not re.fullmatch(r"[a-f0-9]{64}", spec.get("sha256", "")):
            errors.append("spec.sha256: missing (make manifests fills it in)")
        elif RENDERED and set(spec["sha256"]) == {"0"}:
            errors.append("spec.sha256: still the placeholder")
        if url.startswith("oci://") and not IMAGE_REF.match(url[len("oci://"):]):
            errors.append(f"spec.url {url!r}: not an image reference")
    if kind == "Deployment":
        for c in doc["spec"]["template"]["spec"].get("containers", []):
            image = c.get("image", "")
            if not IMAGE_REF.match(image) or (":" not in image.rsplit("/", 1)[-1] and "@" not in image):
                errors.append(f"container {c.get('name')}: image {image!r} needs a registry, a name and a tag or digest")
    return errors


def validate_doc(doc):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in ISTIO:
        v = istio_schema(ISTIO[key])
        errors = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                  for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
    elif isinstance(key[0], str) and ".istio.io/" in key[0]:
        errors = [f"no vendored schema for {key[0]} {key[1]}"]
    else:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            errors = []
        except kubernetes_validate.ValidationError as e:
            path = ".".join(map(str, e.path)) or "<root>"
            errors = [f"{path}: {e.message}"]
        except kubernetes_validate.SchemaNotFoundError:
            errors = [f"no Kubernetes {K8S_VERSION} schema for {key[0]} {key[1]}"]
    return errors + semantic(doc)


def main(paths):
    global RENDERED
    if paths[:1] == ["--rendered"]:
        RENDERED, paths = True, paths[1:]
    files = []
    for p in paths:
        files += sorted(glob.glob(os.path.join(p, "*.yaml"))) if os.path.isdir(p) else [p]
    if not files:
        sys.exit("no manifests given")
    failed = 0
    for path in files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name', '?')}"
            errors = validate_doc(doc)
            for e in errors:
                print(f"FAIL {path}: {name}: {e}")
            failed += bool(errors)
            if not errors:
                print(f"ok   {path}: {name}")
    if failed:
        print(f"{failed} resource(s) failed validation (Kubernetes {K8S_VERSION})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
