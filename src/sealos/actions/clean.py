"""`sealos clean`: remove the cluster from some or all of its hosts, leaving nothing behind.

Named nodes are also deleted from the cluster; named masters leave it (`kubeadm reset` removes
their etcd member) and every remaining node's lvscare stops balancing to them. Without hosts, or
with `--all`: every member, nodes first, and the state file goes. A host that cannot be reached
is reported and the others are cleaned; `--force` drops it from the state anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from sealos import members
from sealos.actions.init import Result, close_run
from sealos.addresses import HostAddress
from sealos.context import ClusterHost, Context
from sealos.errors import SealosError, SpecError
from sealos.logfile import CommandLog, new_log_path
from sealos.phases.base import Phase, PhaseFailed, run_phases
from sealos.phases.clean_hosts import CleanHosts
from sealos.phases.connect import Connect
from sealos.phases.delete_nodes import DeleteNodes
from sealos.phases.gather_facts import GatherFacts
from sealos.phases.update_lvscare import UpdateLvscare
from sealos.redaction import Redactor
from sealos.spec import DEFAULT_VIP, Credentials
from sealos.ssh import SSHConnection, load_client_keys
from sealos.state import ClusterState, Member, StateStore
from sealos.ui import UI, PlainUI


@dataclass
class Target:
    """A host to clean: its address, role, and its record when it is a member."""

    address: HostAddress
    role: str
    member: Optional[Member] = None

    @property
    def name(self) -> str:
        """How messages name it (as recorded, else as typed)."""
        return self.member.address if self.member else str(self.address)


@dataclass
class CleanPlan:
    """Which hosts go, which members stay, and whether the whole cluster goes."""

    targets: list[Target]  # nodes first, then masters
    remaining_masters: list[Member] = field(default_factory=list)
    remaining_nodes: list[Member] = field(default_factory=list)
    whole: bool = False

    @property
    def masters_removed(self) -> bool:
        """True when masters are named in a cluster that stays: the remaining nodes' lvscare
        then balances over the remaining masters (naming a master again, after it already
        left, repairs a node that could not be reached the first time)."""
        return not self.whole and any(t.role == "master" for t in self.targets)


def plan(
    state: Optional[ClusterState],
    masters: list[HostAddress],
    nodes: list[HostAddress],
    everything: bool,
    state_path: str,
) -> CleanPlan:
    """Decide what to clean; SpecError for a request that cannot be right."""
    named = [(a, "master") for a in masters] + [(a, "node") for a in nodes]
    if state is None or not state.members:
        if not named:
            raise SpecError(
                f"no cluster is recorded in {state_path}; name the hosts to clean "
                "with --master IP and --node IP."
            )
        return CleanPlan(_ordered([Target(a, role) for a, role in named]), whole=True)
    targets: list[Target] = []
    seen: set[str] = set()
    for a, role in named:
        member = members.find(state, a)
        if member is not None and member.role != role:
            raise SpecError(
                f"{a} is a {member.role} of the cluster, not a {role}; "
                f"name it with --{member.role} {a}."
            )
        key = member.address if member else a.key
        if key not in seen:
            seen.add(key)
            targets.append(Target(a, role, member))
    whole = everything or not named
    if whole:
        for m in state.members:
            if m.address not in seen:
                seen.add(m.address)
                targets.append(Target(members.address_of(m), m.role, m))
    gone = {t.member.address for t in targets if t.member}
    remaining_masters = [m for m in state.masters if m.address not in gone]
    remaining_nodes = [m for m in state.nodes if m.address not in gone]
    if not whole and state.masters and not remaining_masters:
        names = ", ".join(m.address for m in state.masters)
        raise SpecError(
            f"cleaning {names} would remove the last master of the cluster; "
            "add --all to remove the whole cluster."
        )
    return CleanPlan(_ordered(targets), remaining_masters, remaining_nodes, whole)


def _ordered(targets: list[Target]) -> list[Target]:
    return [t for t in targets if t.role == "node"] + [t for t in targets if t.role == "master"]


def describe_plan(p: CleanPlan) -> str:
    """One line listing the hosts, for the confirmation prompt."""
    items = []
    for t in p.targets:
        hostname = f" {t.member.hostname}" if t.member and t.member.hostname else ""
        items.append(f"{t.name} ({t.role}{hostname})")
    what = "the whole cluster from" if p.whole else "Kubernetes, lvscare and the package from"
    return f"This removes {what} {len(p.targets)} host(s): {', '.join(items)}."


def run(
    state: Optional[ClusterState],
    cleaning: CleanPlan,
    values: dict[str, Any],
    credentials: Credentials,
    ui: Optional[UI] = None,
    *,
    force: bool = False,
    dry_run: bool = False,
    store: Optional[StateStore] = None,
    connect_timeout: float = 10.0,
) -> Result:
    """Clean the planned hosts and report; exit status in `Result.ok`."""
    return asyncio.run(
        run_async(
            state,
            cleaning,
            values,
            credentials,
            ui or PlainUI(),
            force=force,
            dry_run=dry_run,
            store=store or StateStore(),
            connect_timeout=connect_timeout,
        )
    )


async def run_async(
    state: Optional[ClusterState],
    cleaning: CleanPlan,
    values: dict[str, Any],
    credentials: Credentials,
    ui: UI,
    *,
    force: bool,
    dry_run: bool,
    store: StateStore,
    connect_timeout: float,
) -> Result:
    """The async body of `run`."""
    state = state or ClusterState()
    spec = members.build_spec(
        values,
        credentials,
        [t.address for t in cleaning.targets if t.role == "master"],
        [t.address for t in cleaning.targets if t.role == "node"],
        connect_timeout,
    )
    log = CommandLog(new_log_path(store.home, "clean"), Redactor(*credentials.secrets()))
    result = Result(ok=False, dry_run=dry_run, log_path=log.path)
    started = time.monotonic()
    ctx = Context(spec, ui, log, store, state, dry_run=dry_run)
    run = _Run(cleaning, force)
    try:
        ctx.client_keys = load_client_keys(credentials)
        run.add_nodes(ctx)
        await run_phases(ctx, [Connect(), GatherFacts()])
        run.check_aliases(ctx, state)
        for phase in run.phases(ctx, state):
            try:
                await run_phases(ctx, [phase])
            except PhaseFailed as e:
                run.failed.update(err.host for err in e.errors)
                run.errors += [str(err) for err in e.errors]
            except SealosError as e:
                run.errors.append(str(e))
        run.errors += run.lvscare_not_updated(ctx)
        for n in run.unreachable(ctx):
            why = str(n.error).rstrip(".")
            if force:
                ui.warn(f"{why}; not cleaned, dropped from the state (--force).")
            else:
                run.errors.append(
                    f"{why}; it was not cleaned: bring it up and run the same clean again, "
                    "or add --force to drop it from the state."
                )
        if dry_run:
            result.plan = {n.name: ctx.plan.get(n.name, []) for n in ctx.nodes}
            ui.plan(result.plan, action="clean")
        else:
            _save(ctx, run)
            _summary(ctx, run)
    except SealosError as e:
        run.errors.append(str(e))
    finally:
        result.errors = run.errors
        result.ok = not run.errors
        for err in run.errors:
            ui.error(err)
        if run.errors and not dry_run:
            ui.info(f"Fix the problems above and run the same clean again. Log: {log.path}")
        await close_run(ctx, result, ui, log, started)
    return result


class _Run:
    """Who is who in one clean run, and how it went."""

    def __init__(self, cleaning: CleanPlan, force: bool) -> None:
        self.cleaning = cleaning
        self.force = force
        self.targets: dict[str, Target] = {}  # node name -> what to clean
        self.masters: list[ClusterHost] = []  # masters that stay (kubectl runs on one)
        self.nodes: list[ClusterHost] = []  # nodes that stay (their lvscare may change)
        self.failed: set[str] = set()
        self.errors: list[str] = []

    def add_nodes(self, ctx: Context) -> None:
        c = self.cleaning
        for t in c.targets:
            node = _node(ctx, t.address, t.role, t.member)
            self.targets[node.name] = t
            ctx.nodes.append(node)
        if not c.whole and any(t.member for t in c.targets):
            self.masters = [
                _node(ctx, members.address_of(m), "master", m) for m in c.remaining_masters
            ]
        if c.masters_removed:
            self.nodes = [_node(ctx, members.address_of(m), "node", m) for m in c.remaining_nodes]
        ctx.nodes += self.masters + self.nodes

    def phases(self, ctx: Context, state: ClusterState) -> list[Phase]:
        c = self.cleaning
        vips = [str(state.settings.get("vip") or DEFAULT_VIP)]
        packages = [ctx.spec.package_name]
        steps: list[Phase] = []
        if c.masters_removed:
            steps.append(UpdateLvscare(lambda _c: self.nodes, lambda _c: self.remaining_ips()))
        for role, title in (("node", "Clean the nodes"), ("master", "Clean the masters")):
            steps.append(
                CleanHosts(title, self._targets_with(role), vips, packages, force=self.force)
            )
        if not c.whole:
            steps.append(DeleteNodes(lambda _c: self.masters, self._node_names))
        return steps

    def check_aliases(self, ctx: Context, state: ClusterState) -> None:
        """A host named by another name than its record would be cleaned but stay recorded:
        refuse before anything changes."""
        for n in ctx.nodes:
            t = self.targets.get(n.name)
            if t is None or t.member is not None or not n.ssh.connected:
                continue
            member = members.find_by_ip(state, n.ip)
            if member is not None:
                raise SpecError(
                    f"{n.name} is the {member.role} recorded as {member.address}; "
                    f"name it that way (--{member.role} {member.address}). Nothing was changed."
                )

    def remaining_ips(self) -> list[str]:
        """The masters that stay, as lvscare's real servers."""
        return [m.ip or members.address_of(m).host for m in self.cleaning.remaining_masters]

    def lvscare_not_updated(self, ctx: Context) -> list[str]:
        """Remaining nodes whose lvscare could not be given the new master list."""
        if not self.cleaning.masters_removed:
            return []
        masters = ", ".join(self.remaining_ips())
        return [
            f"{n.name} could not be reached, so its lvscare may still balance over a removed "
            f"master (not only {masters}); bring it up and run the same clean again."
            for n in self.nodes
            if n.error is not None
        ]

    def _targets_with(self, role: str) -> Callable[[Context], list[ClusterHost]]:
        return lambda ctx: [n for n in ctx.nodes if n.name in self.targets and n.role == role]

    def unreachable(self, ctx: Context) -> list[ClusterHost]:
        """Targets that could not be reached (or whose facts could not be read)."""
        return [n for n in ctx.nodes if n.name in self.targets and n.error is not None]

    def removed(self, ctx: Context) -> list[ClusterHost]:
        """Targets that leave the state: cleaned, or unreachable with --force."""
        out = []
        for n in ctx.nodes:
            if n.name not in self.targets or n.name in self.failed:
                continue
            if n.error is None or self.force:
                out.append(n)
        return out

    def _node_names(self, ctx: Context) -> list[str]:
        """Kubernetes node names of the member targets cleaned so far (or forced)."""
        names = []
        for n in ctx.nodes:
            t = self.targets.get(n.name)
            if t is None or t.member is None or n.name in self.failed:
                continue
            if n.error is not None and not (self.force or ctx.dry_run):
                continue
            name = t.member.hostname or (n.facts.hostname if n.facts else "")
            if name:
                names.append(name)
        return names


