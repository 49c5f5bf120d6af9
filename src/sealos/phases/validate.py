"""Validate before changing anything: every problem at once, one sentence each."""

from __future__ import annotations

import re

from sealos import lvscare_node
from sealos import validate as rules
from sealos.context import ClusterHost, Context
from sealos.errors import HostError, SealosError, ValidationFailed
from sealos.phases.base import Phase
from sealos.remote_paths import q


def host_problems(ctx: Context, nodes: list[ClusterHost]) -> list[str]:
    """What `init`'s rules find in these hosts' facts (against the spec and the package); the
    warnings they find go to the UI at once."""
    views = [rules.HostView(n.address, n.role, n.ip, n.facts) for n in nodes if n.facts]
    for w in rules.warnings(views, ctx.operator_time):
        ctx.ui.warn(w)
    return rules.host_problems(ctx.spec, views, ctx.package)


async def bundle_problems(ctx: Context) -> list[str]:
    """Have the lvscare bundle in `ctx.bundle` (the build started while hosts connected, else
    built now); a failed build is a problem."""
    try:
        if ctx.bundle_task is not None:
            ctx.bundle = await ctx.bundle_task
        else:
            ctx.bundle = lvscare_node.build_bundle(ctx.store.home / "cache")
    except SealosError as e:
        return [str(e)]
    return []


def conclude(ctx: Context, nodes: list[ClusterHost], problems: list[str]) -> None:
    """Mark each host's row done and raise ValidationFailed with the problems, if any."""
    for n in nodes:
        ctx.ui.host_done(n.name, n.usable, "" if n.usable else "see the problems below")
    if problems:
        # A host listed twice (master and node) would repeat its connection problem.
        raise ValidationFailed(list(dict.fromkeys(problems)))


class Validate(Phase):
    """Spec, reachability, credentials, facts, package checksum source, lvscare bundle, state."""

    title = "Validate"
    in_dry_run = True

    def __init__(self, spec_problems: list[str]) -> None:
        self.spec_problems = spec_problems

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return list(ctx.nodes)

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        problems = list(self.spec_problems)
        problems += [str(n.error) for n in nodes if n.error is not None]
        problems += host_problems(ctx, nodes)
        problems += self._state_problems(ctx)
        if not problems and ctx.spec.pkg_url and not ctx.package_sha256:
            problems += await self._published_checksum(ctx)
        if ctx.workers:
            problems += await bundle_problems(ctx)
        conclude(ctx, nodes, problems)

    def _state_problems(self, ctx: Context) -> list[str]:
        recorded = ctx.state.masters
        if not recorded or not ctx.masters:
            return []
        first = recorded[0].address
        if first != ctx.first_master.name:
            return [
                f"{ctx.store.path} records another cluster (first master {first}); "
                f"remove it with `sealos clean` or set SEALOS_HOME to keep a second cluster apart."
            ]
        return []

    async def _published_checksum(self, ctx: Context) -> list[str]:
        """--pkg-url without --pkg-sha256: read URL.sha256 (sha256sum form) on the first master."""
        url = f"{ctx.spec.pkg_url}.sha256"
        m0 = ctx.first_master
        fetch = f"curl -fsSL {q(url)} 2>&1 || wget -qO- {q(url)} 2>&1"
        try:
            result = await m0.ssh.run(fetch, timeout=60, check=False)
        except HostError as e:
            return [str(e)]
        match = re.search(r"\b[0-9a-fA-F]{64}\b", result.stdout)
        if result.exit_status != 0 or match is None:
            return [
                f"{m0.name}: cannot read the package checksum from {url}; "
                "publish it there (sha256sum output) or give --pkg-sha256."
            ]
        ctx.package_sha256 = match.group(0).lower()
        return []
