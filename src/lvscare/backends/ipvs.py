"""IPVS backend over generic netlink (pyroute2): a TCP virtual server, masquerade real servers.

Only lvscare's own virtual server (VIP, port, TCP) is read and changed; other services on the host
(kube-proxy's) are left alone. Pitfalls handled here: pyroute2's IPVSDest defaults to direct
routing (we pass fwd_method=0, masquerade), "update" means delete in pyroute2 (we use "set"), and
the real forwarding method of a dumped destination is only in IPVS_DEST_ATTR_FWD_METHOD.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from lvscare.backends.base import Backend, BackendError
from lvscare.model import Change, ChangeKind, Endpoint, Observed, UserError, VirtualServer

MASQUERADE = 0  # IP_VS_CONN_F_MASQ
_FWD_MASK = 0x7
_FWD_NAMES = {0: "masquerade", 1: "local", 2: "tunnel", 3: "direct routing", 4: "bypass"}


def _load_module() -> None:
    """Ask the kernel for IPVS when its netlink family is missing (quietly; it may be built in)."""
    modprobe = shutil.which("modprobe") or "/sbin/modprobe"
    if os.path.exists(modprobe):
        subprocess.run([modprobe, "-q", "ip_vs"], capture_output=True, check=False)


def _open() -> Any:
    # /proc/net/ip_vs exists once the module is loaded; checking it first keeps pyroute2 from
    # half-building a socket (and warning on stderr) on kernels without IPVS.
    if not os.path.exists("/proc/net/ip_vs"):
        return None
    from pyroute2 import IPVS
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        ipvs = IPVS()
        ipvs.service("dump")
        return ipvs
    except NetlinkError as exc:
        if exc.code == errno.EPERM:
            raise UserError(
                "changing IPVS rules needs root (CAP_NET_ADMIN): run lvscare as root."
            ) from None
        return None
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise UserError(
                "changing IPVS rules needs root (CAP_NET_ADMIN): run lvscare as root."
            ) from None
        return None


def available() -> bool:
    """True when the kernel has IPVS (after trying to load the module)."""
    try:
        sock = IpvsBackend()
    except UserError:
        return False
    sock.close()
    return True


@dataclass(frozen=True)
class _Request:
    """One change and everything its handler needs, all of it from the arguments of `apply`."""

    vs: VirtualServer
    service: Any
    change: Change
    desired: Mapping[Endpoint, int]
    observed: Observed

    @property
    def endpoint(self) -> Endpoint:
        assert self.change.endpoint is not None, f"{self.change.kind.value} names no real server"
        return self.change.endpoint


class IpvsBackend(Backend):
    """Keeps one IPVS virtual server and its real servers equal to the desired state."""

    name = "ipvs"

    def __init__(self, ipvs: Any = None) -> None:
        """Open the kernel's IPVS over netlink, or use `ipvs` (a socket-like object, for tests)."""
        if ipvs is None:
            ipvs = _open()
        if ipvs is None:
            _load_module()
            ipvs = _open()
        if ipvs is None:
            raise UserError(
                "this kernel has no IPVS (generic netlink family IPVS missing, modprobe ip_vs "
                "failed): load the ip_vs module or use --backend nft."
            )
        self.ipvs = ipvs
        self._handlers: dict[ChangeKind, Callable[[_Request], None]] = {
            ChangeKind.ADD_VIRTUAL_SERVER: self._add_service,
            ChangeKind.SET_SCHEDULER: self._set_scheduler,
            ChangeKind.REPAIR: self._repair,
            ChangeKind.REMOVE_REAL_SERVER: self._remove,
            ChangeKind.ADD_REAL_SERVER: self._add,
            ChangeKind.SET_WEIGHT: self._set_weight,
        }

    # pyroute2 request objects, built lazily so that importing this module stays cheap.
    @staticmethod
    def _service(vs: VirtualServer, scheduler: Optional[str] = None) -> Any:
        from pyroute2 import IPVSService

        fields: dict[str, Any] = {
            "af": socket.AF_INET6 if vs.endpoint.family == 6 else socket.AF_INET,
            "protocol": socket.IPPROTO_TCP,
            "addr": vs.endpoint.host,
            "port": vs.endpoint.port,
        }
        if vs.endpoint.family == 6:
            fields["netmask"] = 128
        if scheduler is not None:
            fields["sched_name"] = scheduler
        return IPVSService(**fields)

    @staticmethod
    def _dest(ep: Endpoint, weight: int = 1) -> Any:
        from pyroute2 import IPVSDest

        return IPVSDest(addr=ep.host, port=ep.port, weight=weight, fwd_method=MASQUERADE)

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            return func(*args, **kwargs)
        except NetlinkError as exc:
            raise BackendError(f"IPVS refused to {what}: {os.strerror(exc.code)}") from None
        except OSError as exc:
            raise BackendError(f"IPVS refused to {what}: {exc}") from None

    def _find(self, vs: VirtualServer) -> Optional[Any]:
        family = socket.AF_INET6 if vs.endpoint.family == 6 else socket.AF_INET
        for msg in self._call("list services", self.ipvs.service, "dump"):
            svc = msg.get("IPVS_CMD_ATTR_SERVICE")
            if (
                svc is not None
                and svc.get("IPVS_SVC_ATTR_AF") == family
                and svc.get("IPVS_SVC_ATTR_PROTOCOL") == socket.IPPROTO_TCP
                and svc.get("IPVS_SVC_ATTR_ADDR") == vs.endpoint.host
                and svc.get("IPVS_SVC_ATTR_PORT") == vs.endpoint.port
            ):
                return svc
        return None

    def read(self, vs: VirtualServer) -> Observed:
        """Our virtual server's scheduler, real servers, weights and forwarding methods."""
        svc = self._find(vs)
        if svc is None:
            return Observed(exists=False)
        weights: dict[Endpoint, int] = {}
        problems = []
        culprits: dict[str, Endpoint] = {}
        dests = self._call("list real servers", self.ipvs.dest, "dump", service=self._service(vs))
        for msg in dests:
            dest = msg.get("IPVS_CMD_ATTR_DEST")
            if dest is None:
                continue
            ep = Endpoint(
                str(dest.get("IPVS_DEST_ATTR_ADDR")), int(dest.get("IPVS_DEST_ATTR_PORT"))
            )
            weights[ep] = int(dest.get("IPVS_DEST_ATTR_WEIGHT") or 0)
            method = int(dest.get("IPVS_DEST_ATTR_FWD_METHOD") or 0) & _FWD_MASK
            if method != MASQUERADE:
                name = _FWD_NAMES.get(method, str(method))
                problem = f"{ep} forwarded by {name} instead of masquerade"
                problems.append(problem)
                culprits[problem] = ep
        return Observed(
            exists=True,
            weights=weights,
            scheduler=svc.get("IPVS_SVC_ATTR_SCHED_NAME"),
            problems=tuple(problems),
            culprits=culprits,
        )

    def apply(
        self,
        vs: VirtualServer,
        desired: Mapping[Endpoint, int],
        observed: Observed,
        changes: Sequence[Change],
    ) -> None:
        """One netlink request per change, in plan order."""
        service = self._service(vs)
        for change in changes:
            self._handlers[change.kind](_Request(vs, service, change, desired, observed))

    def _add_service(self, req: _Request) -> None:
        self._write_service(req, f"create virtual server {req.vs}", "add")

    def _set_scheduler(self, req: _Request) -> None:
        self._write_service(req, f"set scheduler {req.vs.scheduler} on {req.vs}", "set")

    def _write_service(self, req: _Request, what: str, command: str) -> None:
        service = self._service(req.vs, req.vs.scheduler)
        self._call(what, self.ipvs.service, command, service=service)

    def _repair(self, req: _Request) -> None:
        # The only problem IPVS reports is a real server's forwarding method; one that is no
        # longer desired is removed by its own change instead.
        bad = req.observed.culprits.get(req.change.detail)
        if bad is None or bad not in req.desired:
            return
        self._call(
            f"set masquerade for {bad}",
            self.ipvs.dest,
            "set",
            service=req.service,
            dest=self._dest(bad, req.desired[bad]),
        )

    def _remove(self, req: _Request) -> None:
        ep = req.endpoint
        self._call(f"remove {ep}", self.ipvs.dest, "del", service=req.service, dest=self._dest(ep))

    def _add(self, req: _Request) -> None:
        self._write_dest(req, "add", "add")

    def _set_weight(self, req: _Request) -> None:
        self._write_dest(req, "set the weight of", "set")

    def _write_dest(self, req: _Request, what: str, command: str) -> None:
        ep = req.endpoint
        self._call(
            f"{what} {ep}",
            self.ipvs.dest,
            command,
            service=req.service,
            dest=self._dest(ep, int(req.change.weight or 0)),
        )

    def clean(self, vs: VirtualServer) -> bool:
        """Delete our virtual server (its real servers go with it)."""
        if self._find(vs) is None:
            return False
        self._call(
            f"delete virtual server {vs}", self.ipvs.service, "del", service=self._service(vs)
        )
        return True

    def describe(self, vs: VirtualServer) -> str:
        """ipvsadm -Ln style lines for our virtual server."""
        observed = self.read(vs)
        if not observed.exists:
            return ""
        lines = [f"TCP  {vs.endpoint} {observed.scheduler}"]
        for ep, weight in sorted(observed.weights.items()):
            lines.append(f"  -> {ep:<24} Masq    {weight}")
        return "\n".join(lines)

    def close(self) -> None:
        """Close the netlink socket."""
        self.ipvs.close()
