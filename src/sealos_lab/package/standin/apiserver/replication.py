"""Masters share their state as etcd members would.

Every apiserver pushes its changes to its peers (the `peers` objects) once a second, and at once
after an object write; a restarted apiserver first pulls a snapshot from a peer. Heartbeats
(leases) travel only in the 1 s batches. Every round also tells which peers answer (their etcd
members are alive, for the quorum: membership.py), and applies `--force-new-cluster` when the
etcd static pod manifest gains it (as etcd restarted by the kubelet with that flag would).
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from ..apiclient import ApiClient, ApiError, ConnectError
from ..hostenv import log
from .membership import started_members
from .settings import ApiserverSettings
from .store import Store, object_key

SYNC_INTERVAL = 1.0
ALIVE_WINDOW = 3.0  # a peer that answered within this many seconds counts as alive
API_GROUP = "sealos-lab.io"


class Replicator:
    """Pushes one apiserver's changes to its peers, each from where it left off."""

    def __init__(self, settings: ApiserverSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._peer_clients: dict[str, ApiClient] = {}
        self._peer_sent: dict[str, int] = {}
        self._peer_down: set[str] = set()
        self._sync_lock = threading.Lock()
        self._resynced = False
        self._seen: dict[str, float] = {}  # peer name -> monotonic time it last answered
        self._seen_at: dict[str, float] = {}  # ... and its wall-clock time (see `started`)
        self._forced_manifest: str = ""

    # liveness of the peers' etcd members ------------------------------------------------------

    def _note_alive(self, name: str) -> None:
        self._seen[name] = time.monotonic()
        self._seen_at[name] = time.time()

    def alive(self) -> set[str]:
        """This member and the peers that answered within ALIVE_WINDOW."""
        now = time.monotonic()
        recent = {n for n, t in self._seen.items() if now - t <= ALIVE_WINDOW}
        return {self.settings.node_name, *recent}

    def started(self, members: list[dict[str, Any]]) -> set[str]:
        """The names of `members` seen running since they were added (etcd's "started": the
        member published itself once)."""
        return started_members(members, self.settings.node_name, self._seen_at)

    def probe_now(self, members: list[dict[str, Any]]) -> set[str]:
        """Ask each silent member now (1 s each); the alive set afterwards."""
        alive = self.alive()
        for member in members:
            if member["name"] in alive:
                continue
            client = self._fresh_client(str(member["url"]), 1.0)
            try:
                client.call("GET", "/livez")
                self._note_alive(member["name"])
            except ApiError:
                self._note_alive(member["name"])  # it answered: the process is up
            except (ConnectError, OSError):
                pass
            finally:
                client.close()
        return self.alive()

    def _fresh_client(self, url: str, timeout: float) -> ApiClient:
        return ApiClient(
            url,
            ca_pem=Path(self.settings.client_ca_file).read_text(),
            cert_pem=Path(self.settings.peer_cert_file).read_text(),
            key_pem=Path(self.settings.peer_key_file).read_text(),
            timeout=timeout,
        )

    def apply_force_new_cluster(self) -> None:
        """etcd started with --force-new-cluster keeps its data and drops every other member."""
        try:
            manifest = Path(self.settings.etcd_manifest).read_text()
        except OSError:
            return
        if "--force-new-cluster" not in manifest or manifest == self._forced_manifest:
            self._forced_manifest = manifest if "--force-new-cluster" in manifest else ""
            return
        self._forced_manifest = manifest
        for peer in self.peers():
            self.store.delete(object_key("peers", "", str(peer["name"])))
        log("apiserver", "etcd --force-new-cluster: this member is now the only one")

    # replication ----------------------------------------------------------------------------

    def _peer_client(self, url: str) -> ApiClient:
        client = self._peer_clients.get(url)
        if client is None:
            client = ApiClient(
                url,
                ca_pem=Path(self.settings.client_ca_file).read_text(),
                cert_pem=Path(self.settings.peer_cert_file).read_text(),
                key_pem=Path(self.settings.peer_key_file).read_text(),
                timeout=2.0,
            )
            self._peer_clients[url] = client
        return client

    def peers(self) -> list[dict[str, Any]]:
        return [p for p in self.store.items("peers", "") if p["name"] != self.settings.node_name]

    def replicate_once(self) -> None:
        """Push local changes to every peer; pull a snapshot once after start."""
        with self._sync_lock:
            self._replicate_locked()

    def _replicate_locked(self) -> None:
        for peer in self.peers():
            url = peer["url"]
            client = self._peer_client(url)
            if not self._resynced:
                with contextlib.suppress(ApiError, ConnectError, OSError, ValueError):
                    self.store.merge(client.call("GET", f"/apis/{API_GROUP}/v1/snapshot"))
                    self._resynced = True
            sent = self._peer_sent.get(url, 0)
            changes = self.store.changes_since(sent)
            if not changes["objects"] and not changes["leases"]:
                try:
                    client.call("GET", "/livez")  # nothing to send: is its member alive?
                    self._note_alive(str(peer["name"]))
                except ApiError:
                    self._note_alive(str(peer["name"]))
                except (ConnectError, OSError):
                    client.close()
                continue
            try:
                client.call("POST", f"/apis/{API_GROUP}/v1/sync", changes)
            except (ApiError, ConnectError, OSError) as exc:
                # Logged when a peer goes away and when it comes back, not every second.
                if url not in self._peer_down:
                    log("apiserver", f"peer {peer['name']} unreachable, will retry: {exc}")
                    self._peer_down.add(url)
                client.close()
                continue
            self._note_alive(str(peer["name"]))
            if url in self._peer_down:
                log("apiserver", f"peer {peer['name']} reachable again")
                self._peer_down.discard(url)
            self._peer_sent[url] = int(changes["upto"])
        if not self.peers():
            self._resynced = True
        self.store.save_if_dirty()

    def run(self, stopping: threading.Event) -> None:
        """Replicate once a second until stopping is set."""
        while not stopping.wait(SYNC_INTERVAL):
            try:
                self.apply_force_new_cluster()
                self.replicate_once()
            except Exception as exc:  # the loop must outlive any single bad round
                log("apiserver", f"replication round failed: {exc!r}")
