"""`sealos join`: add masters and nodes to the cluster `init` recorded.

New hosts get what `init` gives them (package with checksum skip, init.sh, hosts entry, lvscare,
`kubeadm join` with a fresh token, and a fresh certificate key for masters), through init's own
phases limited to the new hosts. When masters join, every existing node's lvscare is given the
new master list. Everything is validated before anything changes; the new members are recorded
as "joining" first, so an interrupted join can be finished (same command) or cleaned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from sealos import members, runner, validate
from sealos.addresses import HostAddress
from sealos.context import ClusterHost, Context
from sealos.errors import SpecError
from sealos.phases.base import Phase
from sealos.phases.connect import Connect
from sealos.phases.distribute_package import DistributePackage
from sealos.phases.gather_facts import GatherFacts
from sealos.phases.join_masters import JoinMasters
from sealos.phases.join_nodes import JoinNodes
from sealos.phases.lvscare_bundle import BuildLvscareBundle
from sealos.phases.mark_started import MarkStarted
from sealos.phases.prepare_hosts import PrepareHosts
from sealos.phases.read_runtime import ReadRuntime
from sealos.phases.save_state import SaveState
from sealos.phases.update_lvscare import UpdateLvscare
from sealos.phases.validate import Validate
from sealos.runner import Result, Target
from sealos.spec import Credentials
from sealos.state import ClusterState, StateStore
from sealos.ui import UI


class OnlyNew(Phase):
    """One of init's phases, limited to the hosts this join adds."""

    def __init__(self, inner: Phase) -> None:
        self.inner = inner
        self.title = inner.title
        self.parallel = inner.parallel
        self.in_dry_run = inner.in_dry_run

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [n for n in self.inner.hosts(ctx) if n.name in ctx.new]

    def skip_reason(self, ctx: Context) -> str:
        return self.inner.skip_reason(ctx)

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        await self.inner.run(ctx, nodes)

    async def plan(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        await self.inner.plan(ctx, nodes)


def old_nodes(ctx: Context) -> list[ClusterHost]:
    """Nodes that were members before this join."""
    return [n for n in ctx.workers if n.name not in ctx.new]


def all_masters(ctx: Context) -> list[str]:
    """Every master after this join, as lvscare's real servers."""
    return [m.ip for m in ctx.masters]


def phases() -> list[Phase]:
    """The phases of `join`, in order."""
    return [
        Connect(),
        GatherFacts(),
        Validate(
            [
                validate.unreachable,
                validate.not_members,
                validate.cluster_reachable,
                validate.facts_problems,
                validate.lvscare_image_problems,
                validate.foreign_installs,
                validate.foreign_kubernetes,
                validate.cgroup_driver_problems,
            ],
            warnings=[validate.masters_down, validate.clock_warnings],
        ),
        BuildLvscareBundle(),
        SaveState(lambda ctx: members.record_join(ctx, members.JOINING)),
        OnlyNew(DistributePackage()),
        OnlyNew(MarkStarted("sealos join")),
        OnlyNew(PrepareHosts()),
        ReadRuntime(),
        Validate([validate.runtime_problems], title="Check the new hosts for kubeadm"),
        OnlyNew(JoinMasters()),
        OnlyNew(JoinNodes()),
        UpdateLvscare(old_nodes, all_masters),
        SaveState(lambda ctx: members.record_join(ctx, "")),
    ]


class Join(runner.OnRecordedCluster):
    """Add `new_masters` and `new_nodes` to the recorded cluster."""

    name = "join"
    changes_state = True

    def __init__(
        self,
        recorded: runner.Recorded,
        new_masters: list[HostAddress],
        new_nodes: list[HostAddress],
        takeover: bool = False,
    ) -> None:
        state = recorded.state
        self.takeover = takeover
        if not new_masters and not new_nodes:
            raise SpecError("name the hosts to add with --master IP or --node IP.")
        self.new_masters, self.new_nodes = new_masters, new_nodes
        self.new = frozenset(str(a) for a in [*new_masters, *new_nodes])
        again = {
            m.address
            for m in (members.find(state, a) for a in [*new_masters, *new_nodes])
            if m is not None and m.status == members.JOINING
        }
        self.old_masters = [m for m in state.masters if m.address not in again]
        # Existing nodes matter only when masters join (their lvscare learns them).
        self.old_nodes = [m for m in state.nodes if m.address not in again] if new_masters else []
        super().__init__(
            recorded,
            [*(members.address_of(m) for m in self.old_masters), *new_masters],
            [*(members.address_of(m) for m in state.nodes if m.address not in again), *new_nodes],
        )

    def problems(self, ctx: Context) -> list[str]:
        state = ctx.state
        found = runner.read_package(ctx)
        if ctx.package is None:
            ctx.package_sha256 = self.spec.pkg_sha256 or state.package_sha256
        found += validate.join_request_problems(
            state,
            str(self.store.path),
            self.spec,
            self.new_masters,
            self.new_nodes,
            ctx.package,
            ctx.package_sha256,
        )
        return list(dict.fromkeys(found))

    def targets(self, ctx: Context) -> list[Target]:
        found = []
        for role, recorded in (("master", self.old_masters), ("node", self.old_nodes)):
            for m in recorded:
                found.append(Target(members.address_of(m), role, m.ip))
                if m.status == members.JOINING:
                    ctx.ui.warn(
                        f"{m.address}'s join did not finish; run `sealos join --{m.role} "
                        f"{m.address}` again, or remove it with `sealos clean --{m.role} "
                        f"{m.address}`."
                    )
        for role, addresses in (("master", self.new_masters), ("node", self.new_nodes)):
            found += [Target(a, role) for a in addresses]
        # Masters first (state order, then the new ones): lvscare lists them in this order.
        return sorted(found, key=lambda t: t.role != "master")

    def phases(self) -> list[Phase]:
        return phases()

    async def conclude(self, ctx: Context, result: Result) -> None:
        if not ctx.dry_run:
            runner.summary(ctx, self)
            result.nodes_output = await runner.show_nodes(ctx)

    def failed_hint(self, title: str, log: Optional[Path]) -> str:
        return (
            f"'{title}' failed. Fix the cause and run the same `sealos join` again: finished "
            f"work is skipped (or undo it with `sealos clean` for those hosts). Log: {log}"
        )

    def summary_row(self, ctx: Context, node: ClusterHost) -> list[str]:
        row = super().summary_row(ctx, node)
        if node.name in ctx.new:
            row[1] = f"{node.role} (new)"
        return row


def run(
    state: ClusterState,
    values: dict[str, Any],
    credentials: Credentials,
    new_masters: list[HostAddress],
    new_nodes: list[HostAddress],
    ui: Optional[UI] = None,
    *,
    dry_run: bool = False,
    store: Optional[StateStore] = None,
    connect_timeout: float = 10.0,
    takeover: bool = False,
) -> Result:
    """Join the hosts and report; host problems end up in the Result, not as exceptions.
    `takeover` (--force-takeover): join hosts holding a Kubernetes install sealos did not start
    (reset first)."""
    recorded = runner.Recorded(state, values, credentials, store or StateStore(), connect_timeout)
    action = Join(recorded, new_masters, new_nodes, takeover)
    return runner.run(action, ui, dry_run=dry_run)
