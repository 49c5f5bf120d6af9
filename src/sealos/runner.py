"""How every action runs (k0sctl's phase manager, phase/manager.go): an action is its options plus
an ordered list of phases; the runner owns the log, the context, the hosts' SSH connections, the
checks made before connecting, running the phases (dry run included), the plan, the summary, the
report of what failed, and closing everything.

Adding a command is one module under `sealos/actions/` with an `Action` subclass (its hosts and its
phases) and a CLI entry that calls `run`: nothing of this file is copied.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from sealos import kubeadm, members
from sealos import package as package_mod
from sealos import remote_paths as rp
from sealos.addresses import HostAddress
from sealos.context import ClusterHost, Context
from sealos.errors import HostError, SealosError, SpecError, ValidationFailed
from sealos.logfile import CommandLog, new_log_path
from sealos.phases.base import Phase, PhaseFailed, first_line, run_phases
from sealos.redaction import Redactor, url_secrets
from sealos.remote_paths import q
from sealos.spec import ClusterSpec, Credentials
from sealos.ssh import (
    CommandTiming,
    SSHConnection,
    key_file_warning,
    load_client_keys,
    load_known_hosts,
)
from sealos.state import ClusterState, StateStore
from sealos.ui import UI, PlainUI

SUMMARY_COLUMNS = ["host", "role", "hostname", "ip", "this run"]


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
    host_times: list[tuple[str, str, float, float]] = field(default_factory=list)  # per turn
    timings: dict[str, list[CommandTiming]] = field(default_factory=dict)  # per host


@dataclass
class Target:
    """A host an action works on: its address, role, and the IP recorded for it (if any)."""

    address: HostAddress
    role: str
    ip: str = ""


class Action:
    """One command: its options (set by the subclass) and an ordered list of phases."""

    name = "action"  # names the log file and the dry run's plan
    changes_state = False  # init, join, clean: the run holds the state's lock
    spec: ClusterSpec
    store: StateStore
    state: Optional[ClusterState] = None
    new: frozenset[str] = frozenset()  # hosts this run installs into a running cluster (join)
    takeover = False  # --force-takeover (init, join)

    def problems(self, ctx: Context) -> list[str]:
        """Problems found before connecting (the run stops with them, nothing changed)."""
        return []

    def targets(self, ctx: Context) -> list[Target]:
        """The hosts taking part, masters first."""
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        """The phases, in order."""
        raise NotImplementedError

    async def conclude(self, ctx: Context, result: Result) -> None:
        """After the phases (also in a dry run): show, record, or add errors (ctx.errors)."""

    def failed_hint(self, title: str, log: Optional[Path]) -> str:
        """What to do when phase `title` failed."""
        return (
            f"'{title}' failed. Fix the cause and run the same command again: "
            f"finished work is skipped. Full log: {log}"
        )

    def errors_hint(self, log: Optional[Path]) -> str:
        """What to do when the run ends with errors (phases that let it go on); '' for none."""
        return ""

    def summary_row(self, ctx: Context, node: ClusterHost) -> list[str]:
        """One row of the summary table (SUMMARY_COLUMNS)."""
        hostname = node.facts.hostname if node.facts else "?"
        what = "; ".join(node.outcome) or ("unreachable" if node.error else "nothing to do")
        return [node.name, node.role, hostname, node.ip, what]


@dataclass
class Recorded:
    """The cluster the state file records, as a command finds it: the state, init's settings
    overlaid by today's flags, today's credentials, the store, and the connect timeout."""

    state: ClusterState
    values: dict[str, Any]
    credentials: Credentials
    store: StateStore
    connect_timeout: float = 10.0


class OnRecordedCluster(Action):
    """An action on the recorded cluster (join, status, kubeconfig), over the given hosts."""

    def __init__(
        self, recorded: Recorded, masters: list[HostAddress], nodes: list[HostAddress]
    ) -> None:
        self.state, self.store = recorded.state, recorded.store
        self.spec = members.build_spec(
            recorded.values, recorded.credentials, masters, nodes, recorded.connect_timeout
        )


def run(action: Action, ui: Optional[UI] = None, *, dry_run: bool = False) -> Result:
    """Run the action to the end (or to the first failure) and report; user errors found on
    hosts are in the Result, never raised."""
    return asyncio.run(run_async(action, ui or PlainUI(), dry_run=dry_run))


async def run_async(action: Action, ui: UI, *, dry_run: bool = False) -> Result:
    """The async body of `run`."""
    spec, store = action.spec, action.store
    if action.changes_state:
        # The CLI took it before reading the state; here for callers of `run` (idempotent).
        store.lock(f"sealos {action.name}")
    secrets = [*spec.credentials.secrets(), *url_secrets(spec.pkg_url)]
    log = CommandLog(new_log_path(store.home, action.name), Redactor(*secrets))
    result = Result(ok=False, dry_run=dry_run, log_path=log.path)
    started = time.monotonic()
    ctx = Context(spec, ui, log, store, action.state, dry_run=dry_run, new=set(action.new))
    ctx.takeover = action.takeover
    phases = action.phases()
    try:
        problems = action.problems(ctx)
        if problems:
            raise ValidationFailed(problems)
        ctx.client_keys = load_client_keys(spec.credentials)
        if warning := key_file_warning(spec.credentials.key_path):
            ui.warn(warning)
        ctx.known_hosts = load_known_hosts(spec.credentials.host_key_policy)
        ctx.bastion = bastion_connection(ctx)
        ctx.nodes = [cluster_host(ctx, t) for t in action.targets(ctx)]
        for phase in phases:
            phase.begin(ctx)
        await run_phases(ctx, phases)
        await action.conclude(ctx, result)
        if dry_run:
            result.plan = {n.name: ctx.plan.get(n.name, []) for n in ctx.nodes}
            ui.plan(result.plan, action=action.name)
        result.ok = not ctx.errors
    except ValidationFailed as e:
        result.problems = e.problems
        for p in e.problems:
            ui.error(p)
        ui.info(f"{len(e.problems)} problem(s); nothing was changed. Fix them and run again.")
    except PhaseFailed as e:
        result.failed_phase = e.title
        result.errors = [str(err) for err in e.errors]
        for host_error in e.errors:
            ui.error(str(host_error))
        ui.info(action.failed_hint(e.title, log.path))
        summary(ctx, action)
    except SealosError as e:
        ctx.errors.append(str(e))
    finally:
        if ctx.bundle_task is not None and not ctx.bundle_task.done():
            ctx.bundle_task.cancel()
        if ctx.errors:
            result.errors += ctx.errors
            for err in ctx.errors:
                ui.error(err)
            hint = action.errors_hint(log.path)
            if hint and not dry_run:
                ui.info(hint)
        if ctx.tokens_made:
            await delete_join_tokens(ctx)
        await _close(ctx, result, ui, log, started)
        if action.changes_state:
            store.unlock()
    return result


def bastion_connection(ctx: Context) -> Optional[SSHConnection]:
    """The run's one connection to --bastion (not yet open), or None without one: its host key
    is checked and pinned as any host's; its login is the targets' unless USER@ or
    SEALOS_BASTION_PASSWORD say otherwise."""
    bastion = ctx.spec.bastion
    if bastion is None:
        return None
    return SSHConnection(
        bastion.address,
        ctx.spec.credentials.for_bastion(bastion),
        client_keys=ctx.client_keys,
        pinned_key=ctx.state.host_keys.get(bastion.address.key),
        known_hosts=ctx.known_hosts,
        connect_timeout=ctx.spec.connect_timeout,
        log=ctx.log,
        label="bastion",
    )


def cluster_host(ctx: Context, target: Target) -> ClusterHost:
    """A host of the run with its SSH connection (its host key checked against the pin recorded
    and the known_hosts files), through the bastion when there is one."""
    spec = ctx.spec
    ssh = SSHConnection(
        target.address,
        spec.credentials,
        client_keys=ctx.client_keys,
        pinned_key=ctx.state.host_keys.get(target.address.key),
        known_hosts=ctx.known_hosts,
        connect_timeout=spec.connect_timeout,
        log=ctx.log,
        tunnel=ctx.bastion,
    )
    if target.ip:
        ssh.ip = target.ip
    return ClusterHost(target.address, target.role, ssh)


def read_package(ctx: Context) -> list[str]:
    """Inspect --pkg on the operator's machine (checksum, architecture, its manifest; cached);
    its problem, also when it is not the file --pkg-sha256 names."""
    pkg = ctx.spec.pkg
    if pkg is None or not pkg.is_file():
        return []
    try:
        ctx.package = package_mod.inspect(pkg, ctx.store.home / "cache")
    except SpecError as e:
        return [str(e)]
    given = ctx.spec.pkg_sha256
    if given and given != ctx.package.sha256:
        return [
            f"the package {pkg} has SHA-256 {ctx.package.sha256}, not the {given} given with "
            "--pkg-sha256; check that it is the file you meant (or the checksum)."
        ]
    ctx.package_sha256 = ctx.package.sha256
    return []


async def delete_join_tokens(ctx: Context) -> None:
    """Delete the bootstrap tokens this run made for its joins (kubeadm gives them 24 h: nobody
    may join with them after the run), also when the run failed; a re-run makes fresh ones."""
    m0, ids = ctx.first_master, list(dict.fromkeys(ctx.tokens_made))
    try:
        await m0.ssh.run(kubeadm.token_delete_command(ids), timeout=120)
    except HostError as e:
        ctx.ui.warn(
            f"the bootstrap token(s) {', '.join(ids)} made for the joins could not be deleted "
            f"({first_line(str(e))}); delete them on {m0.name}: kubeadm token delete "
            f"{' '.join(ids)}."
        )
        return
    ctx.tokens_made.clear()
    ctx.log.write(m0.name, "tokens", f"deleted the bootstrap token(s) {', '.join(ids)}")


def summary(ctx: Context, action: Action) -> None:
    """The table of every host and what this run did there."""
    rows = [action.summary_row(ctx, n) for n in ctx.nodes]
    ctx.ui.table("Summary", SUMMARY_COLUMNS, rows)


async def show_nodes(ctx: Context) -> str:
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


async def _close(ctx: Context, result: Result, ui: UI, log: CommandLog, started: float) -> None:
    """End of every action: close the hosts, record the timings, close the UI and the log."""
    await asyncio.gather(*(n.ssh.close() for n in ctx.nodes), return_exceptions=True)
    if ctx.bastion is not None:
        await ctx.bastion.close()  # after the hosts whose sessions run over it
    result.seconds = time.monotonic() - started
    result.phase_times = list(ctx.phase_times)
    result.host_times = list(ctx.host_times)
    result.timings = {n.name: list(n.ssh.timings) for n in ctx.nodes}
    ui.close()
    log.write("sealos", "end", "ok" if result.ok else "failed")
    log.close()
