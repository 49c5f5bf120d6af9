"""lvscare's typed changes: the planner names each change's kind and reason, and a backend's
`apply` needs nothing but what its `read` returned (a fresh backend object can apply it)."""

from __future__ import annotations

import json
import socket

from lvscare.backends.ipvs import IpvsBackend
from lvscare.backends.nft import NftBackend
from lvscare.model import (
    Change,
    ChangeKind,
    Endpoint,
    Health,
    HealthPolicy,
    History,
    Observed,
    VirtualServer,
    plan,
)

VS = VirtualServer(Endpoint("10.103.97.2", 6443))
A, B, C = (Endpoint(f"192.168.0.{i}", 6443) for i in (2, 3, 4))


def test_plan_names_each_change_by_kind_with_its_reason():
    down = Health(healthy=False, removed=True, failures=2, reason="connection refused")
    history = History({A: Health(reason="HTTP 200"), B: down}, applied={A: 1, B: 1})
    observed = Observed(exists=True, weights={A: 1, B: 1, C: 1}, scheduler="wlc")
    changes = plan(VS, {A: 1}, observed, history)
    assert [(c.kind, c.endpoint) for c in changes] == [
        (ChangeKind.SET_SCHEDULER, None),
        (ChangeKind.REMOVE_REAL_SERVER, B),
        (ChangeKind.REMOVE_REAL_SERVER, C),
    ]
    assert [c.reason for c in changes] == [
        "repaired virtual server 10.103.97.2:6443: scheduler was wlc, set rr",
        "removed 192.168.0.3:6443 from 10.103.97.2:6443: "
        "2 consecutive failed probes (connection refused)",
        "removed foreign real server 192.168.0.4:6443 from 10.103.97.2:6443: "
        "it is not one of lvscare's --rs",
    ]


def test_first_plan_says_added_later_plans_say_repaired():
    health = {A: Health(reason="HTTP 200")}
    first = plan(VS, {A: 1}, Observed(exists=False), History(health))
    assert [c.reason for c in first] == [
        "added virtual server 10.103.97.2:6443 (tcp, rr)",
        "added 192.168.0.2:6443 to 10.103.97.2:6443 with weight 1 (HTTP 200)",
    ]
    later = plan(VS, {A: 1}, Observed(exists=False), History(health, applied={A: 1}))
    assert [c.reason for c in later] == [
        "repaired virtual server 10.103.97.2:6443: it was missing from the kernel",
        "repaired 192.168.0.2:6443 in 10.103.97.2:6443: it was missing, added back with weight 1",
    ]
    drained = plan(
        VS,
        {A: 0},
        Observed(exists=True, weights={A: 1}, scheduler="rr"),
        History({A: Health(healthy=False, reason="timed out")}, {A: 1}, HealthPolicy(fall=3)),
    )
    assert drained == [Change(ChangeKind.SET_WEIGHT, A, weight=0, before=1)]
    assert drained[0].reason == (
        "192.168.0.2:6443 weight 0 in 10.103.97.2:6443: probe failed (timed out), "
        "removal after 3 consecutive failures"
    )


def test_a_kind_given_by_its_name_is_the_same_change_and_reasons_do_not_count():
    assert Change("set-weight", A, weight=0).kind is ChangeKind.SET_WEIGHT
    assert Change("remove", A, reason="one") == Change(ChangeKind.REMOVE_REAL_SERVER, A)


class FakeIpvs:
    """Serves one dump of a virtual server and its real servers; records every request."""

    def __init__(self, dests: dict[Endpoint, tuple[int, int]]):
        self.dests = dests  # endpoint -> (weight, forwarding method)
        self.requests: list[tuple[str, str, dict]] = []

    def service(self, command, service=None):
        if command == "dump":
            svc = {"IPVS_SVC_ATTR_AF": socket.AF_INET, "IPVS_SVC_ATTR_PROTOCOL": socket.IPPROTO_TCP,
                   "IPVS_SVC_ATTR_ADDR": VS.endpoint.host, "IPVS_SVC_ATTR_PORT": VS.endpoint.port,
                   "IPVS_SVC_ATTR_SCHED_NAME": "rr"}  # fmt: skip
            return [{"IPVS_CMD_ATTR_SERVICE": svc}]
        self.requests.append(("service", command, dict(service.combined)))
        return []

    def dest(self, command, service=None, dest=None):
        if command == "dump":
            return [{"IPVS_CMD_ATTR_DEST": {"IPVS_DEST_ATTR_ADDR": ep.host,
                     "IPVS_DEST_ATTR_PORT": ep.port, "IPVS_DEST_ATTR_WEIGHT": weight,
                     "IPVS_DEST_ATTR_FWD_METHOD": method}}
                    for ep, (weight, method) in self.dests.items()]  # fmt: skip
        self.requests.append(("dest", command, dict(dest.combined)))
        return []

    def close(self):
        pass


def test_ipvs_repair_applies_on_a_fresh_backend_given_only_what_read_returned():
    """A real server forwarded by direct routing (3) is set back to masquerade (0) by a backend
    object that never read the kernel: the culprit travels in `Observed`."""
    kernel = FakeIpvs({A: (1, 0), B: (1, 3), C: (1, 0)})
    observed = IpvsBackend(kernel).read(VS)
    assert observed.problems == (
        "192.168.0.3:6443 forwarded by direct routing instead of masquerade",
    )
    desired = {A: 1, B: 1}
    changes = plan(VS, desired, observed, History({A: Health(), B: Health()}, {A: 1, B: 1}))
    assert [c.kind for c in changes] == [ChangeKind.REPAIR, ChangeKind.REMOVE_REAL_SERVER]
    IpvsBackend(kernel).apply(VS, desired, observed, changes)
    [(_, repair, fixed), (_, remove, gone)] = kernel.requests
    assert (repair, fixed["addr"], fixed["fwd_method"], fixed["weight"]) == ("set", B.host, 0, 1)
    assert (remove, gone["addr"]) == ("del", C.host)


def test_ipvs_sends_one_request_per_change_kind():
    kernel = FakeIpvs({})
    backend = IpvsBackend(kernel)
    backend.apply(VS, {A: 1}, Observed(exists=False), plan(VS, {A: 1}, Observed(exists=False)))
    observed = Observed(exists=True, weights={A: 1}, scheduler="wlc")
    backend.apply(VS, {A: 0}, observed, plan(VS, {A: 0}, observed))
    sent = [(kind, command, fields.get("sched_name") or fields.get("weight"))
            for kind, command, fields in kernel.requests]  # fmt: skip
    assert sent == [
        ("service", "add", "rr"),
        ("dest", "add", 1),
        ("service", "set", "rr"),
        ("dest", "set", 0),
    ]
    assert all(fields.get("fwd_method", 0) == 0 for _, _, fields in kernel.requests)


class FakeNft:
    def __init__(self):
        self.scripts: list[str] = []

    def list_raw(self, what):
        return json.dumps({"nftables": [{"table": {"family": "ip", "name": "lvscare"}}]})

    def run(self, script):
        self.scripts.append(script)

    def close(self):
        pass


def test_nft_applies_on_a_fresh_backend_given_only_what_read_returned():
    nft = FakeNft()
    observed = NftBackend(nft).read(VS)  # type: ignore[arg-type]
    assert not observed.exists and observed.problems
    changes = plan(VS, {A: 1}, observed)
    NftBackend(nft).apply(VS, {A: 1}, observed, changes)  # type: ignore[arg-type]
    assert len(nft.scripts) == 1 and "192.168.0.2 . 6443" in nft.scripts[0]
