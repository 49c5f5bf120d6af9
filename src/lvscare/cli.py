"""Command line: `lvscare care --vs VIP:PORT --rs IP:PORT ... [options]`.

Bad input ends in one sentence on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn, Optional

from lvscare import __version__
from lvscare.model import SCHEMES, Endpoint, HealthPolicy, UserError, VirtualServer, check_families
from lvscare.probe import ProbeSpec, parse_statuses

log = logging.getLogger("lvscare")

# lvscare's nftables tables (nft backend, link mode's masquerade, the IPVS fail-fast guard): a
# change to any of them by someone else is repaired at once.
WATCHED_TABLES = ("lvscare", "lvscare_vip", "lvscare_failfast")

EXIT_USAGE = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence, not usage text plus a message."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"lvscare: {message}; run 'lvscare care --help' for the options.\n")
        sys.exit(EXIT_USAGE)


def parse_duration(text: str, flag: str) -> float:
    """`1s`, `500ms`, `1.5`, `2m` -> seconds (> 0)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"{flag} {text} is not a duration: write e.g. 1s, 500ms or 2m.")
    factor = {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2) or "s"]
    return float(match.group(1)) * factor


MIN_INTERVAL = 0.1  # seconds; less is a busy loop of probes and kernel reads


def _interval(text: str) -> float:
    seconds = parse_duration(text, "--interval")
    if seconds < MIN_INTERVAL:
        raise UserError(f"--interval {text} is too short (a busy loop): give at least 100ms.")
    return seconds


def _positive(text: str, flag: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"{flag} {text} must be a whole number of at least 1.")
    return int(text)


@dataclass(frozen=True)
class CareConfig:
    """Everything `lvscare care` was asked to do, validated."""

    vs: VirtualServer
    real_servers: tuple[Endpoint, ...]
    probe: ProbeSpec
    interval: float
    policy: HealthPolicy
    backend: str
    mode: str
    node_ip: Optional[str]
    run_once: bool
    clean: bool


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also documents the options)."""
    parser = _Parser(
        prog="lvscare", description="A node-local IPVS/nftables load balancer with health checks."
    )
    parser.add_argument("--version", action="version", version=f"lvscare {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    care = sub.add_parser(
        "care",
        help="create the virtual server and keep it healthy",
        description="Create VIP:PORT -> real servers (TCP, round robin, masquerade) and keep the "
        "kernel's rules matching the real servers' health, every interval.",
    )
    care.add_argument("--vs", metavar="VIP:PORT", help="the virtual server, e.g. 10.103.97.2:6443")
    care.add_argument("--rs", metavar="IP:PORT", action="append", default=[], help="a real server")
    care.add_argument(
        "--health-path",
        help="HTTP(S) path to GET (default /readyz, or /healthz where /readyz answers 404)",
    )
    care.add_argument(
        "--health-schem", "--health-scheme", dest="health_scheme", default="https",
        help="https, http or tcp (default https)",
    )  # fmt: skip
    care.add_argument("--health-status", default="200-399", help="healthy HTTP statuses")
    care.add_argument("--health-timeout", default="1s", help="timeout of each probe")
    care.add_argument("--health-ca", metavar="FILE", help="verify HTTPS against this CA")
    care.add_argument(
        "--interval", default="500ms",
        help="time between probes and kernel reads (a dead server's closed connection and "
        "changes to lvscare's nftables rules are acted on at once, between ticks)",
    )  # fmt: skip
    care.add_argument("--fall", default="2", help="failed probes before removal")
    care.add_argument("--rise", default="1", help="successful probes before restoring")
    care.add_argument("--scheduler", default="rr", help="IPVS scheduler (nft: rr only)")
    care.add_argument("--backend", default="auto", help="auto, ipvs or nft")
    care.add_argument("--mode", default="route", help="route (host route) or link (dummy link)")
    care.add_argument("--node-ip", metavar="IP", help="source address for route mode")
    care.add_argument("--run-once", action="store_true", help="one reconcile, then exit")
    care.add_argument(
        "--clean", action="store_true", help="remove everything lvscare made for --vs, then exit"
    )
    care.add_argument("--log-level", default="info", help="debug, info, warning or error")
    return parser


def parse_care(args: argparse.Namespace) -> CareConfig:
    """Validate `care` options into a CareConfig; raise UserError with one sentence."""
    if not args.vs:
        raise UserError("--vs is missing: give the virtual server, e.g. --vs 10.103.97.2:6443.")
    vip = Endpoint.parse(args.vs, "--vs")
    real_servers = tuple(dict.fromkeys(Endpoint.parse(rs, "--rs") for rs in args.rs))
    if not real_servers and not args.clean:
        raise UserError("no --rs given: name at least one real server, e.g. --rs 192.168.0.2:6443.")
    check_families(vip, real_servers)
    for rs in real_servers:
        if rs.host == vip.host:
            raise UserError(
                f"--rs {rs} has the VIP's address {vip.host}: traffic to the VIP would loop back "
                "to itself; give the real servers' own addresses."
            )
    if args.health_scheme not in SCHEMES:
        raise UserError(
            f"--health-schem {args.health_scheme} is not known: use http, https or tcp."
        )
    path = args.health_path
    if path is not None and (not path.startswith("/") or not re.fullmatch(r"[\x21-\x7e]+", path)):
        raise UserError(f"--health-path {path!r} must start with / and contain no spaces.")
    if args.backend not in ("auto", "ipvs", "nft"):
        raise UserError(f"--backend {args.backend} is not known: use auto, ipvs or nft.")
    if args.mode not in ("route", "link"):
        raise UserError(f"--mode {args.mode} is not known: use route or link.")
    if args.backend == "nft" and args.scheduler != "rr":
        raise UserError(
            f"--scheduler {args.scheduler} needs IPVS: the nftables backend does rr only."
        )
    if not re.fullmatch(r"[a-z]{1,15}", args.scheduler):
        raise UserError(f"--scheduler {args.scheduler!r} is not an IPVS scheduler name, e.g. rr.")
    node_ip = None
    if args.node_ip:
        try:
            address = ipaddress.ip_address(args.node_ip)
        except ValueError:
            raise UserError(f"--node-ip {args.node_ip} is not an IP address.") from None
        if address.version != vip.family:
            raise UserError(
                f"--node-ip {address} is IPv{address.version} but --vs {vip} is IPv{vip.family}: "
                "use one address family."
            )
        node_ip = str(address)
    if args.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise UserError(
            f"--log-level {args.log_level} is not known: use debug, info, warning, error."
        )
    timeout = parse_duration(args.health_timeout, "--health-timeout")
    return CareConfig(
        vs=VirtualServer(vip, scheduler=args.scheduler),
        real_servers=real_servers,
        probe=ProbeSpec(
            scheme=args.health_scheme,
            path=path,
            statuses=parse_statuses(args.health_status),
            timeout=timeout,
            ca_file=args.health_ca,
        ),
        interval=_interval(args.interval),
        policy=HealthPolicy(
            fall=_positive(args.fall, "--fall"), rise=_positive(args.rise, "--rise")
        ),
        backend=args.backend,
        mode=args.mode,
        node_ip=node_ip,
        run_once=args.run_once,
        clean=args.clean,
    )


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s.%(msecs)03d lvscare %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )


def has_net_admin() -> bool:
    """True when this process holds CAP_NET_ADMIN (root has it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 12))
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def clean(config: CareConfig) -> None:
    """Remove lvscare's virtual server (from every backend this host has), routes and links."""
    from lvscare import route
    from lvscare.backends import open_backend

    removed = []
    names = ["ipvs", "nft"] if config.backend == "auto" else [config.backend]
    for name in names:
        try:
            backend = open_backend(name)
        except UserError:
            if config.backend != "auto":
                raise
            continue
        try:
            if backend.clean(config.vs):
                removed.append(f"{backend.name} virtual server {config.vs}")
        finally:
            backend.close()
    removed += route.clean(config.vs.endpoint)
    for what in removed:
        log.info("removed %s", what)
    if not removed:
        log.info("nothing to remove for %s", config.vs)


