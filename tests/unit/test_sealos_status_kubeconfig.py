"""`sealos status` and `sealos kubeconfig`: what they read and write, without hosts (the lab
story in tests/integration/test_sealos_join_clean_lab.py runs both end to end)."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sealos import spec as spec_mod
from sealos.actions.kubeconfig import with_server, write_private
from sealos.actions.status import Status
from sealos.cli import cli
from sealos.context import Context
from sealos.errors import HostError
from sealos.facts import HostFacts
from sealos.logfile import CommandLog
from sealos.phases.read_status import HostStatus, parse, status_script
from sealos.redaction import Redactor
from sealos.state import ClusterState, Member, StateStore
from sealos.ui import PlainUI

ADMIN = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://apiserver.cluster.local:6443
  name: kubernetes
users:
- name: kubernetes-admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""


def test_the_status_script_is_valid_sh_and_its_output_parses():
    script = status_script("10.103.97.2")
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0
    got = parse("kubernetes=v1.20.15\nkubelet=active\nlvscare=inactive\nvip_servers=3\n")
    assert got == HostStatus("v1.20.15", "active", "inactive", 3)
    assert parse("kubernetes=\nkubelet=inactive\n").vip_servers == -1


def recorded() -> ClusterState:
    state = ClusterState(status="ready")
    state.members = [Member("10.0.0.2", "master", "10.0.0.2", "m1"),
                     Member("10.0.0.3", "master", "10.0.0.3", "m2"),
                     Member("10.0.0.5", "node", "10.0.0.5", "n1")]  # fmt: skip
    return state


def status_ctx(tmp_path: Path) -> tuple[Status, Context]:
    from sealos import runner

    state = recorded()
    action = Status(
        runner.Recorded(state, spec_mod.defaults(), spec_mod.Credentials(), StateStore(tmp_path))
    )
    ctx = Context(action.spec, PlainUI(io.StringIO()), CommandLog(None, Redactor()),
                  action.store, state)  # fmt: skip
    ctx.nodes = [runner.cluster_host(ctx, t) for t in action.targets(ctx)]
    for n in ctx.nodes:
        n.facts = HostFacts(hostname=n.name, lvscare_unit_sha256="x" if n.role == "node" else None)
    return action, ctx


def test_status_rows_judge_kubelet_lvscare_and_the_vip_rule(tmp_path):
    action, ctx = status_ctx(tmp_path)
    m1, _m2, n1 = ctx.nodes
    found = action.reader.found
    found["10.0.0.2"] = HostStatus("v1.20.15", "active", "inactive", -1)
    found["10.0.0.5"] = HostStatus("v1.20.15", "active", "active", 2)
    assert action.row(ctx, m1) == (
        ["10.0.0.2", "master", "10.0.0.2", "v1.20.15", "active", "-", "-"],
        True,
    )
    assert action.row(ctx, n1)[0][-2:] == ["active", "2/2 masters"] and action.row(ctx, n1)[1]
    found["10.0.0.5"].vip_servers = 1  # a master left the rule: the node is not well
    assert action.row(ctx, n1) == (
        ["10.0.0.5", "node", "10.0.0.5", "v1.20.15", "active", "active", "1/2 masters"],
        False,
    )
    found["10.0.0.5"].vip_servers = -1
    assert action.row(ctx, n1)[0][-1] == "missing" and not action.row(ctx, n1)[1]
    n1.error = HostError(n1.name, "no answer")
    assert action.row(ctx, n1)[0][4] == "unreachable" and not action.row(ctx, n1)[1]


def test_kubeconfig_server_is_replaced_and_the_file_is_private(tmp_path):
    out = with_server(ADMIN.encode(), "https://10.0.0.2:6443", "10.0.0.2")
    doc = yaml.safe_load(out)
    assert doc["clusters"][0]["cluster"]["server"] == "https://10.0.0.2:6443"
    assert doc["users"] == yaml.safe_load(ADMIN)["users"]
    with pytest.raises(HostError, match="is not a kubeconfig"):
        with_server(b"just text", "https://x:6443", "10.0.0.2")
    target = tmp_path / "sub" / "kubeconfig"
    old = os.umask(0)
    try:
        write_private(target, out)
    finally:
        os.umask(old)
    assert target.read_bytes() == out and target.stat().st_mode & 0o777 == 0o600
    assert not list(target.parent.glob("*.sealos-part"))


@pytest.mark.parametrize("command", [["status"], ["kubeconfig"]])
def test_status_and_kubeconfig_need_a_recorded_cluster(tmp_path, command):
    result = CliRunner().invoke(cli, command, env={"SEALOS_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "no cluster is recorded" in result.output and "Traceback" not in result.output
