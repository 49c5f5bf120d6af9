"""Phases decide from facts what is left to do (a re-run does only the rest); the dry run says it;
lvscare's unit, manifest and CNI rewrite are rendered from data."""

from __future__ import annotations

import io
from pathlib import Path

import yaml

from sealos import spec as spec_mod
from sealos.addresses import parse_hosts
from sealos.context import ClusterHost, Context
from sealos.etc_hosts import entry
from sealos.facts import HostFacts
from sealos.kubeversion import KubeVersion
from sealos.logfile import CommandLog
from sealos.lvscare_node import Bundle, care_args, static_pod_manifest, systemd_unit
from sealos.phases.apply_cni import with_pod_cidr
from sealos.phases.base import run_phases
from sealos.phases.distribute_package import DistributePackage
from sealos.phases.init_master import InitFirstMaster
from sealos.phases.join_masters import JoinMasters
from sealos.phases.join_nodes import JoinNodes, keeper
from sealos.phases.prepare_hosts import PrepareHosts
from sealos.redaction import Redactor
from sealos.ssh import SSHConnection
from sealos.state import StateStore
from sealos.ui import PlainUI

SHA = "a" * 64
NAME = "apiserver.cluster.local"
VIP = "10.103.97.2"


def make_ctx(tmp_path: Path, version: str = "v1.20.15", dry_run: bool = False) -> Context:
    spec = spec_mod.ClusterSpec(
        masters=parse_hosts(["10.0.0.2-10.0.0.4"]),
        nodes=parse_hosts(["10.0.0.5-10.0.0.6"]),
        version=KubeVersion.parse(version),
        pkg=tmp_path / "kube.tar.gz",
    )
    ui = PlainUI(io.StringIO())
    ctx = Context(
        spec, ui, CommandLog(None, Redactor()), StateStore(tmp_path), None, dry_run=dry_run
    )
    ctx.package_sha256 = SHA
    ctx.bundle = Bundle(tmp_path / "lvscare.pyz", "b" * 64)
    for role, addrs in (("master", spec.masters), ("node", spec.nodes)):
        for a in addrs:
            n = ClusterHost(a, role, SSHConnection(a, spec.credentials))
            n.facts = HostFacts(hostname=f"h{a.host[-1]}")
            ctx.nodes.append(n)
    return ctx


def finished(ctx: Context) -> None:
    """Facts of a cluster where init completed."""
    unit_sha = __import__("hashlib").sha256(keeper(ctx).text().encode()).hexdigest()
    for n in ctx.nodes:
        f = n.facts
        assert f is not None
        f.package_ready = SHA
        f.package_sha256 = SHA
        if n.role == "master":
            target = n.ip
            f.init_done = n is ctx.first_master
            f.join_done = n is not ctx.first_master
        else:
            target = VIP
            f.join_done = True
            f.lvscare_sha256 = "b" * 64
            f.lvscare_unit_sha256 = unit_sha
            f.lvscare_active = True
        f.hosts_lines = [entry(target, NAME)]


def planned(phase, ctx: Context, node: ClusterHost) -> list[str]:
    """What `phase` would do on `node`: its own run_host, in a dry run."""
    import asyncio

    ctx.dry_run, ctx.plan = True, {}
    asyncio.run(phase.run_host(ctx, node))
    ctx.dry_run = False
    return ctx.plan.get(node.name, [])


PHASES = [DistributePackage(), PrepareHosts(), InitFirstMaster(), JoinMasters(), JoinNodes()]


def test_fresh_hosts_need_every_phase(tmp_path):
    ctx = make_ctx(tmp_path)
    picked = {type(p).__name__: [n.name for n in p.hosts(ctx)] for p in PHASES}
    assert picked == {
        "DistributePackage": ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
        "PrepareHosts": ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
        "InitFirstMaster": ["10.0.0.2"],
        "JoinMasters": ["10.0.0.3", "10.0.0.4"],
        "JoinNodes": ["10.0.0.5", "10.0.0.6"],
    }


def test_a_finished_cluster_needs_nothing(tmp_path):
    ctx = make_ctx(tmp_path)
    finished(ctx)
    assert all(p.hosts(ctx) == [] for p in PHASES)


def test_rerun_after_a_kill_during_node_joins_does_only_the_rest(tmp_path):
    ctx = make_ctx(tmp_path)
    finished(ctx)
    n6 = ctx.workers[1]
    assert n6.facts is not None
    n6.facts.join_done = False  # killed while joining this node
    n6.facts.kubeadm_leftovers = ["/etc/kubernetes/pki/ca.crt"]
    n6.facts.lvscare_unit_sha256 = None
    assert [p.hosts(ctx) for p in PHASES[:4]] == [[], [], [], []]
    assert [n.name for n in JoinNodes().hosts(ctx)] == ["10.0.0.6"]
    plan = planned(JoinNodes(), ctx, n6)
    # The unit first (its start returns once the VIP rule exists), then reset, then join.
    assert [line.split()[0] for line in plan] == ["keep", "kubeadm", "kubeadm"], plan
    assert plan[1].startswith("kubeadm reset -f")
    assert plan[2].startswith("kubeadm join 10.103.97.2:6443")


def test_changed_package_or_master_list_is_noticed(tmp_path):
    ctx = make_ctx(tmp_path)
    finished(ctx)
    ctx.package_sha256 = "c" * 64
    assert len(DistributePackage().hosts(ctx)) == 5 and len(PrepareHosts().hosts(ctx)) == 5
    ctx.package_sha256 = SHA
    ctx.nodes = [n for n in ctx.nodes if n.name != "10.0.0.4"]  # unit must list the masters left
    assert [n.name for n in JoinNodes().hosts(ctx)] == ["10.0.0.5", "10.0.0.6"]


