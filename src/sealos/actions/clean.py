"""`sealos clean`: remove the cluster from some or all of its hosts, leaving nothing behind.

Named nodes are also deleted from the cluster; named masters leave it (`kubeadm reset` removes
their etcd member) and every remaining node's lvscare stops balancing to them. Without hosts, or
with `--all`: every member, nodes first, and the state file goes. A host that cannot be reached
is reported and the others are cleaned; `--force` drops it from the state anyway.

What is not ours stays: a named host that is not a member of the recorded cluster is refused
unless `--not-a-member` says it is meant (with no state file at all, named hosts are cleaned as
they are, and the command says so); on each host the clean script removes only what the rules of
`remote_paths.CLEAN_FOOTPRINT` prove ours, and runs `kubeadm reset -f` only where sealos recorded
that it started (its markers), or with `--not-a-member`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from sealos import members, runner, validate
from sealos.addresses import HostAddress
from sealos.context import ClusterHost, Context
from sealos.errors import SpecError
from sealos.phases.base import Phase
from sealos.phases.clean_hosts import CleanHosts
from sealos.phases.connect import Connect
from sealos.phases.delete_nodes import DeleteNodes
from sealos.phases.gather_facts import GatherFacts
from sealos.phases.remove_etcd_members import RemoveEtcdMembers
from sealos.phases.update_lvscare import UpdateLvscare
from sealos.phases.validate import Validate
from sealos.runner import Result
from sealos.spec import DEFAULT_VIP, Credentials
from sealos.state import ClusterState, Member, StateStore
from sealos.ui import UI


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
    unrecorded_note: str = ""  # said when no cluster is recorded (hosts cleaned as named)

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
    not_a_member: bool = False,
) -> CleanPlan:
    """Decide what to clean; SpecError for a request that cannot be right (a named host that is
    not a member of the recorded cluster, unless `not_a_member`)."""
    named = [(a, "master") for a in masters] + [(a, "node") for a in nodes]
    if state is None or not state.members:
        if not named:
            raise SpecError(
                f"no cluster is recorded in {state_path}; name the hosts to clean "
                "with --master IP and --node IP."
            )
        note = (
            f"No cluster is recorded in {state_path}: the named host(s) are cleaned of what "
            "sealos installed there (hosts without sealos's markers keep their Kubernetes unless "
            f"{validate.NOT_A_MEMBER_FLAG} is given)."
        )
        alone = _ordered([Target(a, role) for a, role in named])
        return CleanPlan(alone, whole=True, unrecorded_note=note)
    targets: list[Target] = []
    seen: set[str] = set()
    strangers = []
    for a, role in named:
        member = members.find(state, a)
        if member is not None and member.role != role:
            raise SpecError(
                f"{a} is a {member.role} of the cluster, not a {role}; "
                f"name it with --{member.role} {a}."
            )
        if member is None:
            strangers.append(str(a))
        key = member.address if member else a.key
        if key not in seen:
            seen.add(key)
            targets.append(Target(a, role, member))
    if strangers and not not_a_member:
        verb = "is not a member" if len(strangers) == 1 else "are not members"
        raise SpecError(
            f"{', '.join(strangers)} {verb} of the cluster recorded in {state_path}, so clean "
            f"leaves it alone; add {validate.NOT_A_MEMBER_FLAG} if you mean to clean it anyway."
        )
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
        stranger = "" if t.member else ", NOT a member of the recorded cluster"
        items.append(f"{t.name} ({t.role}{hostname}{stranger})")
    what = "the whole cluster from" if p.whole else "Kubernetes, lvscare and the package from"
    return f"This removes {what} {len(p.targets)} host(s): {', '.join(items)}."


class Clean(runner.Action):
    """Clean the planned hosts; the members that stay are reached where the change concerns them
    (a master runs `kubectl delete node`, the nodes' lvscare forgets removed masters)."""

    name = "clean"
    changes_state = True

    def __init__(
        self,
        state: Optional[ClusterState],
        cleaning: CleanPlan,
        values: dict[str, Any],
        credentials: Credentials,
        store: StateStore,
        *,
        force: bool = False,
        not_a_member: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        self.state = state or ClusterState()
        self.store = store
        self.cleaning = cleaning
        self.force = force
        self.not_a_member = not_a_member
        self.spec = members.build_spec(
            values,
            credentials,
            [t.address for t in cleaning.targets if t.role == "master"],
            [t.address for t in cleaning.targets if t.role == "node"],
            connect_timeout,
        )
        self.cleaned: dict[str, Target] = {str(t.address): t for t in cleaning.targets}
        staying_masters: list[Member] = []
        if not cleaning.whole and any(t.member for t in cleaning.targets):
            staying_masters = cleaning.remaining_masters
        staying_nodes = cleaning.remaining_nodes if cleaning.masters_removed else []
        self.staying = [
            *(runner.Target(members.address_of(m), "master", m.ip) for m in staying_masters),
            *(runner.Target(members.address_of(m), "node", m.ip) for m in staying_nodes),
        ]

    def targets(self, ctx: Context) -> list[runner.Target]:
        cleaned = [
            runner.Target(t.address, t.role, t.member.ip if t.member else "")
            for t in self.cleaning.targets
        ]
        return cleaned + self.staying

    def phases(self) -> list[Phase]:
        c = self.cleaning
        settings = self.state.settings if self.state else {}
        vips = [str(settings.get("vip") or DEFAULT_VIP)]
        packages = [self.spec.package_name]
        unrecorded = {name for name, t in self.cleaned.items() if t.member is None}
        steps: list[Phase] = [
            Connect(),
            GatherFacts(),
            Validate([lambda ctx: validate.named_as_recorded(ctx, unrecorded)]),
        ]
        if c.masters_removed:
            update = UpdateLvscare(self._staying("node"), lambda _c: self.remaining_ips())
            update.keep_going = True
            steps.append(update)
        for role, title in (("node", "Clean the nodes"), ("master", "Clean the masters")):
            steps.append(
                CleanHosts(
                    title,
                    self._cleaned(role),
                    vips,
                    packages,
                    force=self.force,
                    not_ours=self.not_a_member,
                )
            )
        if not c.whole:
            steps.append(RemoveEtcdMembers(self._staying("master"), self._cleaned_masters))
            steps.append(DeleteNodes(self._staying("master"), self._node_names))
        return steps

    def _cleaned_masters(self, ctx: Context) -> list[tuple[str, str, str]]:
        """(name, ip, hostname) of the member masters cleaned so far (or forced)."""
        found = []
        for n in ctx.nodes:
            t = self.cleaned.get(n.name)
            if t is None or t.member is None or t.role != "master" or n.name in ctx.failed:
                continue
            if n.error is not None and not (self.force or ctx.dry_run):
                continue
            hostname = t.member.hostname or (n.facts.hostname if n.facts else "")
            if n.ip and hostname:
                found.append((n.name, n.ip, hostname))
        return found

    def _cleaned(self, role: str) -> Callable[[Context], list[ClusterHost]]:
        return lambda ctx: [n for n in ctx.nodes if n.name in self.cleaned and n.role == role]

    def _staying(self, role: str) -> Callable[[Context], list[ClusterHost]]:
        return lambda ctx: [n for n in ctx.nodes if n.name not in self.cleaned and n.role == role]

    def remaining_ips(self) -> list[str]:
        """The masters that stay, as lvscare's real servers."""
        return [m.ip or members.address_of(m).host for m in self.cleaning.remaining_masters]

    def _node_names(self, ctx: Context) -> list[str]:
        """Kubernetes node names of the member targets cleaned so far (or forced)."""
        names = []
        for n in ctx.nodes:
            t = self.cleaned.get(n.name)
            if t is None or t.member is None or n.name in ctx.failed:
                continue
            if n.error is not None and not (self.force or ctx.dry_run):
                continue
            name = t.member.hostname or (n.facts.hostname if n.facts else "")
            if name:
                names.append(name)
        return names

    async def conclude(self, ctx: Context, result: Result) -> None:
        if self.cleaning.masters_removed:
            masters = ", ".join(self.remaining_ips())
            ctx.errors += [
                f"{n.name} could not be reached, so its lvscare may still balance over a removed "
                f"master (not only {masters}); bring it up and run the same clean again."
                for n in self._staying("node")(ctx)
                if n.error is not None
            ]
        for n in ctx.nodes:
            if n.name not in self.cleaned or n.error is None:
                continue
            why = str(n.error).rstrip(".")
            if self.force:
                ctx.ui.warn(f"{why}; not cleaned, dropped from the state (--force).")
            else:
                ctx.errors.append(
                    f"{why}; it was not cleaned: bring it up and run the same clean again, "
                    "or add --force to drop it from the state."
                )
        if ctx.dry_run:
            return
        removed = [
            n
            for n in ctx.nodes
            if n.name in self.cleaned
            and n.name not in ctx.failed
            and (n.error is None or self.force)
        ]
        recorded = {
            name: t.member.address for name, t in self.cleaned.items() if t.member is not None
        }
        members.record_removed(ctx, removed, recorded)
        runner.summary(ctx, self)

    def errors_hint(self, log: Optional[Path]) -> str:
        return f"Fix the problems above and run the same clean again. Log: {log}"

    def summary_row(self, ctx: Context, node: ClusterHost) -> list[str]:
        t = self.cleaned.get(node.name)
        if node.facts:
            hostname = node.facts.hostname
        else:
            hostname = t.member.hostname if t and t.member else "?"
        if t is None:
            kind, what = f"{node.role} (stays)", "; ".join(node.outcome) or "unchanged"
        elif node.error is not None:
            kind = node.role
            what = (
                "unreachable, dropped from the state" if self.force else "unreachable, not cleaned"
            )
        else:
            kind = node.role
            what = "; ".join(node.outcome) or ("failed" if node.name in ctx.failed else "cleaned")
        return [node.name, kind, hostname, node.ip, what]


def run(
    state: Optional[ClusterState],
    cleaning: CleanPlan,
    values: dict[str, Any],
    credentials: Credentials,
    ui: Optional[UI] = None,
    *,
    force: bool = False,
    not_a_member: bool = False,
    dry_run: bool = False,
    store: Optional[StateStore] = None,
    connect_timeout: float = 10.0,
) -> Result:
    """Clean the planned hosts and report; exit status in `Result.ok`."""
    action = Clean(
        state,
        cleaning,
        values,
        credentials,
        store or StateStore(),
        force=force,
        not_a_member=not_a_member,
        connect_timeout=connect_timeout,
    )
    return runner.run(action, ui, dry_run=dry_run)
