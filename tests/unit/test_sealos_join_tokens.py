"""Bootstrap tokens sealos makes for joins (kubeadm init's, `kubeadm token create`'s) are deleted
at the end of the run, by their public ID; a token the user's own kubeadm config lists is theirs
and stays (issue 11)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from sealos import spec as spec_mod
from sealos.addresses import parse_hosts
from sealos.context import ClusterHost, Context
from sealos.errors import HostError
from sealos.facts import HostFacts
from sealos.kubeversion import KubeVersion
from sealos.logfile import CommandLog
from sealos.phases.init_master import InitFirstMaster
from sealos.redaction import Redactor
from sealos.runner import delete_join_tokens
from sealos.ssh import CommandResult, SSHConnection
from sealos.state import StateStore
from sealos.ui import PlainUI

TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "1" * 64
INIT_OUTPUT = (
    "Your Kubernetes control-plane has initialized successfully!\n"
    f"kubeadm join apiserver.cluster.local:6443 --token {TOKEN} \\\n"
    f"    --discovery-token-ca-cert-hash {HASH}\n"
)


def make_ctx(
    tmp_path: Path, fail_delete: bool = False, **kw
) -> tuple[Context, ClusterHost, list[str], io.StringIO]:
    spec = spec_mod.ClusterSpec(
        masters=parse_hosts(["10.0.0.2"]), version=KubeVersion.parse("v1.20.15"), **kw
    )
    out = io.StringIO()
    ctx = Context(spec, PlainUI(out), CommandLog(None, Redactor()), StateStore(tmp_path), None)
    m0 = ClusterHost(spec.masters[0], "master", SSHConnection(spec.masters[0], spec.credentials))
    m0.facts = HostFacts(hostname="m0")
    ctx.nodes = [m0]
    commands: list[str] = []

    async def fake_run(command, **kwargs):
        commands.append(command)
        if command.startswith("kubeadm token delete") and fail_delete:
            raise HostError(m0.name, "the connection broke")
        return CommandResult(0, INIT_OUTPUT if "kubeadm init" in command else "", "")

    async def fake_put(data, remote, **kwargs):
        commands.append(f"put {remote}")

    m0.ssh.run = fake_run  # type: ignore[method-assign]
    m0.ssh.put_bytes = fake_put  # type: ignore[method-assign]
    return ctx, m0, commands, out


def test_the_token_kubeadm_init_made_is_deleted_by_its_id(tmp_path):
    ctx, m0, commands, _ = make_ctx(tmp_path)
    asyncio.run(InitFirstMaster()._init(ctx, m0))
    assert ctx.tokens_made == ["abcdef"]
    asyncio.run(delete_join_tokens(ctx))
    assert commands[-1] == "kubeadm token delete abcdef"
    assert all(TOKEN not in c for c in commands)  # the secret half never in argv
    assert ctx.tokens_made == []


def test_a_token_listed_in_the_users_kubeadm_config_stays(tmp_path):
    config = tmp_path / "kubeadm.yaml"
    config.write_text(f"kind: InitConfiguration\nbootstrapTokens:\n- token: {TOKEN}\n")
    ctx, m0, _, _ = make_ctx(tmp_path, kubeadm_config=config)
    asyncio.run(InitFirstMaster()._init(ctx, m0))
    assert ctx.tokens_made == []


def test_a_token_that_cannot_be_deleted_is_a_warning_with_the_command(tmp_path):
    ctx, _, _, out = make_ctx(tmp_path, fail_delete=True)
    ctx.tokens_made = ["abcdef"]
    asyncio.run(delete_join_tokens(ctx))
    assert "kubeadm token delete abcdef" in out.getvalue() and TOKEN not in out.getvalue()
