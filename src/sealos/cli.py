"""The `sealos` command line. Errors a user can cause end in one sentence and a non-zero exit."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import click
from click.core import ParameterSource

from sealos import __version__
from sealos import spec as spec_mod
from sealos.errors import SealosError, SpecError, ValidationFailed

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# click parameter name -> cluster.yaml key
_FILE_KEY = {
    "master": "masters",
    "node": "nodes",
    "user": "user",
    "port": "port",
    "pk": "pk",
    "bastion": "bastion",
    "version": "version",
    "pkg": "pkg",
    "pkg_url": "pkgUrl",
    "pkg_sha256": "pkgSha256",
    "vip": "vip",
    "apiserver": "apiserver",
    "kubeadm_config": "kubeadmConfig",
    "cri_socket": "criSocket",
    "podcidr": "podCIDR",
    "svccidr": "serviceCIDR",
    "cert_sans": "certSANs",
    "repo": "repo",
    "without_cni": "withoutCNI",
    "lvscare_mode": "lvscareMode",
    "lvscare_image": "lvscareImage",
    "concurrency": "concurrency",
}


def ssh_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The SSH login flags every command shares."""
    options = [
        click.option(
            "--user",
            default="root",
            show_default=True,
            help="SSH user; not root: commands run through its sudo (password: "
            "SEALOS_SUDO_PASSWORD, else the SSH password).",
        ),
        click.option(
            "--passwd",
            default=None,
            help=f"SSH password; '-' asks for it. Default: ${spec_mod.PASSWORD_ENV}, else keys.",
        ),
        click.option("--pk", default=None, help="SSH private key file."),
        click.option(
            "--pk-passwd",
            default=None,
            help=f"Passphrase of --pk; '-' asks for it. Default: ${spec_mod.PK_PASSWORD_ENV}.",
        ),
        click.option(
            "--port", default=22, show_default=True, type=int, help="SSH port (per host: IP:PORT)."
        ),
        click.option(
            "--host-key-policy",
            type=click.Choice(spec_mod.HOST_KEY_POLICIES),
            default=spec_mod.HOST_KEY_POLICIES[0],
            show_default=True,
            help="SSH host keys: accept-new takes an unknown key (refuses a changed one), strict "
            "only keys in ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts or sealos's pins, tofu "
            "sealos's pins only.",
        ),
        click.option(
            "--bastion",
            default=None,
            help="Reach every host through this SSH jump host, [USER@]HOST[:PORT] (recorded for "
            "join and clean). Its login: USER@ or --user, the same key or password, or "
            f"${spec_mod.BASTION_PASSWORD_ENV}.",
        ),
        click.option(
            "--connect-timeout",
            default=10.0,
            show_default=True,
            type=float,
            help="Seconds to reach a host.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--sealos-version", prog_name="sealos")
def cli() -> None:
    """Install a highly available Kubernetes cluster over SSH (no haproxy, no keepalived)."""


@cli.command("init")
@click.option(
    "--master",
    multiple=True,
    help="Master host: IP, IP:PORT, range A-B or name; repeat or comma-separate.",
)
@click.option("--node", multiple=True, help="Worker node, same forms as --master.")
@ssh_options
@click.option(
    "--pkg", default=None, help="Offline package file, e.g. kube1.14.1.tar.gz (uploaded over SFTP)."
)
@click.option(
    "--pkg-url", default=None, help="URL every host downloads the package from (curl or wget)."
)
@click.option(
    "--pkg-sha256",
    default=None,
    help="SHA-256 of the package (--pkg or --pkg-url; plain http needs it; default for https: "
    "read URL.sha256).",
)
@click.option("--version", "version", default=None, help="Kubernetes version, e.g. v1.14.1.")
@click.option(
    "--vip",
    default=spec_mod.DEFAULT_VIP,
    show_default=True,
    help="Virtual IP nodes reach the masters by.",
)
@click.option(
    "--apiserver", default=spec_mod.DEFAULT_APISERVER, show_default=True, help="Apiserver DNS name."
)
@click.option(
    "--kubeadm-config", default=None, help="Use this kubeadm config as is instead of rendering one."
)
@click.option(
    "--cri-socket",
    default=None,
    help="Container runtime socket for kubeadm and the kubelet, e.g. "
    "unix:///run/containerd/containerd.sock (default: the one runtime that answers on each host).",
)
@click.option(
    "--podcidr", default=spec_mod.DEFAULT_POD_CIDR, show_default=True, help="Pod network."
)
@click.option(
    "--svccidr", default=spec_mod.DEFAULT_SVC_CIDR, show_default=True, help="Service network."
)
@click.option(
    "--cert-sans", multiple=True, help="Extra apiserver certificate name or IP; repeatable."
)
@click.option(
    "--repo", default=None, help="Image registry for Kubernetes' images (kubeadm imageRepository)."
)
@click.option(
    "--without-cni",
    is_flag=True,
    default=False,
    help="Do not apply the CNI manifest of the package.",
)
@click.option(
    "--lvscare-mode",
    type=click.Choice(spec_mod.LVSCARE_MODES),
    default="systemd",
    show_default=True,
    help="Keep lvscare running as a systemd unit or a static pod.",
)
@click.option(
    "--lvscare-image",
    default=spec_mod.DEFAULT_LVSCARE_IMAGE,
    show_default=True,
    help="Static-pod image.",
)
@click.option(
    "--concurrency",
    default=spec_mod.DEFAULT_CONCURRENCY,
    show_default=True,
    type=int,
    help="Hosts at once.",
)
@click.option(
    "--force-takeover",
    is_flag=True,
    help="Install over a Kubernetes install sealos did not start on a host: reset it (its etcd "
    "too) and overwrite its binaries.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Connect and gather facts, print what would be done, change nothing.",
)
@click.option(
    "-f",
    "--file",
    "spec_file",
    default=None,
    help="Read the settings from cluster.yaml (flags win).",
)
@click.option("--print-config", is_flag=True, help="Print the settings as cluster.yaml and exit.")
@click.pass_context
def init_command(ctx: click.Context, **kw: Any) -> None:
    """Install the cluster: masters, nodes, lvscare on every node, CNI."""

    def body() -> int:
        # Inside _run: a bad -f file (SpecError) is one sentence and exit 2, not a traceback.
        values = _spec_values(ctx, kw)
        if kw["print_config"]:
            click.echo(spec_mod.to_yaml(values), nl=False)
            return 0
        return _init(values, kw)

    _run(body)


def _credentials(values: dict[str, Any], kw: dict[str, Any]) -> Any:
    """The SSH credentials of the settings (user and key: flags over the file or the state) and
    the secrets given now (password, passphrase: flags, environment or a prompt)."""
    return spec_mod.credentials_from(
        values["user"],
        kw["passwd"],
        values.get("pk"),
        kw["pk_passwd"],
        _prompt(),
        kw["host_key_policy"],
    )


def _init(values: dict[str, Any], kw: dict[str, Any]) -> int:
    credentials = _credentials(values, kw)
    spec = spec_mod.build(values, credentials)
    # Imported late: building the spec must fail fast and cheaply on bad input.
    import sealos.actions.init as init_action
    from sealos.ui import make_ui

    spec.connect_timeout = kw["connect_timeout"]
    ui = make_ui()
    result = init_action.run(spec, ui, dry_run=kw["dry_run"], takeover=kw["force_takeover"])
    return 0 if result.ok else EXIT_FAILED


@cli.command("join")
@click.option("--master", multiple=True, help="Master to add: IP, IP:PORT, range or name.")
@click.option("--node", multiple=True, help="Node to add, same forms as --master.")
@ssh_options
@click.option("--pkg", default=None, help="The offline package (default: the one init used).")
@click.option("--pkg-url", default=None, help="URL the new hosts download the package from.")
@click.option("--pkg-sha256", default=None, help="SHA-256 of --pkg-url's file.")
@click.option("--concurrency", default=None, type=int, help="Hosts at once (default: init's).")
@click.option(
    "--force-takeover",
    is_flag=True,
    help="Install over a Kubernetes install sealos did not start on a host: reset it (its etcd "
    "too) and overwrite its binaries.",
)
@click.option("--dry-run", is_flag=True, help="Connect, validate, print what would be done.")
@click.pass_context
def join_command(ctx: click.Context, **kw: Any) -> None:
    """Add masters and nodes to the cluster recorded by `sealos init`."""
    _run(lambda: _join(ctx, kw))


def _join(ctx: click.Context, kw: dict[str, Any]) -> int:
    from sealos.actions import join as join_action
    from sealos.addresses import parse_hosts
    from sealos.ui import make_ui

    store, state, values, credentials = _recorded(ctx, kw, lock="join")
    port = int(values.get("port") or 22)
    result = join_action.run(
        state,
        values,
        credentials,
        parse_hosts(kw["master"], port, "--master"),
        parse_hosts(kw["node"], port, "--node"),
        make_ui(),
        dry_run=kw["dry_run"],
        store=store,
        connect_timeout=kw["connect_timeout"],
        takeover=kw["force_takeover"],
    )
    return 0 if result.ok else EXIT_FAILED


def _recorded(
    ctx: click.Context, kw: dict[str, Any], lock: str = ""
) -> tuple[Any, Any, dict[str, Any], Any]:
    """The state store (locked for command `lock` when given, before it is read), the recorded
    cluster, its settings overlaid by the flags typed now, and the credentials (asked for if
    needed)."""
    from sealos import members
    from sealos.state import StateStore

    store = StateStore()
    if lock:
        store.lock(_locked_as(lock, kw))
    state = members.load(store)
    values = members.settings_with(state, _typed(ctx, kw))
    credentials = _credentials(values, kw)
    return store, state, values, credentials


@cli.command("status")
@ssh_options
@click.pass_context
def status_command(ctx: click.Context, **kw: Any) -> None:
    """Show every host of the cluster: role, Kubernetes, kubelet, lvscare and the VIP rule."""
    _run(lambda: _status(ctx, kw))


def _status(ctx: click.Context, kw: dict[str, Any]) -> int:
    from sealos.actions.status import Status

    return _on_recorded(ctx, kw, Status)


@cli.command("kubeconfig")
@click.option(
    "-o",
    "--out",
    default="kubeconfig",
    show_default=True,
    help="Where to write the admin kubeconfig (mode 0600).",
)
@click.option("--server", default=None, help="Its server URL (default: https://FIRST-MASTER:6443).")
@click.option("--dry-run", is_flag=True, help="Say what would be written, write nothing.")
@ssh_options
@click.pass_context
def kubeconfig_command(ctx: click.Context, **kw: Any) -> None:
    """Write the cluster's admin kubeconfig on this machine."""
    _run(lambda: _kubeconfig(ctx, kw))


def _kubeconfig(ctx: click.Context, kw: dict[str, Any]) -> int:
    from sealos.actions.kubeconfig import Kubeconfig

    return _on_recorded(
        ctx, kw, lambda recorded: Kubeconfig(recorded, Path(kw["out"]), kw["server"])
    )


def _on_recorded(ctx: click.Context, kw: dict[str, Any], make: Callable[[Any], Any]) -> int:
    """Run the action `make(recorded)` on the recorded cluster."""
    from sealos import runner
    from sealos.ui import make_ui

    store, state, values, credentials = _recorded(ctx, kw)
    action = make(runner.Recorded(state, values, credentials, store, kw["connect_timeout"]))
    result = runner.run(action, make_ui(), dry_run=kw.get("dry_run", False))
    return 0 if result.ok else EXIT_FAILED


@cli.command("clean")
@click.option("--master", multiple=True, help="Master to remove (IP, IP:PORT, range or name).")
@click.option("--node", multiple=True, help="Node to remove, same forms as --master.")
@click.option(
    "--all", "everything", is_flag=True, help="Every host of the cluster (also without hosts)."
)
@click.option(
    "--force",
    is_flag=True,
    help="Unreachable hosts leave the state; a failing kubeadm reset is no stop (it still asks; "
    "-y does not).",
)
@click.option(
    "--not-a-member",
    "not_a_member",
    is_flag=True,
    help="Also clean named hosts that are not members of the recorded cluster, and what sealos "
    "did not install (no marker of sealos there): kubeadm reset and kubeadm's files.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="List per host what would be removed.")
@ssh_options
@click.option("--concurrency", default=None, type=int, help="Hosts at once (default: init's).")
@click.pass_context
def clean_command(ctx: click.Context, **kw: Any) -> None:
    """Remove the cluster from some of its hosts, or all (nothing left behind)."""
    _run(lambda: _clean(ctx, kw))


def _clean(ctx: click.Context, kw: dict[str, Any]) -> int:
    from sealos import members
    from sealos.actions import clean as clean_action
    from sealos.addresses import parse_hosts
    from sealos.state import StateStore
    from sealos.ui import make_ui

    store = StateStore()
    store.lock(_locked_as("clean", kw))  # before reading the state: a second run waits its turn
    state = store.load()
    typed = _typed(ctx, kw)
    values = members.settings_with(state, typed) if state else spec_mod.merge({}, typed)
    port = int(values.get("port") or 22)
    masters = parse_hosts(kw["master"], port, "--master")
    nodes = parse_hosts(kw["node"], port, "--node")
    cleaning = clean_action.plan(
        state, masters, nodes, kw["everything"], str(store.path), not_a_member=kw["not_a_member"]
    )
    if cleaning.unrecorded_note:
        click.echo(cleaning.unrecorded_note, err=True)
    asks = not (kw["yes"] or kw["dry_run"])
    if asks and not _confirm(clean_action.describe_plan(cleaning) + " Continue?"):
        click.echo("aborted; nothing was changed.", err=True)
        return EXIT_FAILED
    credentials = _credentials(values, kw)
    result = clean_action.run(
        state,
        cleaning,
        values,
        credentials,
        make_ui(),
        force=kw["force"],
        not_a_member=kw["not_a_member"],
        dry_run=kw["dry_run"],
        store=store,
        connect_timeout=kw["connect_timeout"],
    )
    return 0 if result.ok else EXIT_FAILED


@cli.group("package")
def package_group() -> None:
    """Build an offline package from upstream releases, or inspect one."""


@package_group.command("build")
@click.option("--version", "version", required=True, help="Kubernetes version, e.g. v1.28.15.")
@click.option("--arch", type=click.Choice(["amd64", "arm64"]), default="amd64", show_default=True)
@click.option(
    "--cni",
    type=click.Choice(["calico", "none"]),
    default="calico",
    show_default=True,
    help="The CNI manifest (and its images) to include.",
)
@click.option(
    "-o",
    "--out",
    default=None,
    help="Package file, or a folder for the default name (kube1.28.15[-ARCH].tar.gz here).",
)
@click.option(
    "--mirror",
    multiple=True,
    help="NAME=URL: fetch from URL instead of host NAME (dl.k8s.io, github.com, "
    "raw.githubusercontent.com); repeatable.",
)
@click.option(
    "--registry-mirror",
    multiple=True,
    help="REGISTRY=HOST[:PORT]: pull REGISTRY's images from HOST[:PORT]; repeatable.",
)
@click.option(
    "--cache", default=None, help="Download cache (default: $SEALOS_HOME/cache/package-build)."
)
@click.option("--insecure-registry", is_flag=True, help="Reach registry mirrors over plain http.")
@click.option(
    "--timeout", default=30.0, show_default=True, type=float, help="Seconds a server may be silent."
)
@click.option(
    "--lvscare-image",
    default=None,
    help="Also carry this image for `--lvscare-mode static-pod` (e.g. "
    f"{spec_mod.DEFAULT_LVSCARE_IMAGE}): the privileged pod never pulls it by tag.",
)
def package_build_command(**kw: Any) -> None:
    """Download, verify and pack Kubernetes, containerd, runc, crictl, CNI and images."""
    _run(lambda: _package_build(kw))


def _package_build(kw: dict[str, Any]) -> int:
    from sealos.packaging import build, images, sources

    opts = build.BuildOptions(
        version=kw["version"],
        arch=kw["arch"],
        cni=kw["cni"],
        out=Path(kw["out"]) if kw["out"] else None,
        mirrors=sources.parse_mirrors(kw["mirror"]),
        registry_mirrors=images.parse_registry_mirrors(kw["registry_mirror"]),
        cache=Path(kw["cache"]) if kw["cache"] else None,
        insecure_registry=kw["insecure_registry"],
        timeout=kw["timeout"],
        extra_images=[images.normalize(kw["lvscare_image"])] if kw["lvscare_image"] else [],
    )
    build.build(opts)
    return 0


@package_group.command("inspect")
@click.argument("file", type=click.Path(path_type=Path))
def package_inspect_command(file: Path) -> None:
    """Show a package's contents and verify every file against its manifest."""
    _run(lambda: _package_inspect(file))


def _package_inspect(file: Path) -> int:
    from sealos.packaging import manifest
    from sealos.ui import make_ui

    found = manifest.inspect(file)
    m = found.manifest
    ui = make_ui()
    rows = [[f.path, str(f.size), f.version, f.source] for f in found.files]
    ui.table(
        f"{file}: Kubernetes {m.get('kubernetes')} linux/{m.get('arch')}, CNI {m.get('cni')}",
        ["file", "bytes", "version", "source"],
        rows,
    )
    ui.close()
    if found.problems:
        for problem in found.problems:
            click.echo(f"problem: {problem}", err=True)
        raise SealosError(
            f"{file}: {len(found.problems)} of {len(found.files)} files do not match the "
            "manifest; rebuild the package or fetch it again."
        )
    click.echo(f"{file}: all {found.checked} files match the manifest's SHA-256 and size.")
    return 0


def _typed(ctx: click.Context, kw: dict[str, Any]) -> dict[str, Any]:
    """The settings the user typed on this command line (cluster.yaml keys)."""
    typed: dict[str, Any] = {}
    for param, key in _FILE_KEY.items():
        if param in kw and ctx.get_parameter_source(param) == ParameterSource.COMMANDLINE:
            typed[key] = kw[param]
    return typed


def _locked_as(command: str, kw: dict[str, Any]) -> str:
    """How a second run names this one: the command and the hosts typed (no secrets)."""
    hosts = [f"--master {h}" for h in kw.get("master") or ()]
    hosts += [f"--node {h}" for h in kw.get("node") or ()]
    if kw.get("everything"):
        hosts.append("--all")
    return " ".join(["sealos", command, *hosts])


def _confirm(question: str) -> bool:
    if sys.stdin.isatty():
        return click.confirm(question, default=False)
    click.echo(f"{question} [y/N]: ", nl=False, err=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _spec_values(ctx: click.Context, kw: dict[str, Any]) -> dict[str, Any]:
    """Merge defaults, -f FILE and the flags the user typed (in that order of precedence)."""
    file_values = spec_mod.load_file(Path(kw["spec_file"])) if kw.get("spec_file") else {}
    typed: dict[str, Any] = {}
    for param, key in _FILE_KEY.items():
        source = ctx.get_parameter_source(param)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            value = kw[param]
            typed[key] = list(value) if isinstance(value, tuple) else value
    return spec_mod.merge(file_values, typed)


def _prompt() -> Optional[Callable[[str], str]]:
    if sys.stdin.isatty():
        return getpass.getpass
    # Not a terminal: read the secret as one line from stdin (`... | sealos init --passwd -`).
    return lambda _label: sys.stdin.readline().rstrip("\n")


def _run(body: Callable[[], int]) -> None:
    try:
        code = body()
    except ValidationFailed as e:
        for problem in e.problems:
            click.echo(f"problem: {problem}", err=True)
        click.echo(f"error: {e}", err=True)
        code = EXIT_FAILED
    except SpecError as e:
        click.echo(f"error: {e}", err=True)
        code = EXIT_USAGE
    except SealosError as e:
        click.echo(f"error: {e}", err=True)
        code = EXIT_FAILED
    except KeyboardInterrupt:
        click.echo("interrupted; run the same command again to finish the job.", err=True)
        code = EXIT_INTERRUPTED
    finally:
        from sealos.state import unlock_all

        unlock_all()  # the process may live on (tests invoke the CLI in-process)
    sys.exit(code)


def main() -> None:
    """Entry point of the `sealos` console script."""
    cli(prog_name="sealos")
