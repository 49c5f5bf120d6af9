"""Phases and how an action runs them (after k0sctl's phase manager).

A phase has a title, picks from the gathered facts the hosts that still need it (so a re-run does
only what is left), can say what it would do (dry run), and runs on its hosts in parallel with a
bound (or one after another). A failure on any host stops the action after the hosts already
running have finished: a command is never cut off halfway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from sealos.context import ClusterHost, Context
from sealos.errors import HostError, SealosError, ValidationFailed


class PhaseFailed(SealosError):
    """One or more hosts failed a phase; each error names its host, command and error output."""

    def __init__(self, title: str, errors: list[HostError]) -> None:
        hosts = ", ".join(e.host for e in errors)
        super().__init__(f"{title} failed on {hosts}")
        self.title = title
        self.errors = errors


class Phase:
    """One step of an action. Subclasses set `title` and override what they need."""

    title = "phase"
    parallel = True  # False: hosts one after another (e.g. joining masters)
    in_dry_run = False  # True: runs for real in a dry run (it only reads)

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        """The hosts that still need this phase (from facts); none means skip."""
        return []

    def describe(self, ctx: Context, node: ClusterHost) -> list[str]:
        """Dry run: what this phase would do on `node`."""
        return []

    async def prepare(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        """Once, before the hosts run (e.g. get a join token)."""

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        """Do the work on one host; return a short note for its row (empty: 'done')."""
        return ""

    def skip_reason(self, ctx: Context) -> str:
        """Shown when no host needs the phase."""
        return "nothing to do (already done)"

    async def run(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        """Run on `nodes` within the concurrency bound; PhaseFailed lists every failure."""
        await self.prepare(ctx, nodes)
        errors: list[HostError] = []
        if self.parallel:
            limit = asyncio.Semaphore(ctx.spec.concurrency)

            async def one(node: ClusterHost) -> None:
                async with limit:
                    err = await self._guarded(ctx, node)
                    if err is not None:
                        errors.append(err)

            await asyncio.gather(*(one(n) for n in nodes))
        else:
            for node in nodes:
                err = await self._guarded(ctx, node)
                if err is not None:
                    errors.append(err)
                    break  # one after another: the next host depends on this one
        if errors:
            raise PhaseFailed(self.title, errors)

    async def _guarded(self, ctx: Context, node: ClusterHost) -> HostError | None:
        try:
            note = await self.run_host(ctx, node)
        except HostError as e:
            ctx.ui.host_done(node.name, False, _first_line(str(e)))
            ctx.log.write(node.name, "failed", str(e))
            return e
        except SealosError as e:
            err = HostError(node.name, str(e))
            ctx.ui.host_done(node.name, False, _first_line(str(e)))
            return err
        ctx.ui.host_done(node.name, True, note)
        if note:
            node.outcome.append(note)
        return None


async def run_phases(ctx: Context, phases: Sequence[Phase]) -> None:
    """Run the phases in order; in a dry run only the reading phases run, the rest describe."""
    for phase in phases:
        if ctx.dry_run and not phase.in_dry_run:
            for node in phase.hosts(ctx):
                for line in phase.describe(ctx, node):
                    ctx.would(node, line)
            continue
        nodes = phase.hosts(ctx)
        if not nodes:
            ctx.ui.phase_skip(phase.title, phase.skip_reason(ctx))
            ctx.log.write("sealos", "phase", f"{phase.title}: skipped")
            continue
        ctx.ui.phase_start(phase.title, [n.name for n in nodes])
        ctx.log.write("sealos", "phase", f"{phase.title}: {', '.join(n.name for n in nodes)}")
        started = time.monotonic()
        try:
            await phase.run(ctx, nodes)
        except (PhaseFailed, ValidationFailed):
            ctx.ui.phase_end(phase.title, False, time.monotonic() - started)
            raise
        except HostError as e:
            ctx.ui.phase_end(phase.title, False, time.monotonic() - started)
            raise PhaseFailed(phase.title, [e]) from None
        except SealosError as e:
            ctx.ui.phase_end(phase.title, False, time.monotonic() - started)
            raise PhaseFailed(phase.title, [HostError("sealos", str(e))]) from None
        ctx.ui.phase_end(phase.title, True, time.monotonic() - started)
        ctx.phase_times.append((phase.title, started, time.monotonic() - started, phase.parallel))


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 160 else line[:159] + "…"
