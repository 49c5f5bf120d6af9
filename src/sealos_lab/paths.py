"""Where the lab keeps its cache (built once) and its running labs (one folder per lab name)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(os.environ.get("SEALOS_LAB_CACHE", "/var/cache/sealos-lab"))
STATE = Path(os.environ.get("SEALOS_LAB_STATE", "/var/lib/sealos-lab"))


def lab_dir(name: str) -> Path:
    """The folder holding one lab's state, overlays and logs."""
    return STATE / name


def limits_record() -> Path:
    """The kernel limits the labs raised and the values found before (`sealos_lab.limits`)."""
    return STATE / "kernel-limits.json"


def write_private(path: Path, text: str) -> None:
    """Write `path` atomically, readable by its owner only (mode 0600)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def releases_dir(name: str) -> Path:
    """The folder of one lab's release mirror and registry (`releases`); its state.json lists
    their processes, which `down` stops."""
    return lab_dir(name) / "releases"
