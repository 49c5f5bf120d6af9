"""Issue 11, "Destroying what is not ours": a host holding a Kubernetes install sealos did not
record as started is refused by init and join; clean refuses non-members without
--not-a-member; the clean script keeps what fails its rule (a kubectl that is not the package's,
a kubectl config that is not the cluster's admin.conf); --force no longer skips the question."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_sealos_join_clean import make_join_ctx, node, planned, recorded

from sealos import clean_script, facts, validate
from sealos import remote_paths as rp
from sealos import spec as spec_mod
from sealos.actions import clean as clean_action
from sealos.actions import init as init_action
from sealos.actions import join as join_action
from sealos.addresses import parse_hosts
from sealos.cli import cli
from sealos.context import Context
from sealos.errors import SpecError, ValidationFailed
from sealos.kubeversion import KubeVersion
from sealos.logfile import CommandLog
from sealos.phases.commands import once
from sealos.phases.init_master import InitFirstMaster
from sealos.phases.validate import Validate
from sealos.redaction import Redactor
from sealos.state import ClusterState, Member, StateStore
from sealos.ui import PlainUI


def validate_phase(phases) -> Validate:
    return next(p for p in phases if isinstance(p, Validate))


def foreign(n) -> None:
    """What another Kubernetes install leaves: kubeadm's admin.conf and etcd, no sealos marker."""
    n.facts.kubeadm_leftovers = ["/etc/kubernetes/admin.conf", "/var/lib/etcd/member"]


def init_ctx(tmp_path: Path, takeover: bool = False) -> tuple[init_action.Init, Context]:
    spec = spec_mod.ClusterSpec(
        masters=parse_hosts(["10.0.0.2"]),
        nodes=parse_hosts(["10.0.0.5"]),
        version=KubeVersion.parse("v1.20.15"),
        pkg=tmp_path / "kube.tar.gz",
    )
    action = init_action.Init(spec, StateStore(tmp_path), takeover=takeover)
    ctx = Context(
        spec, PlainUI(io.StringIO()), CommandLog(None, Redactor()), StateStore(tmp_path), None
    )
    ctx.takeover = takeover
    ctx.nodes = [node("10.0.0.2", "master", "h2"), node("10.0.0.5", "node", "h5")]
    return action, ctx


def test_init_refuses_a_host_holding_kubernetes_sealos_did_not_start(tmp_path):
    action, ctx = init_ctx(tmp_path)
    foreign(ctx.nodes[1])
    with pytest.raises(ValidationFailed) as e:
        asyncio.run(validate_phase(action.phases()).run(ctx, ctx.nodes))
    assert e.value.problems == [
        "10.0.0.5 holds a Kubernetes install sealos did not start there "
        "(/etc/kubernetes/admin.conf, /var/lib/etcd/member); remove it first with "
        "`sealos clean --node 10.0.0.5 --not-a-member`, or add --force-takeover to reset it "
        "and install over it."
    ]


def test_a_running_kubelet_alone_is_a_foreign_install_and_our_marker_makes_it_ours(tmp_path):
    _, ctx = init_ctx(tmp_path)
    f = ctx.nodes[0].facts
    f.kubelet_running = True
    assert "a running kubelet" in validate.foreign_kubernetes(ctx)[0]
    f.sealos_started = True  # an interrupted run of sealos: resumed, not refused
    f.kubeadm_leftovers = ["/etc/kubernetes/admin.conf"]
    assert validate.foreign_kubernetes(ctx) == []


def test_force_takeover_lets_init_go_on_and_the_dry_run_says_so(tmp_path):
    action, ctx = init_ctx(tmp_path, takeover=True)
    foreign(ctx.nodes[0])
    asyncio.run(validate_phase(action.phases()).run(ctx, ctx.nodes))  # no problem
    plan = planned(InitFirstMaster(), ctx, ctx.nodes[0])
    assert not any("stopped halfway" in line for line in plan), plan
    assert any("sealos did not start: taken over, --force-takeover" in line for line in plan)


def test_join_refuses_a_new_host_holding_kubernetes_sealos_did_not_start(tmp_path):
    ctx = make_join_ctx(tmp_path, [], ["10.0.0.7"])
    foreign(ctx.nodes[-1])
    with pytest.raises(ValidationFailed) as e:
        asyncio.run(validate_phase(join_action.phases()).run(ctx, ctx.nodes))
    assert e.value.problems == [
        "10.0.0.7 holds a Kubernetes install sealos did not start there "
        "(/etc/kubernetes/admin.conf, /var/lib/etcd/member); remove it first with "
        "`sealos clean --node 10.0.0.7 --not-a-member`, or add --force-takeover to reset it "
        "and install over it."
    ]


