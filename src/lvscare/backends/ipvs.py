"""IPVS backend over generic netlink (lvscare.ipvsnl, standard library): a TCP virtual server,
masquerade real servers.

Only lvscare's own virtual server (VIP, port, TCP) is read and changed; other services on the host
(kube-proxy's) are left alone. The real forwarding method of a dumped destination is in
IPVS_DEST_ATTR_FWD_METHOD; lvscare always writes masquerade (fwd_method=0).

Fail fast when no real server is usable: IPVS then drops a new connection's SYN (it sends an ICMP
port unreachable, which a client on this node never sees when the VIP route goes via lo: it waits
for its timeout). While no real server has weight > 0, lvscare keeps a reject rule in its own
nftables table `lvscare_failfast`, in a filter output chain that runs before IPVS (priority
-300): a connection to the VIP is refused at once, and a client tries elsewhere. The table goes
as soon as a real server is usable again (after the real server is in place).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from lvscare.backends.base import Backend, BackendError
from lvscare.model import Change, ChangeKind, Endpoint, Observed, UserError, VirtualServer

log = logging.getLogger("lvscare")

MASQUERADE = 0  # IP_VS_CONN_F_MASQ
FAILFAST_TABLE = "lvscare_failfast"
_NO_GUARD = "no usable real server, and no reject rule: connections to the VIP would hang"
_STALE_GUARD = f"table {FAILFAST_TABLE} rejects connections while a real server is usable"
_FWD_MASK = 0x7
_FWD_NAMES = {0: "masquerade", 1: "local", 2: "tunnel", 3: "direct routing", 4: "bypass"}


def _load_module() -> None:
    """Ask the kernel for IPVS when its netlink family is missing (quietly; it may be built in)."""
    modprobe = shutil.which("modprobe") or "/sbin/modprobe"
    if os.path.exists(modprobe):
        subprocess.run([modprobe, "-q", "ip_vs"], capture_output=True, check=False)


def _open() -> Any:
    # /proc/net/ip_vs exists once the module is loaded; checking it first avoids a netlink
    # family lookup on kernels without IPVS.
    if not os.path.exists("/proc/net/ip_vs"):
        return None
    from lvscare.ipvsnl import IPVS

    try:
        ipvs = IPVS()
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise UserError(
                "changing IPVS rules needs root (CAP_NET_ADMIN): run lvscare as root."
            ) from None
        return None
    try:
        ipvs.service("dump")
        return ipvs
    except OSError as exc:
        ipvs.close()
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

    def __init__(self, ipvs: Any = None, nft: Any = None) -> None:
        """Open the kernel's IPVS over netlink, or use `ipvs` (a socket-like object, for tests;
        then the fail-fast table is kept only through `nft`, an Nft-like object, if given)."""
        injected = ipvs is not None
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
        self._nft: Any = nft
        self._nft_missing = injected and nft is None
        # Whether lvscare's reject table exists, as last seen or written; None: not looked yet.
        self._guarded: Optional[bool] = None
        self._handlers: dict[ChangeKind, Callable[[_Request], None]] = {
            ChangeKind.ADD_VIRTUAL_SERVER: self._add_service,
            ChangeKind.SET_SCHEDULER: self._set_scheduler,
            ChangeKind.REPAIR: self._repair,
            ChangeKind.REMOVE_REAL_SERVER: self._remove,
            ChangeKind.ADD_REAL_SERVER: self._add,
            ChangeKind.SET_WEIGHT: self._set_weight,
        }

    @staticmethod
    def _service(vs: VirtualServer, scheduler: Optional[str] = None) -> Any:
        from lvscare.ipvsnl import IPVSService

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
        from lvscare.ipvsnl import IPVSDest

        return IPVSDest(addr=ep.host, port=ep.port, weight=weight, fwd_method=MASQUERADE)

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise BackendError(f"IPVS refused to {what}: {reason}") from None

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

    # The fail-fast guard: lvscare's nftables table that refuses connections to the VIP.
    def _nft_client(self) -> Any:
        if self._nft is None and not self._nft_missing:
            from lvscare.nftables import Nft

            try:
                self._nft = Nft()
            except UserError:
                self._nft_missing = True
                log.warning(
                    "nftables is not available: with every real server down, connections to "
                    "the VIP wait for their timeout instead of being refused (install nftables)"
                )
        return self._nft

    @staticmethod
    def _family(vs: VirtualServer) -> str:
        return "ip6" if vs.endpoint.family == 6 else "ip"

    def _guard_present(self, vs: VirtualServer) -> Optional[bool]:
        nft = self._nft_client()
        if nft is None:
            return None
        from lvscare.nftables import NftError

        try:
            self._guarded = nft.list_raw(f"table {self._family(vs)} {FAILFAST_TABLE}") is not None
        except NftError as exc:
            raise BackendError(f"cannot list nftables table {FAILFAST_TABLE}: {exc}") from None
        return self._guarded

    def _set_guard(self, vs: VirtualServer, on: bool) -> None:
        nft = self._nft_client()
        if nft is None or self._guarded is on:
            return
        from lvscare.nftables import NftError

        fam = self._family(vs)
        script = f"table {fam} {FAILFAST_TABLE} {{}}\ndelete table {fam} {FAILFAST_TABLE}\n"
        if on:
            match = f"{fam} daddr {vs.endpoint.host} tcp dport {vs.endpoint.port}"
            script += (
                f"table {fam} {FAILFAST_TABLE} {{\n"
                '\tcomment "lvscare: no usable real server for the IPVS virtual server"\n'
                "\tchain output {\n"
                "\t\ttype filter hook output priority -300; policy accept;\n"
                f'\t\t{match} reject with tcp reset comment "lvscare {vs}: fail fast"\n'
                "\t}\n"
                "}\n"
            )
        try:
            nft.run(script)
        except NftError as exc:
            raise BackendError(f"nftables refused lvscare's fail-fast table: {exc}") from None
        self._guarded = on

    def read(self, vs: VirtualServer) -> Observed:
        """Our virtual server's scheduler, real servers, weights and forwarding methods (and
        whether the fail-fast reject rule is there exactly when no real server is usable)."""
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
        usable = any(weight > 0 for weight in weights.values())
        # Listing the table costs a little: only when it matters, or once after start.
        if not usable or self._guarded is not False:
            guarded = self._guard_present(vs)
            if guarded is not None and guarded == usable:
                problems.append(_STALE_GUARD if usable else _NO_GUARD)
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
        """One netlink request per change, in plan order; the fail-fast rule goes in before the
        last usable real server leaves, and out after the first one is back."""
        service = self._service(vs)
        usable = any(weight > 0 for weight in desired.values())
        if not usable:
            self._set_guard(vs, True)
        for change in changes:
            self._handlers[change.kind](_Request(vs, service, change, desired, observed))
        if usable:
            self._set_guard(vs, False)

    def _add_service(self, req: _Request) -> None:
        self._write_service(req, f"create virtual server {req.vs}", "add")

    def _set_scheduler(self, req: _Request) -> None:
        self._write_service(req, f"set scheduler {req.vs.scheduler} on {req.vs}", "set")

    def _write_service(self, req: _Request, what: str, command: str) -> None:
        service = self._service(req.vs, req.vs.scheduler)
        self._call(what, self.ipvs.service, command, service=service)

    def _repair(self, req: _Request) -> None:
        # The fail-fast rule is set by apply() itself. The other problem IPVS reports is a real
        # server's forwarding method; one that is no longer desired is removed by its own change.
        if req.change.detail in (_NO_GUARD, _STALE_GUARD):
            self._guarded = None  # whatever was seen: write it again
            return
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
        """Delete our virtual server (its real servers go with it) and the fail-fast table."""
        guarded = self._guard_present(vs)
        if guarded:
            self._guarded = None
            self._set_guard(vs, False)
        if self._find(vs) is None:
            return bool(guarded)
        self._call(
            f"delete virtual server {vs}", self.ipvs.service, "del", service=self._service(vs)
        )
        return True

    def pinned_clients(self, vs: VirtualServer, rs: Endpoint) -> list[Endpoint]:
        """Clients of IPVS's connections VIP -> `rs` (they outlive the real server's removal)."""
        from lvscare.flows import ipvs_clients

        return ipvs_clients(vs.endpoint, rs)

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
        """Close the netlink socket (and the nftables context)."""
        self.ipvs.close()
        if self._nft is not None:
            self._nft.close()
