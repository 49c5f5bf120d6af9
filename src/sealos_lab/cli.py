"""`sealos-lab`: bring lab hosts up and down, run commands in them or on the operator side, boot a
one-shot VM (`vm-run`), build the lab's offline package (`package`), and serve upstream-shaped
releases and images to `sealos package build` (`releases`)."""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Optional

import click

from sealos_lab import lab as labmod
from sealos_lab.lab import Lab, LabError
from sealos_lab.state import HostSpec

PASSTHROUGH = {"ignore_unknown_options": True, "allow_interspersed_args": False}

name_option = click.option(
    "--name",
    default="default",
    show_default=True,
    envvar="SEALOS_LAB_NAME",
    help="Which lab (several may exist at once).",
)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"sealos-lab: {message}", err=True)
    sys.exit(code)


def _load(name: str) -> Lab:
    return labmod.Lab.load(name)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
    )


def _describe(lab: Lab) -> str:
    """The table `up` and `status` print: each host, and how to reach it by key and by password."""
    name_opt = "" if lab.name == "default" else f" --name {lab.name}"

    def cmd(sub: str) -> str:
        return f"sealos-lab {sub}{name_opt}"

    rows = [["HOST", "HOSTNAME", "ADDRESS", "KIND", "SSH BY KEY (operator side)", "SHELL"]]
    for h in lab.hosts:
        rows.append(
            [
                h.name,
                h.hostname,
                h.ip,
                h.kind,
                f"{cmd('run')} -- ssh -F {lab.ssh_config_path} {h.name}",
                f"{cmd('shell')} {h.name}",
            ]
        )
    first = lab.hosts[0] if lab.hosts else None
    lines = [
        f"lab {lab.name!r}: {len(lab.hosts)} {lab.kind} host(s) on {lab.subnet}, no route out; "
        f"operator side {lab.operator_ip} in namespace {lab.operator_netns}",
        "",
        _table(rows),
        "",
        f"root password (every host): {cmd('password')}   (file {lab.password_path}, mode 0600)",
        f"root key: {lab.key_path}   known hosts: {lab.known_hosts_path}",
    ]
    if first:
        lines.append(
            f'ssh by password: SSHPASS="$({cmd("password")})" {cmd("run")} -- sshpass -e ssh '
            f"-o UserKnownHostsFile={lab.known_hosts_path} root@{first.ip}"
        )
    lines.append(f"run a command inside a host: {cmd('exec')} HOST -- CMD")
    lines.append(f"remove the lab: {cmd('down')}")
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Real SSH hosts on this machine for tests, demos and rehearsing an install."""


@cli.command()
@click.option("--hosts", default=3, show_default=True, type=int, help="How many hosts.")
@name_option
@click.option("--vm", is_flag=True, help="QEMU VMs with Debian's kernel (real IPVS; slower).")
@click.option(
    "--hostname",
    "hostnames",
    multiple=True,
    metavar="HOST=NAME",
    help="Give a host another hostname, e.g. h2=node (repeatable; several hosts may share one).",
)
@click.option("--timeout", type=float, help="Seconds to wait for every host to answer SSH.")
@click.option(
    "--runtime",
    type=click.Choice(["containerd", "none"]),
    default="containerd",
    show_default=True,
    help="The hosts' container runtime: Debian's containerd (running, on cgroupfs), or none "
    "(for packages that bring their own).",
)
@click.option("--memory", "memory", multiple=True, help="A VM host's memory, e.g. h1=2048 (MB).")
@click.option("--cpus", "cpus", multiple=True, help="A VM host's CPUs, e.g. h3=1 (QEMU -smp).")
@click.option(
    "--cgroup-v1",
    "cgroup_v1",
    multiple=True,
    help="Boot this VM host on cgroup v1 (systemd.unified_cgroup_hierarchy=0), e.g. h1.",
)
def up(
    hosts: int,
    name: str,
    vm: bool,
    hostnames: tuple[str, ...],
    timeout: Optional[float],
    runtime: str,
    memory: tuple[str, ...],
    cpus: tuple[str, ...],
    cgroup_v1: tuple[str, ...],
):
    """Create (or complete) a lab and wait until every host answers SSH."""
    per_host: dict[str, dict[str, Any]] = {}
    for option, items in (("memory_mb", memory), ("cpus", cpus)):
        for item in items:
            host, sep, value = item.partition("=")
            if not sep or not host or not value.isdigit():
                raise LabError(f"{item!r} is not HOST=NUMBER; write it like h1=2048")
            per_host.setdefault(host, {})[option] = int(value)
    for host in cgroup_v1:
        per_host.setdefault(host, {})["cgroup_v1"] = True
    specs = {h: HostSpec(runtime=runtime, **options) for h, options in per_host.items()}
    wanted: dict[str, str] = {}
    for item in hostnames:
        host, sep, value = item.partition("=")
        if not sep or not host or not value:
            raise LabError(f"--hostname {item!r} is not HOST=NAME; write it like h2=node")
        wanted[host] = value
    existing: Optional[Lab] = None
    if labmod.STATE.joinpath(name, labmod.STATE_FILE).exists():
        existing = _load(name)
        running = [h for h in existing.hosts if existing.is_running(h.name)]
        if len(running) >= hosts and len(running) == len(existing.hosts):
            click.echo(f"lab {name!r} is already up ({len(running)} host(s) running)")
    lab = labmod.up(
        name,
        hosts,
        vm=vm,
        hostnames=wanted,
        timeout=timeout,
        log=lambda line: click.echo(line, err=True),
        runtime=runtime,
        specs=specs,
    )
    if existing is not None and len(existing.hosts) > hosts:
        click.echo(f"lab {name!r} keeps its {len(existing.hosts)} hosts", err=True)
    click.echo(_describe(lab))


@cli.command()
@name_option
def status(name: str) -> None:
    """Show the lab's hosts, whether they run and whether their sshd answers."""
    lab = _load(name)
    rows = [["HOST", "HOSTNAME", "ADDRESS", "KIND", "RUNNING", "SSH"]]
    for r in lab.status():
        rows.append(
            [
                r["host"],
                r["hostname"],
                r["ip"],
                r["kind"],
                "yes" if r["running"] else "no",
                "answers" if r["ssh"] else "-",
            ]
        )
    click.echo(f"lab {lab.name!r} on {lab.subnet}, operator namespace {lab.operator_netns}")
    click.echo(_table(rows))


