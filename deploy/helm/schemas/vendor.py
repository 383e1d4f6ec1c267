"""Writes the JSON Schemas of the chart's custom resources, from their CRDs, for offline checks.

tests/unit/test_helm.py validates every rendered object offline: Kubernetes' own kinds with
kubernetes-validate's bundled schemas, KEDA's ScaledObject and TriggerAuthentication and
prometheus-operator's ServiceMonitor with the schemas written here. The CRDs come from the Go
module proxy (the modules named below hold them), so the only network use is this script's:
    python deploy/helm/schemas/vendor.py
Objects get `additionalProperties: false` where the CRD lists properties, as kubeconform's
openapi2jsonschema does in strict mode, so a misspelt field fails the check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
# (Go module@version, CRD file in it, schema file written here)
SOURCES = [
    (
        "github.com/kedacore/keda/v2@v2.16.1",
        "config/crd/bases/keda.sh_scaledobjects.yaml",
        "scaledobject-keda-v1alpha1.json",
    ),
    (
        "github.com/kedacore/keda/v2@v2.16.1",
        "config/crd/bases/keda.sh_triggerauthentications.yaml",
        "triggerauthentication-keda-v1alpha1.json",
    ),
    (
        "github.com/prometheus-operator/prometheus-operator@v0.78.2",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "servicemonitor-monitoring-v1.json",
    ),
]


def strict(schema: Any) -> Any:
    """The CRD's OpenAPI schema with closed objects (where it lists their properties)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def module_dir(module: str) -> Path:
    done = subprocess.run(
        ["go", "mod", "download", "-json", module], capture_output=True, text=True, check=True
    )
    return Path(json.loads(done.stdout)["Dir"])


def main() -> int:
    for module, crd_path, out in SOURCES:
        crd = yaml.safe_load((module_dir(module) / crd_path).read_text())
        version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema["$comment"] = f"from {module} {crd_path}, by vendor.py"
        (HERE / out).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