def test_facts_read_our_markers_and_a_running_kubelet():
    f = facts.parse("started=1\nsealos_started=1\nkubelet_running=1\n")
    assert f.started and f.sealos_started and f.kubelet_running
    script = facts.gather_script("kube.tar.gz", "apiserver.cluster.local")
    assert rp.MARK_STARTED in script and "kubelet_running=1" in script


def test_once_resets_leftovers_only_where_sealos_recorded_it_started():
    command = once(rp.MARK_JOIN, "kubeadm join")
    assert f"if [ ! -f {rp.MARK_STARTED} ]" in command
    assert command.index(rp.MARK_STARTED) < command.index("kubeadm reset -f")


# --- clean: non-members -------------------------------------------------------------------------


def test_clean_refuses_a_host_that_is_not_a_member_unless_asked():
    with pytest.raises(SpecError) as e:
        clean_action.plan(recorded(), [], parse_hosts(["10.0.0.9"]), False, "state")
    assert str(e.value) == (
        "10.0.0.9 is not a member of the cluster recorded in state, so clean leaves it alone; "
        "add --not-a-member if you mean to clean it anyway."
    )
    p = clean_action.plan(
        recorded(), [], parse_hosts(["10.0.0.9"]), False, "state", not_a_member=True
    )
    assert "10.0.0.9 (node, NOT a member of the recorded cluster)" in clean_action.describe_plan(p)


def test_clean_without_a_state_cleans_named_hosts_and_says_so():
    p = clean_action.plan(None, [], parse_hosts(["10.0.0.9"]), False, "state")
    assert [t.name for t in p.targets] == ["10.0.0.9"]
    assert p.unrecorded_note.startswith("No cluster is recorded in state: ")


# --- the command line ---------------------------------------------------------------------------


def local_cluster() -> ClusterState:
    """A recorded cluster on closed local ports (nothing leaves this machine)."""
    state = recorded()
    state.members = [
        Member("127.0.0.1:2", "master", "127.0.0.1", "m"),
        Member("127.0.0.1:3", "node", "127.0.0.1", "n"),
    ]
    return state


def invoke(home: Path, args: list[str], input: str | None = None):
    env = {"SEALOS_HOME": str(home), "SEALOS_PASSWORD": "secret"}
    return CliRunner().invoke(cli, args, env=env, input=input)


def test_cli_clean_force_still_asks_unless_yes(tmp_path):
    StateStore(tmp_path).save(local_cluster())
    before = (tmp_path / "config.yaml").read_bytes()
    out = invoke(tmp_path, ["clean", "--node", "127.0.0.1:3", "--force"], input="n\n")
    assert out.exit_code == 1, out.output
    assert "This removes Kubernetes, lvscare and the package from 1 host(s)" in out.output
    assert "aborted; nothing was changed." in out.output
    assert (tmp_path / "config.yaml").read_bytes() == before


def test_cli_clean_of_a_non_member_is_refused_and_the_prompt_names_it(tmp_path):
    StateStore(tmp_path).save(local_cluster())
    out = invoke(tmp_path, ["clean", "--node", "127.0.0.1:4"], input="n\n")
    assert out.exit_code == 2 and "127.0.0.1:4 is not a member" in out.output, out.output
    assert "This removes" not in out.output
    out = invoke(tmp_path, ["clean", "--node", "127.0.0.1:4", "--not-a-member"], input="n\n")
    assert out.exit_code == 1
    assert "127.0.0.1:4 (node, NOT a member of the recorded cluster)" in out.output
    help_text = invoke(tmp_path, ["clean", "--help"]).output
    assert "-y does not" in " ".join(help_text.split())


# --- the clean script's rules, run with sh on a temp root ---------------------------------------

ROOTED = re.compile(r"(?<=[\s'\"])/(usr|root|var|etc|opt|run)/")