@cli.command()
@name_option
def down(name: str) -> None:
    """Remove the lab: hosts, namespaces, mounts and files (also a half-made one)."""
    labmod.down(name)
    click.echo(f"lab {name!r} is down")


@cli.command(name="list")
def list_() -> None:
    """List the labs on this machine."""
    for name in labmod.list_labs():
        click.echo(name)


@cli.command()
@name_option
def password(name: str) -> None:
    """Print root's password of the lab's hosts (for `SSHPASS=... sshpass -e`)."""
    click.echo(_load(name).password)


@cli.command(name="exec", context_settings=PASSTHROUGH)
@name_option
@click.argument("host")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(name: str, host: str, cmd: tuple[str, ...]) -> None:
    """Run CMD inside HOST as root; exits with CMD's exit code."""
    lab = _load(name)
    sys.exit(_call(lab.exec_argv(host, _command(cmd), tty=sys.stdin.isatty())))


@cli.command()
@name_option
@click.argument("host")
def shell(name: str, host: str) -> None:
    """An interactive root shell inside HOST."""
    lab = _load(name)
    sys.exit(_call(lab.exec_argv(host, ["bash", "-l"], tty=True)))


@cli.command(context_settings=PASSTHROUGH)
@name_option
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def run(name: str, cmd: tuple[str, ...]) -> None:
    """Run CMD on the operator side (the lab bridge's namespace), environment passed through."""
    lab = _load(name)
    if not labmod.netns.exists(lab.operator_netns):
        raise LabError(
            f"lab {name!r} has no network; bring it up with `sealos-lab up --name {name}`"
        )
    sys.exit(_call(lab.run_argv(_command(cmd))))


