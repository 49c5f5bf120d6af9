"""Build-time constants of a stand-in; this development version reads them from the repository.

The builder replaces this whole module with literal constants (PROGRAM, PACKAGE_VERSION and the
schemas as JSON), so a built binary needs nothing but python3 and python3-yaml.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PROGRAM = os.environ.get("SEALOS_STANDIN_PROGRAM", "kubeadm")
PACKAGE_VERSION = os.environ.get("SEALOS_STANDIN_VERSION", "v1.20.15")
# False here; the built script says True (its siblings in kube/bin are the other stand-ins).
BUILT_AS_SCRIPT = False
# `kubeadm config images list` of this version (default repository); empty before 1.24, where the
# lab's packages carry no container runtime. The builder fixes it from sealos.package_versions.
IMAGES: list[str] = json.loads(os.environ.get("SEALOS_STANDIN_IMAGES", "[]"))
# The images the package carries (kube/images): what the stand-in kubelet takes as loaded on a
# node without a container runtime. The builder fixes it from the package's image list.
PACKAGE_IMAGES: list[str] = json.loads(os.environ.get("SEALOS_STANDIN_PACKAGE_IMAGES", "[]"))

_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def load_schemas() -> dict[str, Any]:
    """Every schema file keyed by its apiVersion, plus "flags" for kubeadm-flags.json."""
    schemas: dict[str, Any] = {}
    for path in sorted(_SCHEMA_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        key = "flags" if path.name == "kubeadm-flags.json" else data["apiVersion"]
        schemas[key] = data
    return schemas
