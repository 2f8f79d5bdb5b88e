#!/usr/bin/env python3
"""Re-vendors envoy/istio/schemas/*.json: the openAPIV3Schema of the Istio CRDs that
envoy/istio/*.yaml use, cut from istio/api's kubernetes/customresourcedefinitions.gen.yaml.

    git -C <istio/api clone> show <commit>:kubernetes/customresourcedefinitions.gen.yaml > crds.yaml
    .venv/bin/python scripts/vendor_istio_schemas.py crds.yaml <commit>

Needs PyYAML (in .venv with kubernetes-validate, `make schema-tools`)."""
import json
import os
import sys

import yaml

WANTED = {("WasmPlugin", "v1alpha1"), ("AuthorizationPolicy", "v1"), ("EnvoyFilter", "v1alpha3")}
OUT = os.path.join(os.path.dirname(__file__), "..", "envoy", "istio", "schemas")

crds, commit = sys.argv[1], sys.argv[2]
for crd in yaml.safe_load_all(open(crds)):
    if not crd:
        continue
    kind, group = crd["spec"]["names"]["kind"], crd["spec"]["group"]
    for version in crd["spec"]["versions"]:
        if (kind, version["name"]) not in WANTED:
            continue
        schema = version["schema"]["openAPIV3Schema"]
        schema["x-tollgate-source"] = (f"github.com/istio/api@{commit} kubernetes/customresourcedefinitions.gen.yaml, "
                                       f"CRD {crd['metadata']['name']} version {version['name']} (Apache-2.0)")
        name = f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(schema, f, indent=1, sort_keys=True)
            f.write("\n")
        print(name)