@cli.command(name="vm-run", context_settings=PASSTHROUGH)
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def vm_run(directory: str, cmd: tuple[str, ...]) -> None:
    """Boot one VM (Debian kernel, real IPVS, no network card) with DIRECTORY attached, run CMD
    as root inside, print its output and exit with its exit code."""
    vm = _optional("sealos_lab.vm", "vm-run")
    sys.exit(vm.main_vm_run(directory, _command(cmd)))


@cli.command(context_settings={**PASSTHROUGH, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def package(args: tuple[str, ...]) -> None:
    """Build the lab's offline package: package --version vX.Y.Z [--out FILE]."""
    pkg = _optional("sealos_lab.package", "package")
    sys.exit(pkg.main(list(args)))


@cli.group()
def releases() -> None:
    """The lab's release mirror and registry, for `sealos package build --mirror ...`."""


def _releases_module() -> Any:
    return _optional("sealos_lab.releases", "releases")


@releases.command(name="up")
@name_option
@click.option(
    "--version",
    "versions",
    multiple=True,
    required=True,
    metavar="vX.Y.Z",
    help="A Kubernetes version to serve (repeatable).",
)
@click.option(
    "--arch",
    "arches",
    multiple=True,
    type=click.Choice(["amd64", "arm64"]),
    help="An architecture to serve (repeatable; default amd64).",
)
def releases_up(name: str, versions: tuple[str, ...], arches: tuple[str, ...]) -> None:
    """Serve upstream-shaped releases and images on the lab's operator side; print the flags
    for `sealos package build`."""
    mod = _releases_module()
    try:
        served = mod.for_lab(name, list(versions), list(arches) or ["amd64"])
    except LabError:
        raise
    except Exception as e:  # one clear line: a bad version, apt, a server that did not start
        raise LabError(f"releases for lab {name!r}: {e}") from None
    click.echo(
        f"releases of lab {name!r}: {served.base_url} and registry {served.registry.endpoint} "
        f"(in namespace {served.netns}); versions {' '.join(served.versions)}, "
        f"arches {' '.join(served.arches)}",
        err=True,
    )
    click.echo(shlex.join(served.mirror_args()))


@releases.command(name="args")
@name_option
def releases_args(name: str) -> None:
    """Print the `sealos package build` flags of the lab's running releases."""
    served = _releases_module().running_for_lab(name)
    if served is None:
        raise LabError(f"lab {name!r} serves no releases; start them with `sealos-lab releases up`")
    click.echo(shlex.join(served.mirror_args()))


@releases.command(name="down")
@name_option
def releases_down(name: str) -> None:
    """Stop the lab's release mirror and registry (their files stay until `sealos-lab down`)."""
    stopped = _releases_module().stop_for_lab(name)
    click.echo(f"releases of lab {name!r} {'stopped' if stopped else 'were not running'}")


def _optional(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LabError(f"`sealos-lab {what}` is not available in this build") from None


def _command(cmd: Sequence[str]) -> list[str]:
    """CMD as given after HOST; a `--` that separates it from our options is not part of it."""
    argv = list(cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise LabError("no command given; write it after `--`, e.g. `-- hostname`")
    return argv


def _call(argv: Sequence[str]) -> int:
    """Run a command attached to our terminal; Ctrl-C goes to it, not to us."""
    try:
        return subprocess.call(list(argv))
    except KeyboardInterrupt:
        return 130
    except FileNotFoundError as e:
        raise LabError(f"{e.filename}: command not found") from None


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console entry point: one clear line on a user error, no traceback."""
    if os.geteuid() != 0:
        args = list(argv if argv is not None else sys.argv[1:])
        if not ({"-h", "--help"} & set(args)) and args and args[0] not in ("package",):
            _fail("the lab needs root (namespaces, mounts); run it with sudo")
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="sealos-lab")
    except LabError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except subprocess.TimeoutExpired as e:
        _fail(f"{shlex.join(str(a) for a in e.cmd)} timed out after {e.timeout:.0f} s")
