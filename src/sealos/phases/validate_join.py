"""Validate a `join` before anything changes: the new hosts pass every check `init` makes, none of
them is already a member (by address, IP or hostname), and the cluster can be reached where the
join needs it. Every problem is one sentence naming the host and the fix; all are listed at once.
"""

from __future__ import annotations

from sealos import members
from sealos.context import ClusterHost, Context
from sealos.phases.base import Phase
from sealos.phases.validate import bundle_problems, conclude, host_problems
from sealos.state import ClusterState


def membership_problems(
    state: ClusterState, new: list[ClusterHost], existing: list[ClusterHost]
) -> list[str]:
    """New hosts that are members already, or share a hostname with a member or each other."""
    problems: list[str] = []
    joining_again = {n.name for n in new if _resumes(state, n)}
    for n in new:
        member = members.find(state, n.address)
        if member is None and n.ssh.connected:
            member = members.find_by_ip(state, n.ip)
        if member is not None and n.name not in joining_again:
            problems.append(already_member(n.name, member.role, member.hostname))
        elif member is not None and member.role != n.role:
            problems.append(
                f"{n.name} started joining as a {member.role}; run `sealos join --{member.role} "
                f"{n.name}` to finish, or `sealos clean --{member.role} {n.name}` first."
            )
    # Hostnames of the members as they are now (facts), else as recorded.
    names: dict[str, str] = {}
    live = {n.name: n for n in existing}
    for m in state.members:
        node = live.get(m.address)
        hostname = node.facts.hostname if node is not None and node.facts else m.hostname
        if hostname and m.address not in joining_again:
            names[hostname] = m.address
    for n in new:
        if n.facts is None or not n.facts.hostname or n.name in joining_again:
            continue
        other = names.get(n.facts.hostname)
        if other is not None and other != n.name and not _is_member(state, n):
            problems.append(
                f"{n.name} has the hostname {n.facts.hostname!r}, which member {other} already "
                "has; give it its own (hostnamectl set-hostname NAME), Kubernetes names nodes "
                "after them."
            )
    return problems


def already_member(name: str, role: str, hostname: str) -> str:
    """The refusal for a host that is in the cluster already."""
    known = f" (hostname {hostname!r})" if hostname else ""
    return (
        f"{name} is already a {role} of this cluster{known}; to add it again, "
        f"remove it first with `sealos clean --{role} {name}`."
    )


def _resumes(state: ClusterState, node: ClusterHost) -> bool:
    member = members.find(state, node.address)
    return member is not None and member.status == members.JOINING


def _reason(node: ClusterHost) -> str:
    text = str(node.error or "unknown error")
    return text.removeprefix(f"{node.name}: ").split(";")[0].rstrip(".")


def _is_member(state: ClusterState, node: ClusterHost) -> bool:
    return members.find(state, node.address) is not None


class ValidateJoin(Phase):
    """Spec, reachability, membership, the new hosts' facts, package and lvscare bundle."""

    title = "Validate"
    in_dry_run = True

    def __init__(self, spec_problems: list[str], new: set[str]) -> None:
        self.spec_problems = spec_problems
        self.new = new

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return list(ctx.nodes)

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        new = [n for n in nodes if n.name in self.new]
        existing = [n for n in nodes if n.name not in self.new]
        problems = list(self.spec_problems)
        problems += [str(n.error) for n in new if n.error is not None]
        problems += membership_problems(ctx.state, new, existing)
        problems += self._cluster_problems(ctx, existing, new)
        problems += host_problems(ctx, new)
        problems += self._leftover_problems(ctx, new)
        if any(n.role == "node" for n in new) or (
            any(n.role == "master" for n in new) and ctx.workers
        ):
            problems += await bundle_problems(ctx)
        conclude(ctx, nodes, problems)

    def _cluster_problems(
        self, ctx: Context, existing: list[ClusterHost], new: list[ClusterHost]
    ) -> list[str]:
        masters = [n for n in existing if n.role == "master"]
        problems = []
        if not any(m.usable for m in masters):
            reasons = "; ".join(str(m.error) for m in masters if m.error is not None)
            reasons = reasons.rstrip(".")
            problems.append(
                "no master of the cluster can be reached, so there is nothing to join"
                + (f" ({reasons})" if reasons else "")
                + "; bring a master up and run again."
            )
        else:
            for m in masters:
                if m.error is not None:
                    ctx.ui.warn(f"{m.error} (the join goes on through the other masters)")
        if any(n.role == "master" for n in new):
            for n in existing:
                if n.role == "node" and n.error is not None:
                    why = _reason(n)
                    problems.append(
                        f"{n.name} cannot be reached ({why}), but its lvscare must learn the new "
                        f"masters; bring it up, or remove it with "
                        f"`sealos clean --node {n.name} --force`."
                    )
        return problems

    def _leftover_problems(self, ctx: Context, new: list[ClusterHost]) -> list[str]:
        problems = []
        for n in new:
            f = n.facts
            if f is None or _resumes(ctx.state, n):
                continue
            if f.init_done or f.join_done:
                problems.append(
                    f"{n.name} already holds a Kubernetes install made by sealos "
                    "(another cluster, or one not cleaned); "
                    f"remove it first with `sealos clean --{n.role} {n.name}`."
                )
        return problems
