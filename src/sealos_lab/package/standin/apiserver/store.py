"""The apiserver's objects: last-writer-wins versions, tombstones, and kubelet leases.

Each write gets a (time, origin) version and a local sequence number; a peer's changes merge in
when their version is newer. Leases carry an age rather than a time, so hosts' clocks need not
agree.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any, Optional

from ..hostenv import write_private


def object_key(kind: str, namespace: str, name: str) -> str:
    """Store key of an object."""
    return f"{kind}/{namespace}/{name}"


class Store:
    """Objects with last-writer-wins versions, tombstones, and kubelet leases."""

    def __init__(self, origin: str, path: Path) -> None:
        self.origin = origin
        self.path = path
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.lseq = 0
        self.dirty = False
        self._last_ts = 0.0

    def load(self) -> None:
        """Objects persisted by an earlier run (leases are not persisted: kubelets resend them)."""
        with contextlib.suppress(FileNotFoundError):
            data = json.loads(self.path.read_text())
            for key, record in data.get("objects", {}).items():
                self.lseq += 1
                record["lseq"] = self.lseq
                self.objects[key] = record

    def save_if_dirty(self) -> None:
        """Persist objects (mode 0600: tokens live here, as in etcd)."""
        with self.lock:
            if not self.dirty:
                return
            data = {
                "objects": {
                    k: {kk: vv for kk, vv in r.items() if kk != "lseq"}
                    for k, r in self.objects.items()
                }
            }
            self.dirty = False
        write_private(self.path, json.dumps(data, sort_keys=True))

    def _next_rv(self) -> list[Any]:
        ts = max(time.time(), self._last_ts + 1e-6)
        self._last_ts = ts
        return [ts, self.origin]

    def get(self, key: str) -> Optional[dict[str, Any]]:
        with self.lock:
            record = self.objects.get(key)
            if record is None or record["deleted"]:
                return None
            return json.loads(json.dumps(record["obj"]))

    def record(self, key: str) -> Optional[dict[str, Any]]:
        with self.lock:
            return self.objects.get(key)

    def put(self, key: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.lseq += 1
            self.objects[key] = {
                "rv": self._next_rv(),
                "deleted": False,
                "obj": obj,
                "lseq": self.lseq,
            }
            self.dirty = True

    def delete(self, key: str) -> bool:
        with self.lock:
            record = self.objects.get(key)
            if record is None or record["deleted"]:
                return False
            self.lseq += 1
            self.objects[key] = {
                "rv": self._next_rv(),
                "deleted": True,
                "obj": record["obj"],
                "lseq": self.lseq,
            }
            self.dirty = True
            if key.startswith("nodes//"):
                name = key.split("/", 2)[2]
                lease = self.leases.get(name)
                if lease and lease["uid"] == record["obj"]["metadata"].get("uid"):
                    del self.leases[name]
            return True

    def items(self, kind: str, namespace: Optional[str] = None) -> list[dict[str, Any]]:
        with self.lock:
            found = []
            for key, record in self.objects.items():
                k, ns, _name = key.split("/", 2)
                if k == kind and (namespace is None or ns == namespace) and not record["deleted"]:
                    found.append(json.loads(json.dumps(record["obj"])))
            return found

    def note_heartbeat(self, name: str, uid: str, seq: int) -> None:
        with self.lock:
            lease = self.leases.get(name)
            if lease and lease["uid"] == uid and lease["seq"] >= seq:
                return
            self.lseq += 1
            self.leases[name] = {
                "uid": uid,
                "seq": seq,
                "seen": time.monotonic(),
                "lseq": self.lseq,
            }

    def lease_age(self, name: str, uid: str) -> Optional[float]:
        with self.lock:
            lease = self.leases.get(name)
            if lease is None or lease["uid"] != uid:
                return None
            return time.monotonic() - float(lease["seen"])

    def changes_since(self, lseq: int) -> dict[str, Any]:
        with self.lock:
            now = time.monotonic()
            objects = {
                k: {kk: vv for kk, vv in r.items() if kk != "lseq"}
                for k, r in self.objects.items()
                if r["lseq"] > lseq
            }
            leases = {
                n: {"uid": lease["uid"], "seq": lease["seq"], "age": now - lease["seen"]}
                for n, lease in self.leases.items()
                if lease["lseq"] > lseq
            }
            return {"origin": self.origin, "objects": objects, "leases": leases, "upto": self.lseq}

    def merge(self, data: dict[str, Any]) -> None:
        """Apply changes from a peer: newer versions win; leases only for live registrations."""
        with self.lock:
            for key, incoming in data.get("objects", {}).items():
                local = self.objects.get(key)
                if local is not None and list(local["rv"]) >= list(incoming["rv"]):
                    continue
                self.lseq += 1
                self.objects[key] = {
                    "rv": list(incoming["rv"]),
                    "deleted": bool(incoming["deleted"]),
                    "obj": incoming["obj"],
                    "lseq": self.lseq,
                }
                self._last_ts = max(self._last_ts, float(incoming["rv"][0]))
                self.dirty = True
                if incoming["deleted"] and key.startswith("nodes//"):
                    name = key.split("/", 2)[2]
                    lease = self.leases.get(name)
                    if lease and lease["uid"] == incoming["obj"]["metadata"].get("uid"):
                        del self.leases[name]
            now = time.monotonic()
            for name, incoming in data.get("leases", {}).items():
                node = self.objects.get(object_key("nodes", "", name))
                if (
                    node
                    and node["deleted"]
                    and node["obj"]["metadata"].get("uid") == incoming["uid"]
                ):
                    continue
                local = self.leases.get(name)
                seen = now - float(incoming["age"])
                if local is not None and local["uid"] == incoming["uid"]:
                    if local["seq"] >= incoming["seq"]:
                        continue
                elif local is not None and float(local["seen"]) >= seen:
                    continue
                self.lseq += 1
                self.leases[name] = {
                    "uid": incoming["uid"],
                    "seq": incoming["seq"],
                    "seen": seen,
                    "lseq": self.lseq,
                }
