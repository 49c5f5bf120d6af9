"""`sealos join`: add masters and nodes to the cluster `init` recorded.

New hosts get what `init` gives them (package with checksum skip, init.sh, hosts entry, lvscare,
`kubeadm join` with a fresh token, and a fresh certificate key for masters), through init's own
phases limited to the new hosts. When masters join, every existing node's lvscare is given the
new master list. Everything is validated before anything changes; the new members are recorded
as "joining" first, so an interrupted join can be finished (same command) or cleaned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Optional

from sealos import members
from sealos import package as package_mod
from sealos import validate as rules
from sealos.actions.init import (
    Result,
    close_run,
    nodes_table,
    report_phase_failure,
    report_problems,
)
from sealos.addresses import HostAddress
from sealos.context import ClusterHost, Context
from sealos.errors import SealosError, SpecError, ValidationFailed
from sealos.logfile import CommandLog, new_log_path
from sealos.phases.base import Phase, PhaseFailed, run_phases
from sealos.phases.connect import Connect
from sealos.phases.distribute_package import DistributePackage
from sealos.phases.gather_facts import GatherFacts
from sealos.phases.join_masters import JoinMasters
from sealos.phases.join_nodes import JoinNodes
from sealos.phases.prepare_hosts import PrepareHosts
from sealos.phases.update_lvscare import UpdateLvscare
from sealos.phases.validate_join import ValidateJoin, already_member
from sealos.redaction import Redactor
from sealos.spec import ClusterSpec, Credentials
from sealos.ssh import SSHConnection, load_client_keys
from sealos.state import ClusterState, Member, StateStore
from sealos.ui import UI, PlainUI


class JoinContext(Context):
    """A run's context where some hosts are new: the cluster's first master is the first
    existing master that answers (the recorded first one may be down)."""

    def __init__(self, *args: Any, new: set[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.new = new

    @property
    def first_master(self) -> ClusterHost:
        """The existing master tokens and certificate keys come from."""
        existing = [m for m in self.masters if m.name not in self.new]
        for m in existing:
            if m.usable:
                return m
        return existing[0] if existing else self.masters[0]


class OnlyNew(Phase):
    """One of init's phases, limited to the hosts this join adds."""

    def __init__(self, inner: Phase, new: set[str]) -> None:
        self.inner = inner
        self.new = new
        self.title = inner.title
        self.parallel = inner.parallel
        self.in_dry_run = inner.in_dry_run

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [n for n in self.inner.hosts(ctx) if n.name in self.new]

    def describe(self, ctx: Context, node: ClusterHost) -> list[str]:
        return self.inner.describe(ctx, node)

    def skip_reason(self, ctx: Context) -> str:
        return self.inner.skip_reason(ctx)

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        await self.inner.run(ctx, nodes)


class RecordMembers(Phase):
    """Save the state: new members as 'joining' before changes, as members at the end."""

    title = "Save the cluster state"

    def __init__(self, status: str, new: set[str]) -> None:
        self.status = status
        self.new = new

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [ctx.first_master]

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        record(ctx, self.new, self.status)
        for n in nodes:
            what = "new members joining" if self.status else "new members recorded"
            ctx.ui.host_done(n.name, True, f"{what}: {ctx.store.path}")


def record(ctx: Context, new: set[str], status: str) -> None:
    """Add or update the new hosts as members (IP, hostname, pinned host key) and save."""
    state = ctx.state
    for n in ctx.nodes:
        if n.ssh.host_key:
            state.host_keys[n.address.key] = n.ssh.host_key
        if n.name not in new:
            continue
        hostname = n.facts.hostname if n.facts else ""
        member = next((m for m in state.members if m.address == n.name), None)
        if member is None:
            state.members.append(Member(n.name, n.role, n.ip, hostname, status))
        else:
            member.role, member.ip, member.status = n.role, n.ip, status
            member.hostname = hostname or member.hostname
    if not status:
        state.status = "ready"
    members.sync_settings(state)
    ctx.store.save(state)


def phases(spec_problems: list[str], new: set[str]) -> list[Phase]:
    """The phases of `join`, in order."""

    def old_nodes(ctx: Context) -> list[ClusterHost]:
        return [n for n in ctx.workers if n.name not in new]

    def all_masters(ctx: Context) -> list[str]:
        return [m.ip for m in ctx.masters]

    return [
        Connect(),
        GatherFacts(),
        ValidateJoin(spec_problems, new),
        RecordMembers(members.JOINING, new),
        OnlyNew(DistributePackage(), new),
        OnlyNew(PrepareHosts(), new),
        OnlyNew(JoinMasters(), new),
        OnlyNew(JoinNodes(), new),
        UpdateLvscare(old_nodes, all_masters),
        RecordMembers("", new),
    ]


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
) -> Result:
    """Join the hosts and report; host problems end up in the Result, not as exceptions."""
    return asyncio.run(
        run_async(
            state,
            values,
            credentials,
            new_masters,
            new_nodes,
            ui or PlainUI(),
            dry_run=dry_run,
            store=store or StateStore(),
            connect_timeout=connect_timeout,
        )
    )


