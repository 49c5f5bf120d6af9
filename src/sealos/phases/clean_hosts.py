"""Remove the cluster from hosts with the clean script (see `sealos.clean_script`); in a dry run the
same script only lists what it would remove, so this phase runs in dry runs too.
"""

from __future__ import annotations

from collections.abc import Callable

from sealos import clean_script
from sealos.context import ClusterHost, Context
from sealos.errors import HostError
from sealos.phases.base import Phase, last_line

CLEAN_TIMEOUT = 900.0  # kubeadm reset, and waiting for an interrupted run's kubeadm


class CleanHosts(Phase):
    """Hosts that could be reached; each reports what it removed."""

    in_dry_run = True  # the script honours the dry run itself (it lists what it would remove)
    keep_going = True  # each host is cleaned on its own

    def __init__(
        self,
        title: str,
        pick: Callable[[Context], list[ClusterHost]],
        vips: list[str],
        package_names: list[str],
        force: bool = False,
        not_ours: bool = False,
    ) -> None:
        self.title = title
        self.pick = pick
        self.vips = vips
        self.package_names = package_names
        self.force = force
        self.not_ours = not_ours

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [n for n in self.pick(ctx) if n.error is None and n.ssh.connected]

    def skip_reason(self, ctx: Context) -> str:
        return "no host to clean here"

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        ctx.ui.step(node.name, "listing what to remove" if ctx.dry_run else "removing")
        script = clean_script.script(
            self.vips,
            self.package_names,
            dry_run=ctx.dry_run,
            force=self.force,
            not_ours=self.not_ours,
        )
        result = await node.ssh.run(
            script, timeout=CLEAN_TIMEOUT, check=False, label="the clean script"
        )
        done, problems, warnings = clean_script.parse(result.stdout)
        for w in warnings:
            ctx.ui.warn(f"{node.name}: {w}")
        if ctx.dry_run:
            for what in done:
                ctx.would(node, f"remove {what}")
            return f"{len(done)} thing(s) to remove" if done else "already clean"
        for what in done:
            ctx.ui.step(node.name, f"removed {what}")
        if problems or not result.ok:
            reason = problems[0] if problems else last_line(result.stderr or result.stdout)
            raise HostError(
                node.name,
                f"clean did not finish ({reason}); fix that and run the same clean again.",
            )
        kept = "; kept what is not sealos's (see the warning)" if warnings else ""
        return (f"removed {len(done)} thing(s)" if done else "already clean") + kept
