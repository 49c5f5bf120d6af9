"""Masters share their state as etcd members would.

Every apiserver pushes its changes to each peer (the `peers` objects) over a link of its own, in
its own thread, as an etcd member streams to each of the others: a peer that has gone away
(stopped, or every packet dropped) delays only its own link, never the others, the health
answers or the writes. A link pushes once a second, and at once after an object write; a
restarted apiserver first pulls a snapshot from a peer. Heartbeats (leases) travel only in the
1 s pushes. Every answer tells that the peer's etcd member is alive (for the quorum:
membership.py). `--force-new-cluster` in the etcd static pod manifest is applied when it appears
(as etcd restarted by the kubelet with that flag would).
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Optional

from ..apiclient import ApiClient, ApiError, ConnectError
from ..hostenv import log
from .membership import has_quorum, started_members
from .settings import ApiserverSettings
from .store import Store, object_key

SYNC_INTERVAL = 1.0
ALIVE_WINDOW = 3.0  # a peer that answered within this many seconds counts as alive
PEER_TIMEOUT = 2.0  # one push or liveness ask to a peer
PROBE_TIMEOUT = 1.0  # asking a silent member during a quorum check
WRITE_WAIT = 5.0  # an object write waits at most this long for the live peers to have it
API_GROUP = "sealos-lab.io"


class _PeerLink:
    """Replication to one peer, from a thread of its own."""

    def __init__(self, replicator: Replicator, name: str, url: str) -> None:
        self.replicator = replicator
        self.name = name
        self.url = url
        self.sent = 0  # the store position this peer has
        self.down = False  # its last attempt failed
        self.wake = threading.Event()
        self.stop = threading.Event()
        self._client: Optional[ApiClient] = None
        self.thread = threading.Thread(target=self._run, name=f"peer-{name}", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.wake.clear()
            try:
                self.push()
            except Exception as exc:  # the link must outlive any single bad round
                log("apiserver", f"replication to {self.name} failed: {exc!r}")
            self.wake.wait(SYNC_INTERVAL)
        if self._client is not None:
            self._client.close()

    def push(self) -> None:
        """Send what the peer lacks (or ask it is alive when there is nothing to send)."""
        rep = self.replicator
        if self._client is None:
            self._client = rep.peer_client(self.url, PEER_TIMEOUT)
        client = self._client
        rep.resync_from(client)
        changes = rep.store.changes_since(self.sent)
        pending = bool(changes["objects"] or changes["leases"])
        try:
            if pending:
                client.call("POST", f"/apis/{API_GROUP}/v1/sync", changes)
                self.sent = int(changes["upto"])
            else:
                client.call("GET", "/livez")  # nothing to send: is its member alive?
        except ApiError:
            if pending:
                self._went_down("it refused the changes")
                return
        except (ConnectError, OSError) as exc:
            client.close()
            self._went_down(str(exc))
            return
        rep.note_alive(self.name)
        if self.down:
            log("apiserver", f"peer {self.name} reachable again")
            self.down = False
        rep.pushed()

    def _went_down(self, why: str) -> None:
        # Logged when a peer goes away and when it comes back, not every second.
        if not self.down:
            log("apiserver", f"peer {self.name} unreachable, will retry: {why}")
            self.down = True
        self.replicator.pushed()


class Replicator:
    """Keeps a link to each peer (`_PeerLink`), and this member's view of which peers are alive."""

    def __init__(self, settings: ApiserverSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._links: dict[tuple[str, str], _PeerLink] = {}
        self._links_lock = threading.Lock()
        self._resync_lock = threading.Lock()
        self._resynced = False
        self._pushed = threading.Condition()
        self._seen: dict[str, float] = {}  # peer name -> monotonic time it last answered
        self._seen_at: dict[str, float] = {}  # ... and its wall-clock time (see `started`)
        self._forced_manifest: str = ""

    # liveness of the peers' etcd members ------------------------------------------------------

    def note_alive(self, name: str) -> None:
        self._seen[name] = time.monotonic()
        self._seen_at[name] = time.time()

    def alive(self) -> set[str]:
        """This member and the peers that answered within ALIVE_WINDOW."""
        now = time.monotonic()
        recent = {n for n, t in list(self._seen.items()) if now - t <= ALIVE_WINDOW}
        return {self.settings.node_name, *recent}

    def started(self, members: list[dict[str, Any]]) -> set[str]:
        """The names of `members` seen running since they were added (etcd's "started": the
        member published itself once)."""
        return started_members(members, self.settings.node_name, self._seen_at)

    def probe_now(self, members: list[dict[str, Any]]) -> set[str]:
        """Ask the silent members now, all at once (PROBE_TIMEOUT each); the alive set as soon as
        it holds a quorum, or once every answer is in. A member that is gone costs no more than
        the wait for the others."""
        alive = self.alive()
        probes = [
            threading.Thread(target=self._probe, args=(m,), daemon=True)
            for m in members
            if m["name"] not in alive
        ]
        for probe in probes:
            probe.start()
        deadline = time.monotonic() + PROBE_TIMEOUT + 0.5
        while any(p.is_alive() for p in probes) and time.monotonic() < deadline:
            if has_quorum(members, self.alive()):
                break
            time.sleep(0.01)
        return self.alive()

    def _probe(self, member: dict[str, Any]) -> None:
        client = self.peer_client(str(member["url"]), PROBE_TIMEOUT)
        try:
            client.call("GET", "/livez")
            self.note_alive(member["name"])
        except ApiError:
            self.note_alive(member["name"])  # it answered: the process is up
        except (ConnectError, OSError):
            pass
        finally:
            client.close()

    def peer_client(self, url: str, timeout: float) -> ApiClient:
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

    def peers(self) -> list[dict[str, Any]]:
        return [p for p in self.store.items("peers", "") if p["name"] != self.settings.node_name]

    def resync_from(self, client: ApiClient) -> None:
        """Once after start: merge a peer's snapshot (what was written while this one was down)."""
        if self._resynced:
            return
        with self._resync_lock:
            if self._resynced:
                return
            with contextlib.suppress(ApiError, ConnectError, OSError, ValueError):
                self.store.merge(client.call("GET", f"/apis/{API_GROUP}/v1/snapshot"))
                self._resynced = True

    def pushed(self) -> None:
        """A link finished an attempt (`replicate_once` waits on these)."""
        with self._pushed:
            self._pushed.notify_all()

    def _reconcile_links(self) -> list[_PeerLink]:
        """A link per peer now recorded: new peers get one, removed ones have theirs stopped."""
        wanted = {(str(p["name"]), str(p["url"])) for p in self.peers()}
        with self._links_lock:
            for key in list(self._links):
                if key not in wanted:
                    self._links.pop(key).stop.set()
            for name, url in wanted:
                if (name, url) not in self._links:
                    link = _PeerLink(self, name, url)
                    self._links[(name, url)] = link
                    link.thread.start()
            if not wanted:
                self._resynced = True
            return list(self._links.values())

    def replicate_once(self) -> None:
        """After an object write: push now, and return once every peer that answers has it (a
        peer that is down is not waited for, as etcd's quorum write does not wait for it)."""
        upto = self.store.lseq
        links = self._reconcile_links()
        for link in links:
            link.wake.set()
        deadline = time.monotonic() + WRITE_WAIT
        with self._pushed:
            while not all(link.sent >= upto or link.down for link in links):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._pushed.wait(left)
        self.store.save_if_dirty()

    def close(self) -> None:
        with self._links_lock:
            for link in self._links.values():
                link.stop.set()
                link.wake.set()

    def run(self, stopping: threading.Event) -> None:
        """Keep a link per peer, and apply --force-new-cluster, until stopping is set."""
        while not stopping.wait(SYNC_INTERVAL):
            try:
                self.apply_force_new_cluster()
                self._reconcile_links()
                self.store.save_if_dirty()
            except Exception as exc:  # the loop must outlive any single bad round
                log("apiserver", f"replication round failed: {exc!r}")
        self.close()
