"""Read what runs on each host, for `sealos status`: the kubelet's version and state, lvscare's
state, and on nodes how many masters the VIP rule balances over (IPVS or lvscare's nftables
table). Read-only; the findings are kept by the phase, apart from the facts."""

from __future__ import annotations

from dataclasses import dataclass

from sealos import lvscare_node
from sealos.context import ClusterHost, Context
from sealos.facts import key_values
from sealos.phases.base import Phase
from sealos.remote_paths import q


@dataclass
class HostStatus:
    """What one host runs."""

    kubernetes: str = ""  # kubelet --version, e.g. v1.20.15
    kubelet: str = ""  # systemd's word: active, inactive, failed, ...
    lvscare: str = ""
    vip_servers: int = -1  # real servers of the VIP's virtual server; -1: no rule


def status_script(vip: str) -> str:
    """The read-only script; prints key=value lines."""
    vs = lvscare_node.endpoint(vip)
    return "\n".join(
        [
            "echo \"kubernetes=$(kubelet --version 2>/dev/null | awk '{print $2}')\"",
            'echo "kubelet=$(systemctl is-active kubelet.service 2>/dev/null)"',
            f'echo "lvscare=$(systemctl is-active {lvscare_node.UNIT_NAME} 2>/dev/null)"',
            # IPVS: real servers with a weight above 0
            f"command -v ipvsadm >/dev/null 2>&1 && ipvsadm -Ln -t {q(vs)} >/dev/null 2>&1 && "
            f'echo "vip_servers=$(ipvsadm -Ln -t {q(vs)} | '
            'awk \'$1 == "->" && $2 ~ /:[0-9]+$/ && $4 > 0\' | wc -l)"',
            # nftables (kernels without IPVS): the distinct real servers of lvscare's DNAT map
            "command -v nft >/dev/null 2>&1 && nft list table ip lvscare >/dev/null 2>&1 && "
            "echo \"vip_servers=$(nft list table ip lvscare | grep -o 'map {[^}]*}' | "
            "grep -oE '[0-9.]+ \\. [0-9]+' | sort -u | wc -l)\"",
            "true",
        ]
    )


def parse(output: str) -> HostStatus:
    """HostStatus from the script's lines (the last vip_servers wins)."""
    s = HostStatus()
    for key, raw in key_values(output):
        value = raw.strip()
        if key in ("kubernetes", "kubelet", "lvscare"):
            setattr(s, key, value)
        elif key == "vip_servers" and value.isdigit():
            s.vip_servers = max(s.vip_servers, int(value))
    return s


class ReadStatus(Phase):
    """Every host that answered."""

    title = "Read what runs on the hosts"
    in_dry_run = True

    def __init__(self) -> None:
        self.found: dict[str, HostStatus] = {}

    def hosts(self, ctx: Context) -> list[ClusterHost]:
        return [n for n in ctx.nodes if n.usable]

    def skip_reason(self, ctx: Context) -> str:
        return "no host answered"

    async def run_host(self, ctx: Context, node: ClusterHost) -> str:
        result = await node.ssh.run(status_script(ctx.spec.vip), timeout=60)
        self.found[node.name] = s = parse(result.stdout)
        return f"kubelet {s.kubelet or 'absent'}"
