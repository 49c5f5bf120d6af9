"""Phases and how an action runs them (after k0sctl's phase manager).

A phase has a title, picks from the gathered facts the hosts that still need it (once, when its
turn comes: k0sctl's Prepare), and runs on them in parallel with a bound (or one after another).
Dry run and real run share one path: `run_host` makes its changes through `ctx.wet`, which in a
dry run only records what it would do (k0sctl's `Wet`). A failure on any host stops the action
after the hosts already running have finished (a command is never cut off halfway), unless the
phase lets the action go on (`keep_going`, as clean's phases do: each host is cleaned on its own).
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
    in_dry_run = False  # True: runs as it is in a dry run (it only reads, or honours ctx.dry_run)
    keep_going = False  # True: a failure is recorded (ctx.errors) and the action goes on

    def begin(self, ctx: Context) -> None:
        """Once, when the action starts: start slow local work that may overlap connecting."""

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        """The hosts that still need this phase (from facts); none means skip."""
        return []

    async def prepare(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        """Once, before the hosts run, in a real run only (e.g. get a join token)."""

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        """Do the work on one host (changes through `ctx.wet`); return a short note for its row."""
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

    async def plan(self, ctx: Context, nodes: list[ClusterHost]) -> None:
        """Dry run of a phase that changes hosts: the same `run_host`, its changes recorded."""
        for node in nodes:
            await self.run_host(ctx, node)

    async def _guarded(self, ctx: Context, node: ClusterHost) -> HostError | None:
        started = time.monotonic()
        try:
            note = await self.run_host(ctx, node)
        except HostError as e:
            ctx.ui.host_done(node.name, False, first_line(str(e)))
            ctx.log.write(node.name, "failed", str(e))
            return e
        except SealosError as e:
            err = HostError(node.name, str(e))
            ctx.ui.host_done(node.name, False, first_line(str(e)))
            return err
        ctx.host_times.append((self.title, node.name, started, time.monotonic() - started))
        ctx.ui.host_done(node.name, True, note)
        if note:
            node.outcome.append(note)
        return None


async def run_phases(ctx: Context, phases: Sequence[Phase]) -> None:
    """Run the phases in order. In a dry run the reading phases run as usual and the others
    record their plan. A `keep_going` phase's failure goes to ctx.errors instead of stopping."""
    for phase in phases:
        try:
            await _run_phase(ctx, phase)
        except PhaseFailed as e:
            if not phase.keep_going:
                raise
            ctx.failed.update(err.host for err in e.errors)
            ctx.errors += [str(err) for err in e.errors]
        except ValidationFailed:
            raise
        except SealosError as e:
            if not phase.keep_going:
                raise
            ctx.errors.append(str(e))


async def _run_phase(ctx: Context, phase: Phase) -> None:
    nodes = phase.hosts(ctx)
    if ctx.dry_run and not phase.in_dry_run:
        await phase.plan(ctx, nodes)
        return
    if not nodes:
        ctx.ui.phase_skip(phase.title, phase.skip_reason(ctx))
        ctx.log.write("sealos", "phase", f"{phase.title}: skipped")
        return
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


def first_line(text: str) -> str:
    """The first line of a message, cut to fit a host's row."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 160 else line[:159] + "…"


def last_line(text: str) -> str:
    """The last non-empty line of a command's output (where tools put the reason they failed)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
