"""`sealos init`: connect, gather facts, validate, distribute the package, prepare hosts, init the
first master, join masters, join nodes (with lvscare), apply the CNI, save the state.

`run(spec, ui) -> Result` is what the CLI and the end-to-end tests call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sealos import lvscare_node, validate
from sealos import package as package_mod
from sealos import remote_paths as rp
from sealos.context import ClusterHost, Context
from sealos.errors import HostError, SealosError, SpecError, ValidationFailed
from sealos.logfile import CommandLog, new_log_path
from sealos.phases.apply_cni import ApplyCNI
from sealos.phases.base import Phase, PhaseFailed, run_phases
from sealos.phases.connect import Connect
from sealos.phases.distribute_package import DistributePackage
from sealos.phases.gather_facts import GatherFacts
from sealos.phases.init_master import InitFirstMaster
from sealos.phases.join_masters import JoinMasters
from sealos.phases.join_nodes import JoinNodes
from sealos.phases.prepare_hosts import PrepareHosts
from sealos.phases.save_state import SaveState
from sealos.phases.validate import Validate
from sealos.redaction import Redactor
from sealos.remote_paths import q
from sealos.spec import ClusterSpec
from sealos.ssh import CommandTiming, SSHConnection, load_client_keys
from sealos.state import StateStore
from sealos.ui import UI, PlainUI


@dataclass
class Result:
    """How a run ended; `ok` is True only when everything succeeded."""

    ok: bool
    dry_run: bool = False
    problems: list[str] = field(default_factory=list)  # validation: nothing was changed
    errors: list[str] = field(default_factory=list)  # a phase failed on these hosts
    failed_phase: str = ""
    log_path: Optional[Path] = None
    plan: dict[str, list[str]] = field(default_factory=dict)  # dry run
    nodes_output: str = ""  # `kubectl get nodes` at the end
    seconds: float = 0.0  # wall time of the run
    phase_times: list[tuple[str, float, float, bool]] = field(default_factory=list)
    timings: dict[str, list[CommandTiming]] = field(default_factory=dict)  # per host


def report_problems(e: ValidationFailed, result: Result, ui: UI) -> None:
    """Validation found problems before anything changed: list them all."""
    result.problems = e.problems
    for p in e.problems:
        ui.error(p)
    ui.info(f"{len(e.problems)} problem(s); nothing was changed. Fix them and run again.")


def report_phase_failure(e: PhaseFailed, result: Result, ui: UI, how_to_go_on: str) -> None:
    """A phase failed on some hosts: name them and say how to go on."""
    result.failed_phase = e.title
    result.errors = [str(err) for err in e.errors]
    for err in e.errors:
        ui.error(str(err))
    ui.info(how_to_go_on)


async def close_run(ctx: Context, result: Result, ui: UI, log: CommandLog, started: float) -> None:
    """End of every action: close the hosts, record the timings, close the UI and the log."""
    await asyncio.gather(*(n.ssh.close() for n in ctx.nodes), return_exceptions=True)
    result.seconds = time.monotonic() - started
    result.phase_times = list(ctx.phase_times)
    result.timings = {n.name: list(n.ssh.timings) for n in ctx.nodes}
    ui.close()
    log.write("sealos", "end", "ok" if result.ok else "failed")
    log.close()


def phases(spec_problems: list[str]) -> list[Phase]:
    """The phases of `init`, in order."""
    return [
        Connect(),
        GatherFacts(),
        Validate(spec_problems),
        SaveState("installing"),
        DistributePackage(),
        PrepareHosts(),
        InitFirstMaster(),
        JoinMasters(),
        JoinNodes(),
        ApplyCNI(),
        SaveState("ready"),
    ]


def run(
    spec: ClusterSpec,
    ui: Optional[UI] = None,
    *,
    dry_run: bool = False,
    store: Optional[StateStore] = None,
) -> Result:
    """Run `init` to the end (or to the first failure) and report; never raises for user errors
    found on hosts (they are in the Result), only SpecError for a bad key file."""
    return asyncio.run(run_async(spec, ui or PlainUI(), dry_run=dry_run, store=store))


async def run_async(
    spec: ClusterSpec, ui: UI, *, dry_run: bool = False, store: Optional[StateStore] = None
) -> Result:
    """The async body of `run`."""
    store = store or StateStore()
    log = CommandLog(new_log_path(store.home, "init"), Redactor(*spec.credentials.secrets()))
    result = Result(ok=False, dry_run=dry_run, log_path=log.path)
    started = time.monotonic()
    ctx = Context(spec, ui, log, store, store.load(), dry_run=dry_run)
    try:
        problems = validate.spec_problems(spec)
        if not spec.masters:
            raise ValidationFailed(problems)
        if spec.pkg is not None and spec.pkg.is_file():
            try:
                ctx.package = package_mod.inspect(spec.pkg, store.home / "cache")
                ctx.package_sha256 = ctx.package.sha256
            except SpecError as e:
                problems.append(str(e))
        ctx.client_keys = load_client_keys(spec.credentials)
        ctx.nodes = _nodes(ctx)
        if spec.nodes:
            # Building the lvscare bundle takes a second of CPU: overlap it with connecting.
            ctx.bundle_task = asyncio.create_task(
                asyncio.to_thread(lvscare_node.build_bundle, store.home / "cache")
            )
        await run_phases(ctx, phases(problems))
        if dry_run:
            result.plan = {n.name: ctx.plan.get(n.name, []) for n in ctx.nodes}
            ui.plan(result.plan)
        else:
            result.nodes_output = await _finish(ctx)
        result.ok = True
    except ValidationFailed as e:
        report_problems(e, result, ui)
    except PhaseFailed as e:
        report_phase_failure(
            e,
            result,
            ui,
            f"'{e.title}' failed. Fix the cause and run the same command again: "
            f"finished work is skipped. Full log: {log.path}",
        )
        _summary(ctx)
    except SealosError as e:
        result.errors = [str(e)]
        ui.error(str(e))
    finally:
        if ctx.bundle_task is not None and not ctx.bundle_task.done():
            ctx.bundle_task.cancel()
        await close_run(ctx, result, ui, log, started)
    return result


def _nodes(ctx: Context) -> list[ClusterHost]:
    pins = ctx.state.host_keys
    spec = ctx.spec
    nodes = []
    for role, addresses in (("master", spec.masters), ("node", spec.nodes)):
        for a in addresses:
            host = SSHConnection(
                a,
                spec.credentials,
                client_keys=ctx.client_keys,
                pinned_key=pins.get(a.key),
                connect_timeout=spec.connect_timeout,
                log=ctx.log,
            )
            nodes.append(ClusterHost(a, role, host))
    return nodes


async def _finish(ctx: Context) -> str:
    """Summary table and `kubectl get nodes` from the first master."""
    _summary(ctx)
    return await nodes_table(ctx)


async def nodes_table(ctx: Context) -> str:
    """Show `kubectl get nodes -o wide` from the first master; its output, or "" if unreachable."""
    m0 = ctx.first_master
    try:
        out = await m0.ssh.run(
            f"kubectl --kubeconfig {q(rp.ADMIN_CONF)} get nodes -o wide", timeout=60
        )
    except HostError as e:
        ctx.ui.warn(f"could not list the nodes: {e}")
        return ""
    ctx.ui.block(f"kubectl get nodes (on {m0.name}):", out.stdout)
    return out.stdout


def _summary(ctx: Context) -> None:
    rows = []
    for n in ctx.nodes:
        hostname = n.facts.hostname if n.facts else "?"
        what = "; ".join(n.outcome) or ("unreachable" if n.error else "nothing to do")
        rows.append([n.name, n.role, hostname, n.ip, what])
    ctx.ui.table("Summary", ["host", "role", "hostname", "ip", "this run"], rows)