def _ready() -> None:
    """The rules are in place: a `Type=notify` unit's start returns now."""
    from lvscare.sdnotify import notify

    if notify("READY=1"):
        log.info("told systemd: ready (the rules are in place)")


def care(config: CareConfig) -> int:
    """Run the reconcile loop until SIGTERM/SIGINT (or once); returns the exit code."""
    from lvscare import route
    from lvscare.backends import BackendError, open_backend
    from lvscare.netlink import KernelWatch
    from lvscare.probe import Prober
    from lvscare.reconcile import Reconciler, Stopper, run

    prober = Prober(config.probe)
    backend = None
    reach: Optional[route.RouteReach | route.LinkReach] = None
    watch: Optional[KernelWatch] = None
    try:
        stopper = Stopper(prober.reactor)
        stopper.install()
        backend = open_backend(config.backend)
        log.info(
            "caring for %s -> %s with the %s backend, %s mode, every %gs",
            config.vs,
            ", ".join(map(str, config.real_servers)),
            backend.name,
            config.mode,
            config.interval,
        )
        if config.mode == "route":
            reach = route.RouteReach(config.vs.endpoint, config.real_servers[0], config.node_ip)
            reach.route_spec()  # an unreachable first real server is the user's to fix: fail now
        else:
            reach = route.LinkReach(config.vs.endpoint, ipvs_conntrack=backend.name == "ipvs")
        reconciler = Reconciler(config.vs, config.real_servers, backend, config.policy)
        if not config.run_once:
            watch = KernelWatch(config.vs.endpoint.host, WATCHED_TABLES, route.LINK_NAME)
            for what in watch.missing:
                log.warning("cannot subscribe to %s: repairs wait for the next tick", what)
        run(
            reconciler,
            prober,
            config.interval,
            reachability=reach,
            once=config.run_once,
            stopper=stopper,
            on_ready=_ready,
            watch=watch,
        )
        if config.run_once and reconciler.applied is None:
            return EXIT_FAILURE
    except BackendError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    finally:
        prober.close()
        if watch is not None:
            watch.close()
        if reach is not None:
            reach.close()
        if backend is not None:
            backend.close()
        prober.reactor.close()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `lvscare` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "care":
        parser.print_help()
        return EXIT_USAGE
    try:
        config = parse_care(args)
    except UserError as exc:
        sys.stderr.write(f"lvscare: {exc}\n")
        return EXIT_USAGE
    _setup_logging(args.log_level)
    try:
        if not has_net_admin():
            raise UserError(
                "changing the kernel's load-balancing rules needs root (CAP_NET_ADMIN): "
                "run lvscare as root."
            )
        if config.clean:
            clean(config)
            return 0
        return care(config)
    except UserError as exc:
        sys.stderr.write(f"lvscare: {exc}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