async def run_async(
    state: ClusterState,
    values: dict[str, Any],
    credentials: Credentials,
    new_masters: list[HostAddress],
    new_nodes: list[HostAddress],
    ui: UI,
    *,
    dry_run: bool,
    store: StateStore,
    connect_timeout: float,
) -> Result:
    """The async body of `run`."""
    if not new_masters and not new_nodes:
        raise SpecError("name the hosts to add with --master IP or --node IP.")
    new = {str(a) for a in [*new_masters, *new_nodes]}
    again = _joining_again(state, [*new_masters, *new_nodes])
    old_masters = [m for m in state.masters if m.address not in again]
    # Existing nodes matter only when masters join (their lvscare learns them).
    old_nodes = [m for m in state.nodes if m.address not in again] if new_masters else []
    spec = members.build_spec(
        values,
        credentials,
        [*(members.address_of(m) for m in old_masters), *new_masters],
        [*(members.address_of(m) for m in state.nodes if m.address not in again), *new_nodes],
        connect_timeout,
    )
    log = CommandLog(new_log_path(store.home, "join"), Redactor(*credentials.secrets()))
    result = Result(ok=False, dry_run=dry_run, log_path=log.path)
    started = time.monotonic()
    ctx = JoinContext(spec, ui, log, store, state, dry_run=dry_run, new=new)
    try:
        problems = _early_problems(ctx, state, new_masters, new_nodes)
        if problems:
            raise ValidationFailed(problems)
        ctx.client_keys = load_client_keys(credentials)
        pins = state.host_keys
        for role, recorded in (("master", old_masters), ("node", old_nodes)):
            for m in recorded:
                node = _node(ctx, members.address_of(m), role, pins)
                node.ssh.ip = m.ip or node.ssh.ip
                ctx.nodes.append(node)
                if m.status == members.JOINING:
                    ui.warn(
                        f"{m.address}'s join did not finish; run `sealos join --{m.role} "
                        f"{m.address}` again, or remove it with `sealos clean --{m.role} "
                        f"{m.address}`."
                    )
        for role, addresses in (("master", new_masters), ("node", new_nodes)):
            for a in addresses:
                ctx.nodes.append(_node(ctx, a, role, pins))
        # Masters first (state order, then the new ones): lvscare lists them in this order.
        ctx.nodes.sort(key=lambda n: n.role != "master")
        await run_phases(ctx, phases([], new))
        if dry_run:
            result.plan = {n.name: ctx.plan.get(n.name, []) for n in ctx.nodes}
            ui.plan(result.plan, action="join")
        else:
            _summary(ctx, new)
            result.nodes_output = await nodes_table(ctx)
        result.ok = True
    except ValidationFailed as e:
        report_problems(e, result, ui)
    except PhaseFailed as e:
        report_phase_failure(
            e,
            result,
            ui,
            f"'{e.title}' failed. Fix the cause and run the same `sealos join` again: finished "
            f"work is skipped (or undo it with `sealos clean` for those hosts). Log: {log.path}",
        )
        _summary(ctx, new)
    except SealosError as e:
        result.errors = [str(e)]
        ui.error(str(e))
    finally:
        await close_run(ctx, result, ui, log, started)
    return result


def _joining_again(state: ClusterState, addresses: list[HostAddress]) -> set[str]:
    """Recorded addresses of members whose earlier join did not finish and are named again."""
    found = set()
    for a in addresses:
        member = members.find(state, a)
        if member is not None and member.status == members.JOINING:
            found.add(member.address)
    return found


def _early_problems(
    ctx: Context, state: ClusterState, new_masters: list[HostAddress], new_nodes: list[HostAddress]
) -> list[str]:
    """Problems found without connecting: members named again, flags, package, version."""
    problems = []
    if state.status != "ready":
        problems.append(
            f"the cluster recorded in {ctx.store.path} is not fully installed yet "
            f"(status {state.status!r}); run the same `sealos init` again first."
        )
    named = set()
    for a in [*new_masters, *new_nodes]:
        member = members.find(state, a)
        if member is not None:
            named.add(member.address)
            if member.status != members.JOINING:
                problems.append(already_member(str(a), member.role, member.hostname))
    spec: ClusterSpec = ctx.spec
    # Flag checks over the new hosts and the members not named again (no double reports).
    others = [m for m in state.members if m.address not in named]
    check = dataclasses.replace(
        spec,
        masters=[*(members.address_of(m) for m in others if m.role == "master"), *new_masters],
        nodes=[*(members.address_of(m) for m in others if m.role == "node"), *new_nodes],
    )
    problems += rules.spec_problems(check)
    if spec.pkg is not None and spec.pkg.is_file():
        try:
            ctx.package = package_mod.inspect(spec.pkg, ctx.store.home / "cache")
            ctx.package_sha256 = ctx.package.sha256
        except SpecError as e:
            problems.append(str(e))
    else:
        ctx.package_sha256 = spec.pkg_sha256 or state.package_sha256
    recorded = state.package_sha256
    if ctx.package is not None and recorded and ctx.package.sha256 != recorded:
        problems.append(
            f"the package {spec.pkg} (SHA-256 {ctx.package.sha256[:12]}…) is not the one the "
            f"cluster was installed from ({recorded[:12]}…); give that package with --pkg."
        )
    if spec.pkg_url and not ctx.package_sha256:
        problems.append("the package's SHA-256 is not recorded; give it with --pkg-sha256.")
    return list(dict.fromkeys(problems))


def _node(ctx: Context, address: HostAddress, role: str, pins: dict[str, str]) -> ClusterHost:
    host = SSHConnection(
        address,
        ctx.spec.credentials,
        client_keys=ctx.client_keys,
        pinned_key=pins.get(address.key),
        connect_timeout=ctx.spec.connect_timeout,
        log=ctx.log,
    )
    return ClusterHost(address, role, host)


def _summary(ctx: Context, new: set[str]) -> None:
    rows = []
    for n in ctx.nodes:
        hostname = n.facts.hostname if n.facts else "?"
        what = "; ".join(n.outcome) or ("unreachable" if n.error else "nothing to do")
        kind = f"{n.role} (new)" if n.name in new else n.role
        rows.append([n.name, kind, hostname, n.ip, what])
    ctx.ui.table("Summary", ["host", "role", "hostname", "ip", "this run"], rows)
