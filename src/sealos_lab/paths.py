"""Where the lab keeps its cache (built once) and its running labs (one folder per lab name)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(os.environ.get("SEALOS_LAB_CACHE", "/var/cache/sealos-lab"))
STATE = Path(os.environ.get("SEALOS_LAB_STATE", "/var/lib/sealos-lab"))


def lab_dir(name: str) -> Path:
    """The folder holding one lab's state, overlays and logs."""
    return STATE / name
