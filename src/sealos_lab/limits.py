"""The kernel limits a lab of many hosts needs: every nspawn host's systemd (and journald, udevd,
logind, ...) takes inotify instances of root, and `fs.inotify.max_user_instances` is 128 by
default, so about 40 hosts fail ("Failed to allocate manager object").

`raise_for(n)` raises the limits to what `n` hosts (in all labs here) need, before they boot, and
records the values it found; `restore()` puts those back when the last lab is gone (`down`). A
value someone else changed since is left as it is. Callers hold the lab's global lock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

PROC_SYS = Path("/proc/sys")

# (what the machine itself uses, what one host adds): generous, since a failure is a dead host.
# Measured need is about 4 instances a host; 3+37 hosts ran with 1024 instances.
NEEDS = {
    "fs.inotify.max_user_instances": (128, 20),
    "fs.inotify.max_user_watches": (8192, 2048),
}


def needed(hosts: int) -> dict[str, int]:
    """The least value of each limit for `hosts` lab hosts on this machine."""
    return {key: base + per_host * hosts for key, (base, per_host) in NEEDS.items()}


def _path(proc_sys: Path, key: str) -> Path:
    return proc_sys / key.replace(".", "/")


def _read(proc_sys: Path, key: str) -> int:
    return int(_path(proc_sys, key).read_text().split()[0])


def _load(saved: Path) -> dict[str, Any]:
    try:
        data = json.loads(saved.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def raise_for(
    hosts: int,
    saved: Path,
    proc_sys: Optional[Path] = None,
    log: Optional[Callable[[str], None]] = None,
) -> dict[str, int]:
    """Raise each limit below what `hosts` hosts need; return {key: new value} of those raised.
    The value found before the first raise is kept in `saved` (later raises keep it)."""
    say = log or (lambda line: None)
    proc_sys = proc_sys or PROC_SYS
    record = _load(saved)
    changed: dict[str, int] = {}
    for key, need in needed(hosts).items():
        try:
            current = _read(proc_sys, key)
        except (OSError, ValueError):
            continue  # not this kernel's: nothing to raise
        if current >= need:
            continue
        try:
            _path(proc_sys, key).write_text(f"{need}\n")
        except OSError as e:
            say(f"cannot raise {key} from {current} to {need} for {hosts} hosts: {e}")
            continue
        old = record.get(key, {}).get("old", current)
        record[key] = {"old": old, "set": need}
        changed[key] = need
        say(f"raised {key} from {current} to {need} for {hosts} lab hosts")
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(record, indent=1) + "\n")
    return changed


def restore(saved: Path, proc_sys: Optional[Path] = None) -> dict[str, int]:
    """Put back the values `raise_for` found, where the limit still has the value it set; return
    {key: restored value}. The record is removed."""
    proc_sys = proc_sys or PROC_SYS
    record = _load(saved)
    restored: dict[str, int] = {}
    for key, entry in record.items():
        try:
            old, set_ = int(entry["old"]), int(entry["set"])
            if _read(proc_sys, key) == set_:
                _path(proc_sys, key).write_text(f"{old}\n")
                restored[key] = old
        except (OSError, ValueError, KeyError, TypeError):
            continue
    saved.unlink(missing_ok=True)
    return restored