def _node(ctx: Context, address: HostAddress, role: str, member: Optional[Member]) -> ClusterHost:
    host = SSHConnection(
        address,
        ctx.spec.credentials,
        client_keys=ctx.client_keys,
        pinned_key=ctx.state.host_keys.get(address.key),
        connect_timeout=ctx.spec.connect_timeout,
        log=ctx.log,
    )
    if member is not None and member.ip:
        host.ip = member.ip
    return ClusterHost(address, role, host)


def _save(ctx: Context, run: _Run) -> None:
    """Drop the removed members; remove the file when none is left."""
    state = ctx.state
    gone = set()
    for n in run.removed(ctx):
        member = run.targets[n.name].member
        if member is not None:
            gone.add(member.address)
            state.host_keys.pop(n.address.key, None)
    if not gone:
        return
    state.members = [m for m in state.members if m.address not in gone]
    if not state.members:
        ctx.store.remove()
        ctx.ui.info(f"The cluster is gone; removed {ctx.store.path}.")
        return
    members.sync_settings(state)
    ctx.store.save(state)


def _summary(ctx: Context, run: _Run) -> None:
    rows = []
    for n in ctx.nodes:
        t = run.targets.get(n.name)
        hostname = n.facts.hostname if n.facts else (t.member.hostname if t and t.member else "?")
        if t is None:
            kind, what = f"{n.role} (stays)", "; ".join(n.outcome) or "unchanged"
        elif n.error is not None:
            kind = n.role
            what = (
                "unreachable, dropped from the state" if run.force else "unreachable, not cleaned"
            )
        else:
            kind = n.role
            what = "; ".join(n.outcome) or ("failed" if n.name in run.failed else "cleaned")
        rows.append([n.name, kind, hostname, n.ip, what])
    ctx.ui.table("Summary", ["host", "role", "hostname", "ip", "this run"], rows)
