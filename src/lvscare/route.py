"""VIP reachability for connections made on the node itself, also with no default route.

- route mode (default): a /32 (/128) route for the VIP via the interface toward the first real
  server, with the node's own address as source; marked with routing protocol 247 so that
  lvscare removes only its own route.
- link mode: the VIP on a dummy interface `lvscare0` (on lo, labelled lo:lvscare, when the kernel
  has no dummy driver), plus a masquerade rule (nft table `lvscare_vip`) so that real servers
  answer the node's address, not the VIP.

Both are checked every tick (cheaply: route mode reads /proc/net/route) and repaired when gone.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Any, Optional

from lvscare.model import Endpoint, UserError
from lvscare.nftables import Nft, NftError

ROUTE_PROTO = 247  # rtnetlink protocol number that marks lvscare's routes
LINK_NAME = "lvscare0"
LO_LABEL = "lo:lvscare"  # marks the VIP on lo when the kernel has no dummy driver
MASQ_TABLE = "lvscare_vip"
_RTN_LOCAL = 2
_SCOPE_LINK = 253


class _OSErrorIPRoute:
    """pyroute2's IPRoute whose netlink errors are OSErrors (the loop logs those and retries)."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute

        self._ipr = IPRoute()

    def __getattr__(self, name: str) -> Any:
        func = getattr(self._ipr, name)
        if not callable(func):
            return func

        def call(*args: Any, **kwargs: Any) -> Any:
            from pyroute2.netlink.exceptions import NetlinkError

            try:
                return func(*args, **kwargs)
            except NetlinkError as exc:
                raise OSError(exc.code, os.strerror(exc.code)) from None

        return call


def _iproute() -> Any:
    return _OSErrorIPRoute()