def rules_under(root: Path, not_ours: bool = False) -> str:
    """The clean script's own lines for kube's binaries (6), cluster files and kubectl's config
    (8) and its warnings, with every path moved under `root`: the rules run, the machine is not
    touched."""
    text = clean_script.script([], [], not_ours=not_ours)
    prelude = text[: text.index("# An interrupted run's kubeadm")]
    parts = [
        text[text.index("# 6. ") : text.index("# 7. ")],
        text[text.index("# 8. ") : text.index("# 9. ")],
        text[text.index('if [ -n "$foreign" ]') : text.index('if [ "$dry" = 0 ] && [ "$reload"')],
    ]
    body = ROOTED.sub(lambda m: f"{root}/{m.group(1)}/", prelude + "".join(parts))
    for path in re.findall(r"(?<=[\s'\"])/[a-z]\S*", body):
        assert path.startswith(str(root)), path  # nothing outside the temp root
    return body + "exit $failed\n"


def host(tmp_path: Path, marker: bool = True) -> Path:
    root = tmp_path / "host"
    files = {
        "root/kube/bin/kubeadm": "package kubeadm",
        "root/kube/bin/kubelet": "package kubelet",
        "root/kube/bin/kubectl": "package kubectl",
        "usr/bin/kubeadm": "package kubeadm",
        "usr/bin/kubelet": "package kubelet",
        "usr/bin/kubectl": "the admin's own kubectl",
        "etc/kubernetes/admin.conf": "this cluster's admin",
        "root/.kube/config": "another cluster's admin",
    }
    if marker:
        files["var/lib/sealos/started"] = "sealos init started on this host"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


def run_rules(root: Path, not_ours: bool = False) -> tuple[list[str], list[str]]:
    proc = subprocess.run(
        ["sh"], input=rules_under(root, not_ours), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done, problems, warnings = clean_script.parse(proc.stdout)
    assert problems == []
    return done, warnings


def test_clean_keeps_a_kubectl_that_is_not_the_packages_and_a_foreign_kubeconfig(tmp_path):
    root = host(tmp_path)
    _, warnings = run_rules(root)
    assert not (root / "usr/bin/kubeadm").exists() and not (root / "usr/bin/kubelet").exists()
    assert (root / "usr/bin/kubectl").read_text() == "the admin's own kubectl\n"
    assert (root / "root/.kube/config").read_text() == "another cluster's admin\n"
    assert not (root / "etc/kubernetes").exists()
    assert f"{root}/usr/bin/kubectl (not the package's)" in warnings[0], warnings
    assert f"{root}/root/.kube/config (not the cluster's admin.conf)" in warnings[0], warnings


def test_clean_removes_root_kubeconfig_when_it_is_the_admin_conf(tmp_path):
    root = host(tmp_path)
    (root / "root/.kube/config").write_text("this cluster's admin\n")
    run_rules(root)
    assert not (root / "root/.kube/config").exists()


def test_without_kube_bin_only_a_binary_recorded_at_install_goes(tmp_path):
    root = host(tmp_path)
    (root / "usr/bin/kubectl").write_text("package kubectl\n")
    for b in ("kubeadm", "kubelet", "kubectl"):
        (root / "root/kube/bin" / b).unlink()
    kubeadm = root / "usr/bin/kubeadm"
    record = f"{hashlib.sha256(kubeadm.read_bytes()).hexdigest()}  {kubeadm}\n"
    (root / "var/lib/sealos/installed.sha256").write_text(record)
    _, warnings = run_rules(root)
    assert not kubeadm.exists()
    assert (root / "usr/bin/kubectl").exists() and (root / "usr/bin/kubelet").exists()
    assert "no package file or record to compare with" in warnings[0]


def test_on_a_host_without_our_marker_clean_removes_nothing_unless_asked(tmp_path):
    root = host(tmp_path, marker=False)
    done, warnings = run_rules(root)
    assert done == []
    assert (root / "usr/bin/kubeadm").exists() and (root / "etc/kubernetes/admin.conf").exists()
    assert "no marker of sealos on this host" in warnings[-1]
    assert "add --not-a-member" in warnings[-1]
    run_rules(root, not_ours=True)  # asked: by the same rules as on our hosts
    assert not (root / "etc/kubernetes").exists() and not (root / "usr/bin/kubeadm").exists()
    assert (root / "usr/bin/kubectl").exists()


def test_the_kubeadm_reset_step_needs_our_marker():
    text = clean_script.script([], [])
    step = text[text.index("# 2. ") : text.index("# 3. ")]
    assert step.index("if ! owned") < step.index("kubeadm reset -f")
