"""Masters share their state as etcd members would.

Every apiserver pushes its changes to its peers (the `peers` objects) once a second, and at once
after an object write; a restarted apiserver first pulls a snapshot from a peer. Heartbeats
(leases) travel only in the 1 s batches.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from ..apiclient import ApiClient, ApiError, ConnectError
from ..hostenv import log
from .settings import ApiserverSettings
from .store import Store

SYNC_INTERVAL = 1.0
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
                self.replicate_once()
            except Exception as exc:  # the loop must outlive any single bad round
                log("apiserver", f"replication round failed: {exc!r}")
