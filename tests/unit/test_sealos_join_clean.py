"""`sealos join` and `sealos clean` without hosts: what clean plans, what join refuses, which
hosts each phase picks, how the state changes, the clean script's syntax, the CLI's answers."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from sealos import clean_script, lvscare_node, members
from sealos import spec as spec_mod
from sealos.actions import clean as clean_action
from sealos.actions import join as join_action
from sealos.addresses import HostAddress, parse_hosts
from sealos.cli import cli
from sealos.context import ClusterHost, Context
from sealos.errors import SpecError, ValidationFailed
from sealos.facts import HostFacts
from sealos.kubeversion import KubeVersion
from sealos.logfile import CommandLog
from sealos.lvscare_node import Bundle
from sealos.phases.distribute_package import DistributePackage
from sealos.phases.join_nodes import JoinNodes
from sealos.phases.update_lvscare import UpdateLvscare
from sealos.phases.validate import Validate
from sealos.preconditions import REQUIRED_TOOLS
from sealos.redaction import Redactor
from sealos.ssh import SSHConnection
from sealos.state import ClusterState, Member, StateStore
from sealos.ui import PlainUI
from sealos.validate import (
    already_member,
    cluster_reachable,
    membership_problems,
    named_as_recorded,
)

# The tools kubeadm's preflight wants on every host.
KUBEADM_TOOLS = {*REQUIRED_TOOLS, "conntrack"}

SHA = "a" * 64
VIP = "10.103.97.2"


def recorded() -> ClusterState:
    """A cluster of 2 masters (h2, h3) and 2 nodes (h5, h6) as init saves it."""
    state = ClusterState(status="ready", package_sha256=SHA)
    for ip, role in (("10.0.0.2", "master"), ("10.0.0.3", "master")):
        state.members.append(Member(ip, role, ip, f"h{ip[-1]}"))
    for ip in ("10.0.0.5", "10.0.0.6"):
        state.members.append(Member(ip, "node", ip, f"h{ip[-1]}"))
    state.settings = spec_mod.defaults()
    state.settings.update(
        {"version": "v1.20.15", "pkg": "/nonexistent/kube1.20.15.tar.gz", "vip": VIP}
    )
    return state


def hosts(*values: str) -> list[HostAddress]:
    return parse_hosts(list(values))


# --- clean: what goes, what stays ---------------------------------------------------------------


def test_clean_without_hosts_takes_the_whole_cluster_nodes_first():
    p = clean_action.plan(recorded(), [], [], False, "state")
    assert p.whole and not p.masters_removed
    assert [(t.name, t.role) for t in p.targets] == [
        ("10.0.0.5", "node"),
        ("10.0.0.6", "node"),
        ("10.0.0.2", "master"),
        ("10.0.0.3", "master"),
    ]
    assert clean_action.describe_plan(p).startswith("This removes the whole cluster from 4 host")


def test_clean_of_a_master_keeps_the_rest_and_changes_the_nodes_lvscare():
    p = clean_action.plan(recorded(), hosts("10.0.0.2"), [], False, "state")
    assert not p.whole and p.masters_removed
    assert [m.address for m in p.remaining_masters] == ["10.0.0.3"]
    assert [m.address for m in p.remaining_nodes] == ["10.0.0.5", "10.0.0.6"]
    assert [t.member.hostname for t in p.targets if t.member] == ["h2"]


def test_naming_a_master_again_after_it_left_repairs_the_nodes_lvscare():
    p = clean_action.plan(recorded(), hosts("10.0.0.4"), [], False, "state", not_a_member=True)
    assert p.masters_removed and p.targets[0].member is None
    assert [m.address for m in p.remaining_masters] == ["10.0.0.2", "10.0.0.3"]


def test_clean_of_the_last_master_needs_all():
    with pytest.raises(SpecError, match="last master of the cluster; add --all"):
        clean_action.plan(recorded(), hosts("10.0.0.2", "10.0.0.3"), [], False, "state")
    p = clean_action.plan(recorded(), hosts("10.0.0.2", "10.0.0.3"), [], True, "state")
    assert p.whole and len(p.targets) == 4


def test_clean_names_the_right_flag_for_a_member():
    with pytest.raises(SpecError, match=r"10\.0\.0\.5 is a node of the cluster, not a master"):
        clean_action.plan(recorded(), hosts("10.0.0.5"), [], False, "state")


def test_clean_without_a_state_needs_hosts_and_cleans_them_alone(tmp_path):
    with pytest.raises(SpecError, match="name the hosts to clean"):
        clean_action.plan(None, [], [], False, str(tmp_path / "config.yaml"))
    p = clean_action.plan(None, hosts("10.0.0.9"), hosts("10.0.0.8"), False, "state")
    assert p.whole and [t.name for t in p.targets] == ["10.0.0.8", "10.0.0.9"]
    assert all(t.member is None for t in p.targets)


# --- join: what it refuses ----------------------------------------------------------------------


class _Reached(SSHConnection):
    """A host that reports it is connected, at a given address (no network involved)."""

    @property
    def connected(self) -> bool:
        return True


def node(
    address: str, role: str, hostname: str = "", ip: str = "", reached: bool = True
) -> ClusterHost:
    a = parse_hosts([address])[0]
    host = (_Reached if reached else SSHConnection)(a, spec_mod.Credentials())
    host.ip = ip or a.host
    n = ClusterHost(a, role, host)
    tools = {"tar", "gzip", "sha256sum", "systemctl", "python3", *KUBEADM_TOOLS}
    facts = HostFacts(hostname=hostname, uid=0, python3=(3, 11, 2), tools=tools, disk_free=1 << 40)
    n.facts = facts if reached else None
    return n


def test_join_refuses_members_by_address_and_by_the_ip_reached():
    state = recorded()
    by_name = node("node6.example", "node", "h9", ip="10.0.0.6")  # a name for a member's IP
    problems = membership_problems(state, [node("10.0.0.5", "node", "h5"), by_name], [])
    assert problems == [
        already_member("10.0.0.5", "node", "h5"),
        already_member("node6.example", "node", "h6"),
    ]
    assert "remove it first with `sealos clean --node 10.0.0.5`" in problems[0]


def test_join_refuses_a_hostname_a_member_has_live_or_recorded():
    state = recorded()
    live_master = node("10.0.0.2", "master", "renamed")
    problems = membership_problems(
        state,
        [node("10.0.0.7", "node", "renamed"), node("10.0.0.8", "node", "h6")],
        [live_master],
    )
    assert len(problems) == 2
    assert "10.0.0.7 has the hostname 'renamed', which member 10.0.0.2 already has" in problems[0]
    assert "10.0.0.8 has the hostname 'h6', which member 10.0.0.6 already has" in problems[1]


def test_an_unfinished_join_may_be_run_again_but_not_as_another_role():
    state = recorded()
    state.members.append(Member("10.0.0.7", "node", "10.0.0.7", "h7", "joining"))
    assert membership_problems(state, [node("10.0.0.7", "node", "h7")], []) == []
    problems = membership_problems(state, [node("10.0.0.7", "master", "h7")], [])
    assert problems and "started joining as a node" in problems[0]


def planned(phase, ctx: Context, node: ClusterHost) -> list[str]:
    """What `phase` would do on `node`: its own run_host, in a dry run."""
    ctx.dry_run, ctx.plan = True, {}
    asyncio.run(phase.run_host(ctx, node))
    ctx.dry_run = False
    return ctx.plan.get(node.name, [])


def make_join_ctx(tmp_path: Path, new_masters: list[str], new_nodes: list[str]) -> Context:
    state = recorded()
    new = set(new_masters) | set(new_nodes)
    spec = spec_mod.ClusterSpec(
        masters=hosts("10.0.0.2", "10.0.0.3", *new_masters),
        nodes=hosts("10.0.0.5", "10.0.0.6", *new_nodes),
        version=KubeVersion.parse("v1.20.15"),
        pkg=tmp_path / "kube.tar.gz",
    )
    ctx = Context(
        spec,
        PlainUI(io.StringIO()),
        CommandLog(None, Redactor()),
        StateStore(tmp_path),
        state,
        new=new,
    )
    ctx.package_sha256 = SHA
    ctx.bundle = Bundle(tmp_path / "lvscare.pyz", "b" * 64)
    unit = lvscare_node.systemd_unit(VIP, ["10.0.0.2", "10.0.0.3"])
    for a in [*spec.masters, *spec.nodes]:
        role = "master" if a in spec.masters else "node"
        n = node(str(a), role, f"h{a.host[-1]}")
        if str(a) not in new:
            f = n.facts
            assert f is not None
            f.package_ready = f.package_sha256 = SHA
            f.join_done = True
            if role == "node":
                f.lvscare_sha256 = "b" * 64
                f.lvscare_unit_sha256 = hashlib.sha256(unit.encode()).hexdigest()
                f.lvscare_active = True
        ctx.nodes.append(n)
    return ctx


def test_join_runs_inits_phases_on_the_new_hosts_only(tmp_path):
    ctx = make_join_ctx(tmp_path, ["10.0.0.4"], ["10.0.0.7"])
    old = ctx.nodes[0].facts
    assert old is not None
    old.package_ready = old.package_sha256 = None  # an old member lost its package: not ours
    phases = {type(p.inner).__name__: p for p in join_action.phases()
              if isinstance(p, join_action.OnlyNew)}  # fmt: skip
    assert [n.name for n in DistributePackage().hosts(ctx)] == ["10.0.0.2", "10.0.0.4", "10.0.0.7"]
    assert [n.name for n in phases["DistributePackage"].hosts(ctx)] == ["10.0.0.4", "10.0.0.7"]
    assert [n.name for n in phases["JoinMasters"].hosts(ctx)] == ["10.0.0.4"]
    assert [n.name for n in phases["JoinNodes"].hosts(ctx)] == ["10.0.0.7"]
    # The new node's lvscare lists every master, the new one too.
    plan = planned(JoinNodes(), ctx, ctx.nodes[-1])
    assert any("--rs 10.0.0.3:6443 --rs 10.0.0.4:6443" in line for line in plan), plan


def test_old_nodes_learn_new_masters_and_the_first_master_may_be_down(tmp_path):
    ctx = make_join_ctx(tmp_path, ["10.0.0.4"], [])
    update = next(p for p in join_action.phases() if isinstance(p, UpdateLvscare))
    assert [n.name for n in update.hosts(ctx)] == ["10.0.0.5", "10.0.0.6"]
    assert "masters 10.0.0.2, 10.0.0.3, 10.0.0.4" in planned(update, ctx, ctx.nodes[3])[0]
    assert ctx.first_master.name == "10.0.0.2"
    ctx.nodes[0].facts = None  # the first master does not answer
    assert ctx.first_master.name == "10.0.0.3"


def test_static_pod_nodes_get_their_manifest_rewritten(tmp_path):
    ctx = make_join_ctx(tmp_path, ["10.0.0.4"], [])
    n5 = ctx.nodes[3]
    assert n5.facts is not None
    n5.facts.lvscare_unit_sha256 = None
    n5.facts.lvscare_manifest_sha256 = "0" * 64
    update = UpdateLvscare(lambda c: [n5], lambda c: ["10.0.0.2", "10.0.0.4"])
    assert planned(update, ctx, n5) == [
        "lvscare: rewrite /etc/kubernetes/manifests/kube-sealyun-lvscare.yaml "
        "with masters 10.0.0.2, 10.0.0.4"
    ]
    manifest = lvscare_node.static_pod_manifest(
        VIP, ["10.0.0.2", "10.0.0.4"], ctx.spec.lvscare_image
    )
    n5.facts.lvscare_manifest_sha256 = hashlib.sha256(manifest.encode()).hexdigest()
    assert update.hosts(ctx) == []


def test_validation_needs_the_old_nodes_when_masters_join(tmp_path):
    from sealos.errors import HostError

    ctx = make_join_ctx(tmp_path, ["10.0.0.4"], [])
    down = ctx.nodes[4]
    down.facts = None
    down.error = HostError(down.name, "no answer on port 22 within 10 s; check the address.")
    with pytest.raises(ValidationFailed) as e:
        asyncio.run(Validate([cluster_reachable]).run(ctx, list(ctx.nodes)))
    assert e.value.problems == [
        "10.0.0.6 cannot be reached (no answer on port 22 within 10 s), but its lvscare must "
        "learn the new masters; bring it up, or remove it with "
        "`sealos clean --node 10.0.0.6 --force`."
    ]


def test_joining_members_are_recorded_first_then_made_members(tmp_path):
    ctx = make_join_ctx(tmp_path, [], ["10.0.0.7"])
    members.record_join(ctx, "joining")
    state = StateStore(tmp_path).load()
    assert state is not None
    assert [(m.address, m.status) for m in state.nodes][-1] == ("10.0.0.7", "joining")
    members.record_join(ctx, "")
    state = StateStore(tmp_path).load()
    assert state is not None and state.status == "ready"
    assert [m.address for m in state.nodes] == ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
    assert state.members[-1].status == "" and state.members[-1].hostname == "h7"
    assert state.settings["nodes"] == ["10.0.0.5", "10.0.0.6", "10.0.0.7"]


# --- the clean script -----------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [False, True])
def test_clean_script_is_valid_sh_even_with_odd_names(dry_run):
    text = clean_script.script(["10.103.97.2", "fd00::2"], ["kube 1.20's $(x).tar.gz"], dry_run)
    check = subprocess.run(["sh", "-n"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "'/root/kube 1.20'\"'\"'s $(x).tar.gz'" in text
    assert "'[fd00::2]:6443'" in text and "10.103.97.2:6443" in text
    assert ("dry=1" in text) is dry_run
    assert "force=1" in clean_script.script([VIP], [], force=True)


def test_clean_output_is_parsed_once_per_thing():
    out = (
        "removed: /root/kube.tar.gz\nremoved: /root/kube.tar.gz\nproblem: cannot remove /x\n"
        "warning: kubeadm reset -f failed\n"
    )
    assert clean_script.parse(out) == (
        ["/root/kube.tar.gz"],
        ["cannot remove /x"],
        ["kubeadm reset -f failed"],
    )


# --- the command line ---------------------------------------------------------------------------


def save(home: Path, state: ClusterState) -> None:
    StateStore(home).save(state)


def invoke(home: Path, args: list[str], input: str | None = None):
    env = {"SEALOS_HOME": str(home), "SEALOS_PASSWORD": "secret"}
    return CliRunner().invoke(cli, args, env=env, input=input)


def test_cli_join_without_a_cluster_or_hosts(tmp_path):
    out = invoke(tmp_path, ["join", "--node", "10.0.0.9"])
    assert out.exit_code == 1 and "no cluster is recorded in" in out.output
    save(tmp_path, recorded())
    out = invoke(tmp_path, ["join"])
    assert out.exit_code == 2 and "name the hosts to add" in out.output


def test_cli_join_waits_for_a_finished_init(tmp_path):
    state = recorded()
    state.status = "installing"
    save(tmp_path, state)
    out = invoke(tmp_path, ["join", "--node", "10.0.0.9"])
    assert out.exit_code == 1 and "run the same `sealos init` again first" in out.output


def test_cli_join_of_a_member_is_refused_before_connecting(tmp_path):
    save(tmp_path, recorded())
    before = (tmp_path / "config.yaml").read_bytes()
    out = invoke(tmp_path, ["join", "--master", "10.0.0.3", "--connect-timeout", "0.1"])
    assert out.exit_code == 1
    assert "10.0.0.3 is already a master of this cluster (hostname 'h3')" in out.output
    assert "Connect to the hosts" not in out.output  # refused before any SSH
    assert (tmp_path / "config.yaml").read_bytes() == before


def test_cli_clean_refusals_and_confirmation(tmp_path):
    out = invoke(tmp_path, ["clean"])
    assert out.exit_code == 2 and "name the hosts to clean" in out.output
    save(tmp_path, recorded())
    out = invoke(tmp_path, ["clean", "--master", "10.0.0.2,10.0.0.3"])
    assert out.exit_code == 2 and "add --all" in out.output
    before = (tmp_path / "config.yaml").read_bytes()
    out = invoke(tmp_path, ["clean", "--node", "10.0.0.5"], input="n\n")
    assert out.exit_code == 1
    assert "This removes Kubernetes, lvscare and the package from 1 host(s): 10.0.0.5" in out.output
    assert "aborted; nothing was changed." in out.output
    assert (tmp_path / "config.yaml").read_bytes() == before


def test_clean_refuses_a_member_named_by_another_name(tmp_path):
    state = recorded()
    cleaning = clean_action.plan(
        state, [], parse_hosts(["node5.example"]), False, "state", not_a_member=True
    )
    assert cleaning.targets[0].member is None  # not known by that name before connecting
    ctx = make_join_ctx(tmp_path, [], [])
    ctx.nodes = [node("node5.example", "node", "h5", ip="10.0.0.5")]
    with pytest.raises(ValidationFailed, match=r"1 problem") as e:
        asyncio.run(
            Validate([lambda c: named_as_recorded(c, {"node5.example"})]).run(ctx, ctx.nodes)
        )
    assert re.search(r"recorded as 10\.0\.0\.5; name it that way", e.value.problems[0])


def test_the_clean_script_removes_exactly_the_footprint_data(tmp_path):
    from sealos import remote_paths as rp

    script = clean_script.script([VIP], ["kube.tar.gz"])
    for removal in rp.CLEAN_FOOTPRINT:
        assert removal.rule in (
            rp.BY_PATH,
            rp.SAME_AS_PACKAGE,
            rp.SAME_AS_PACKAGE_OR_RECORDED,
            rp.BY_CHECKSUM,
            rp.BY_MARKER,
            rp.WHEN_EMPTY,
            rp.SAME_AS_ADMIN_CONF,
            rp.WITH_OUR_KUBECONFIG,
            rp.AS_INIT_SH_WROTE,
            rp.BY_CNI_NAME,
            rp.WITH_OUR_CONTAINERD,
        )
        if removal.rule not in (rp.SAME_AS_PACKAGE, rp.BY_CHECKSUM):
            for path in removal.paths:
                assert shlex.quote(path) in script, (path, removal.made_by)
    # a path that is not in the footprint is never wiped by path
    wiped = re.findall(r"(?:^|\s)wipe ([^;\n]*)", script)
    assert any("/usr/bin/kubectl" in w for w in wiped), wiped  # the search sees gated wipes
    listed = {shlex.quote(p) for r in rp.CLEAN_FOOTPRINT for p in r.paths}
    for line in wiped:
        for word in line.split():
            if not word.startswith('"'):
                assert word in listed, word