def test_wrong_hosts_entry_is_repaired_without_a_second_init(tmp_path):
    ctx = make_ctx(tmp_path)
    finished(ctx)
    m0 = ctx.first_master
    assert m0.facts is not None
    m0.facts.hosts_lines = [entry("10.0.0.3", NAME)]
    assert InitFirstMaster().hosts(ctx) == [m0]
    assert planned(InitFirstMaster(), ctx, m0) == [f"/etc/hosts: map {NAME} to 10.0.0.2 (itself)"]


def test_dry_run_collects_the_plan_and_touches_no_host(tmp_path):
    import asyncio

    ctx = make_ctx(tmp_path, version="v1.14.1", dry_run=True)
    asyncio.run(run_phases(ctx, PHASES))  # hosts are not connected: any remote call would fail
    m2 = ctx.plan["10.0.0.3"]
    assert "kubeadm join apiserver.cluster.local:6443 as a control plane" in m2[-3]
    assert "--experimental-control-plane" in m2[-3]
    # after the switch to itself: kube-proxy, and (1.14 <= 1.19) controller-manager, scheduler
    assert m2[-2] == "/etc/hosts: map apiserver.cluster.local to 10.0.0.3 (itself)"
    assert "(kube-proxy, controller-manager, scheduler)" in m2[-1]
    assert ctx.plan["10.0.0.2"][-1] == (
        "kubeadm init --config /root/kubeadm-config.yaml --experimental-upload-certs"
    )


def test_restart_of_host_network_pods_after_the_hosts_switch():
    from sealos.phases.commands import restart_host_network_pods_command

    new = restart_host_network_pods_command("m-2", 28)
    assert new == (
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system delete pod "
        "-l k8s-app=kube-proxy --field-selector spec.nodeName=m-2 --ignore-not-found"
    )
    old = restart_host_network_pods_command("m-2", 19)
    assert old.startswith(new + " && ")
    assert "label=io.kubernetes.container.name=kube-controller-manager" in old
    assert "label=io.kubernetes.container.name=kube-scheduler" in old


def test_lvscare_unit_orders_before_kubelet_and_lists_all_masters():
    unit = systemd_unit(VIP, ["10.0.0.2", "10.0.0.3"])
    assert "Before=kubelet.service" in unit and "WantedBy=multi-user.target" in unit
    assert (
        "ExecStart=/usr/local/bin/lvscare care --vs 10.103.97.2:6443 "
        "--health-schem https --rs 10.0.0.2:6443 --rs 10.0.0.3:6443\n"
    ) in unit
    assert care_args(VIP, ["fd00::2"], run_once=True)[-3:] == [
        "--rs",
        "[fd00::2]:6443",
        "--run-once",
    ]


def test_lvscare_static_pod_manifest():
    pod = yaml.safe_load(static_pod_manifest(VIP, ["10.0.0.2"], "registry.local/python:3.11"))
    assert pod["metadata"]["name"] == "kube-sealyun-lvscare"
    spec = pod["spec"]
    assert spec["hostNetwork"] is True
    c = spec["containers"][0]
    assert c["securityContext"]["privileged"] is True and c["image"] == "registry.local/python:3.11"
    assert c["command"][:3] == ["python3", "/usr/local/bin/lvscare", "care"]
    assert "--health-schem" in c["command"] and "10.0.0.2:6443" in c["command"]


CALICO = """apiVersion: apps/v1
kind: DaemonSet
metadata: {name: calico-node}
spec:
  template:
    spec:
      containers:
      - name: calico-node
        env:
        - {name: CALICO_IPV4POOL_CIDR, value: "192.168.0.0/16"}
        - {name: FELIX_LOGSEVERITYSCREEN, value: info}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: calico-config}
"""


def test_cni_pool_follows_the_pod_cidr_only_when_needed():
    out = with_pod_cidr(CALICO, "100.64.0.0/10")
    assert out is not None
    docs = list(yaml.safe_load_all(out))
    env = docs[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0] == {"name": "CALICO_IPV4POOL_CIDR", "value": "100.64.0.0/10"}
    assert docs[1]["kind"] == "ConfigMap"
    assert with_pod_cidr(CALICO, "192.168.0.0/16") is None


def test_parallel_phases_respect_the_concurrency_bound_and_report_every_failure(tmp_path):
    import asyncio

    from sealos.errors import HostError
    from sealos.phases.base import Phase, PhaseFailed

    ctx = make_ctx(tmp_path)
    ctx.spec.concurrency = 2
    running = {"now": 0, "max": 0}

    class Probe(Phase):
        title = "probe"

        async def run_host(self, ctx, node):
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
            await asyncio.sleep(0.02)
            running["now"] -= 1
            if node.name in ("10.0.0.3", "10.0.0.6"):
                raise HostError(node.name, "boom; fix it.")
            return "fine"

    try:
        asyncio.run(Probe().run(ctx, ctx.nodes))
    except PhaseFailed as e:
        assert sorted(err.host for err in e.errors) == ["10.0.0.3", "10.0.0.6"]
    else:
        raise AssertionError("the phase should have failed")
    assert running["max"] == 2
    assert [n.outcome for n in ctx.nodes].count(["fine"]) == 3


def test_without_cni_skips_the_cni_phase(tmp_path):
    from sealos.phases.apply_cni import ApplyCNI

    ctx = make_ctx(tmp_path)
    assert [n.name for n in ApplyCNI().hosts(ctx)] == ["10.0.0.2"]
    ctx.spec.without_cni = True
    assert ApplyCNI().hosts(ctx) == [] and "--without-cni" in ApplyCNI().skip_reason(ctx)
