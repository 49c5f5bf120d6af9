"""Validate before changing anything: the action's rules (all in `sealos.validate`) are asked, every
problem is listed at once, one sentence each, and the action stops before any change."""

from __future__ import annotations

from collections.abc import Sequence

from sealos.context import ClusterHost, Context
from sealos.errors import ValidationFailed
from sealos.phases.base import Phase
from sealos.validate import Rule


class Validate(Phase):
    """Every host's row ends done (usable) or failed; warnings are shown, problems stop the run."""

    title = "Validate"
    in_dry_run = True

    def __init__(
        self, rules: Sequence[Rule], warnings: Sequence[Rule] = (), title: str = "Validate"
    ) -> None:
        self.title = title
        self.rules = rules
        self.warnings = warnings

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return list(ctx.nodes)

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        for rule in self.warnings:
            for w in rule(ctx):
                ctx.ui.warn(w)
        problems = [p for rule in self.rules for p in rule(ctx)]
        for n in nodes:
            ctx.ui.host_done(n.name, n.usable, "" if n.usable else "see the problems below")
        if problems:
            # A host listed twice (master and node) would repeat its connection problem.
            raise ValidationFailed(list(dict.fromkeys(problems)))