def _family(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _plen(address: str) -> int:
    return 128 if ipaddress.ip_address(address).version == 6 else 32


def host_route_present(vip: str) -> bool:
    """True when the main table has a host route for `vip` (reads /proc, no netlink)."""
    address = ipaddress.ip_address(vip)
    try:
        if address.version == 4:
            want = f"{int.from_bytes(address.packed, 'little'):08X}"
            with open("/proc/net/route") as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 7 and fields[1] == want and fields[7] == "FFFFFFFF":
                        return True
            return False
        want = address.packed.hex()
        with open("/proc/net/ipv6_route") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 1 and fields[0] == want and fields[1] == "80":
                    return True
    except OSError:
        return False
    return False


class RouteReach:
    """Keeps a host route for the VIP toward the first real server, source = the node's IP.

    Standard-library netlink (lvscare.netlink), not pyroute2: this runs at every start."""

    def __init__(self, vip: Endpoint, first_rs: Endpoint, node_ip: Optional[str] = None):
        self.vip = vip.host
        self.first_rs = first_rs.host
        self.node_ip = node_ip
        self._rtnl: Any = None
        self._added = False

    @property
    def rtnl(self) -> Any:
        """A netlink route socket, opened on first use."""
        if self._rtnl is None:
            from lvscare.netlink import RtNetlink

            self._rtnl = RtNetlink()
        return self._rtnl

    def route_spec(self) -> dict[str, Any]:
        """The route to add, from a route lookup toward the first real server."""
        try:
            found = self.rtnl.route_get(self.first_rs)
        except OSError as exc:
            raise UserError(
                f"no route to the first real server {self.first_rs} ({exc.strerror or exc}): "
                "give this node an address in its network, or use --node-ip."
            ) from None
        src = self.node_ip or found["prefsrc"]
        spec: dict[str, Any] = {
            "dst": f"{self.vip}/{_plen(self.vip)}",
            "oif": found["oif"],
            "proto": ROUTE_PROTO,
        }
        if src:
            spec["prefsrc"] = src
        if found["gateway"] and found["type"] != _RTN_LOCAL:
            spec["gateway"] = found["gateway"]
            spec["scope"] = 0
        else:
            spec["scope"] = _SCOPE_LINK
        return spec

    def describe_spec(self, spec: dict[str, Any]) -> str:
        """`VIP/32 dev IF src IP` for the log."""
        try:
            name = socket.if_indextoname(spec["oif"])
        except (OSError, TypeError):
            name = str(spec["oif"])
        text = f"{spec['dst']} dev {name}"
        if "gateway" in spec:
            text += f" via {spec['gateway']}"
        if "prefsrc" in spec:
            text += f" src {spec['prefsrc']}"
        return text

    def ensure(self) -> list[str]:
        """Add the VIP route when it is missing; the log line says whether it was a repair."""
        if host_route_present(self.vip):
            self._added = True
            return []
        spec = self.route_spec()
        try:
            self.rtnl.route_add(
                self.vip,
                oif=spec["oif"],
                proto=ROUTE_PROTO,
                scope=spec["scope"],
                prefsrc=spec.get("prefsrc"),
                gateway=spec.get("gateway"),
            )
        except OSError as exc:
            raise OSError(
                f"adding route {self.describe_spec(spec)}: {exc.strerror or exc}"
            ) from None
        verb = "repaired route" if self._added else "added route"
        self._added = True
        return [f"{verb} {self.describe_spec(spec)} (VIP reachable from this node)"]

    def close(self) -> None:
        """Close the netlink socket."""
        if self._rtnl is not None:
            self._rtnl.close()


class LinkReach:
    """Keeps the VIP on dummy interface lvscare0 and masquerades connections sourced from it."""

    def __init__(self, vip: Endpoint, ipvs_conntrack: bool = False, nft: Optional[Nft] = None):
        self.vip = vip.host
        self.ipvs_conntrack = ipvs_conntrack
        self._nft = nft
        self._ipr: Any = None
        self._done = False
        self._use_lo = False

    @property
    def ipr(self) -> Any:
        """A netlink route socket, opened on first use."""
        if self._ipr is None:
            self._ipr = _iproute()
        return self._ipr

    @property
    def nft(self) -> Nft:
        """nftables client, opened on first use."""
        if self._nft is None:
            self._nft = Nft()
        return self._nft

    def _masq_script(self) -> str:
        fam = "ip6" if _family(self.vip) == socket.AF_INET6 else "ip"
        return (
            f"table {fam} {MASQ_TABLE} {{}}\n"
            f"delete table {fam} {MASQ_TABLE}\n"
            f"table {fam} {MASQ_TABLE} {{\n"
            '\tcomment "lvscare --mode link: real servers answer the node, not the VIP"\n'
            "\tchain postrouting {\n"
            "\t\ttype nat hook postrouting priority 100; policy accept;\n"
            f'\t\t{fam} saddr {self.vip} oifname != "lo" masquerade\n'
            "\t}\n"
            "}\n"
        )

    def ensure(self) -> list[str]:
        """Create or repair the masquerade table, then the dummy link and its address."""
        fixed = []
        # Masquerade first: a connection from the VIP before it exists would stay un-NATed.
        fam = "ip6" if _family(self.vip) == socket.AF_INET6 else "ip"
        if self.nft.list_json(f"table {fam} {MASQ_TABLE}") is None:
            try:
                self.nft.run(self._masq_script())
            except NftError as exc:
                raise OSError(f"writing nft table {MASQ_TABLE}: {exc}") from None
            fixed.append(f"masquerade table {fam} {MASQ_TABLE}")
        if self.ipvs_conntrack:
            # IPVS connections must pass conntrack, or the masquerade rule never sees them.
            path = "/proc/sys/net/ipv4/vs/conntrack"
            if os.path.exists(path):
                with open(path) as f:
                    on = f.read().strip() == "1"
                if not on:
                    with open(path, "w") as f:
                        f.write("1\n")
                    fixed.append("sysctl net.ipv4.vs.conntrack=1")
        index, name, label = self._link(fixed)
        addresses = [a.get_attr("IFA_ADDRESS") for a in self.ipr.get_addr(index=index)]
        if self.vip not in addresses:
            extra = {"label": label} if label and _family(self.vip) == socket.AF_INET else {}
            self.ipr.addr("add", index=index, address=self.vip, prefixlen=_plen(self.vip), **extra)
            fixed.append(f"address {self.vip}/{_plen(self.vip)} on {name}")
        if not fixed:
            return []
        verb = "repaired" if self._done else "added"
        self._done = True
        return [f"{verb} {', '.join(fixed)} (VIP reachable from this node)"]

    def _link(self, fixed: list[str]) -> tuple[int, str, Optional[str]]:
        """The interface that holds the VIP: dummy lvscare0, or lo (label lo:lvscare) on kernels
        without the dummy driver. Returns (index, name for the log, address label)."""
        if not self._use_lo:
            indexes = self.ipr.link_lookup(ifname=LINK_NAME)
            if not indexes:
                try:
                    self.ipr.link("add", ifname=LINK_NAME, kind="dummy")
                except OSError as exc:
                    if exc.errno != errno.EOPNOTSUPP:
                        raise
                    self._use_lo = True
                else:
                    indexes = self.ipr.link_lookup(ifname=LINK_NAME)
                    fixed.append(f"link {LINK_NAME}")
        if self._use_lo:
            return self.ipr.link_lookup(ifname="lo")[0], "lo", LO_LABEL
        index = indexes[0]
        if not self.ipr.get_links(index)[0]["flags"] & 1:  # IFF_UP
            self.ipr.link("set", index=index, state="up")
            fixed.append(f"link {LINK_NAME} up")
        return index, LINK_NAME, None

    def close(self) -> None:
        """Close sockets."""
        if self._ipr is not None:
            self._ipr.close()


def clean(vip: Endpoint, nft: Optional[Nft] = None) -> list[str]:
    """Remove every route, link and table lvscare made for `vip`; returns what it removed."""
    removed = []
    ipr = _iproute()
    try:
        family = _family(vip.host)
        for route in ipr.get_routes(family=family, proto=ROUTE_PROTO):
            dst = route.get_attr("RTA_DST")
            if dst == vip.host and route["dst_len"] == _plen(vip.host):
                ipr.route(
                    "del",
                    dst=f"{dst}/{route['dst_len']}",
                    family=family,
                    proto=ROUTE_PROTO,
                    table=route.get_attr("RTA_TABLE") or 254,
                    scope=route["scope"],
                    oif=route.get_attr("RTA_OIF"),
                )
                removed.append(f"route {dst}/{route['dst_len']}")
        indexes = ipr.link_lookup(ifname=LINK_NAME)
        if indexes:
            ipr.link("del", index=indexes[0])
            removed.append(f"link {LINK_NAME}")
        for addr in ipr.get_addr(family=family, label=LO_LABEL):
            if addr.get_attr("IFA_ADDRESS") == vip.host:
                ipr.addr("del", index=addr["index"], address=vip.host, prefixlen=addr["prefixlen"])
                removed.append(f"address {vip.host} on lo")
    finally:
        ipr.close()
    fam = "ip6" if vip.family == 6 else "ip"
    try:
        nft = nft or Nft()
        if nft.list_json(f"table {fam} {MASQ_TABLE}") is not None:
            nft.run(f"delete table {fam} {MASQ_TABLE}\n")
            removed.append(f"table {fam} {MASQ_TABLE}")
    except (UserError, NftError):
        pass
    return removed
