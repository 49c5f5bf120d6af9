"""A scan of a lab host for what `sealos init` puts there, for the clean tests.

The scan does not carry a list of paths: it takes an inventory of the host (files under the
folders a package, kubeadm or sealos write to, systemd units, listening sockets, nftables tables,
routes marked by lvscare, interfaces and addresses, processes, /etc/hosts lines) before init and
compares it with one taken later. What init adds is its footprint; after `clean` the inventory
must equal the one taken before init, so anything new that init starts leaving behind shows up.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealos_lab.lab import Lab

# Folders where Kubernetes, its package and sealos put files (the whole system, less the
# kernel's and systemd's runtime trees, whose content changes on its own).
ROOTS = ("/etc", "/usr", "/opt", "/root", "/var/lib", "/var/log", "/srv", "/home", "/tmp")

INVENTORY = f"""
# systemd-private-* are services' private /tmp folders: new random names after every boot.
for root in {" ".join(ROOTS)}; do
    find "$root" -xdev -name 'systemd-private-*' -prune -o -printf 'file:%p\\n' 2>/dev/null
done
systemctl list-unit-files --no-legend --no-pager 2>/dev/null | awk '{{print "unitfile:" $1}}'
# A unit systemd once ran stays in its memory as "not-found inactive" (no file, no process)
# until it garbage-collects it: such a unit is gone, everything else counts.
systemctl list-units --all --no-legend --no-pager --plain 2>/dev/null |
    awk '!($2 == "not-found" && $3 == "inactive") {{print "unit:" $1 " " $2 " " $3}}'
# containerd's CRI stream server listens on a random loopback port, a new one at each start
# (a host that was stopped and started again): named by its owner, not its port
ss -Hltnp 2>/dev/null | awk '{{a = $4; if ($0 ~ /"containerd"/ && a ~ /^127[.]0[.]0[.]1:/)
    a = "127.0.0.1:(containerd stream port)"; print "listen:" a}}'
nft list tables 2>/dev/null | sed 's/^/nft:/'
# chains by name (kube-proxy's KUBE-* and calico's cali-* chains live in shared tables)
nft list ruleset 2>/dev/null |
    awk '/^table /{{t = $2 " " $3}} /^\tchain /{{print "nftchain:" t " " $2}}'
ipvsadm -Ln 2>/dev/null | awk '$1 == "TCP" || $1 == "UDP" {{print "ipvs:" $1 " " $2}}'
ip -4 -o route show proto 247 2>/dev/null | sed 's/^/route:/'
ip -6 -o route show proto 247 2>/dev/null | sed 's/^/route:/'
ip -o link show 2>/dev/null | awk -F': ' '{{print "link:" $2}}'
ip -o addr show 2>/dev/null | awk '{{print "addr:" $2 " " $4 " " $NF}}'
# ps in a variable first: a pipeline would list its own sed as a process; kernel threads
# ([kworker/0:2-events], on VM hosts) and workers such as (udev-worker) come and go on their own
procs=$(ps -eo args= 2>/dev/null)
printf '%s\n' "$procs" | grep -v '^[[(]' | sed 's/^/proc:/'
sed 's/^/hosts:/' /etc/hosts
# the images in a container runtime (a host's own containerd keeps running after clean)
if command -v ctr >/dev/null 2>&1; then
    ctr -n k8s.io images ls -q 2>/dev/null | sed 's/^/image:/'
fi
true
"""


def inventory(lab: Lab, host: str) -> set[str]:
    """Everything the scan sees on `host`, one `kind:detail` string each."""
    proc = lab.exec(host, ["sh", "-c", INVENTORY], timeout=120)
    assert proc.returncode == 0, (
        f"{host}: inventory failed (exit {proc.returncode}): {proc.stderr} {proc.stdout[-500:]}"
    )
    items = set(proc.stdout.splitlines())
    assert any(i.startswith("file:/etc/") for i in items), f"{host}: empty inventory"
    return items


def _runtime_store(before: set[str], now: set[str]) -> set[str]:
    """The files now in a containerd store that was there before (the host's own runtime): its
    internals (content dirs, metadata.db) are the runtime's; what sealos put in it shows as
    image: items."""
    if "file:/var/lib/containerd" not in before:
        return set()
    return {i for i in now if i.startswith("file:/var/lib/containerd/")}


@dataclass
class Scan:
    """A host's inventory from before init, to compare later ones with."""

    lab: Lab
    host: str
    before: set[str]

    @classmethod
    def take(cls, lab: Lab, host: str) -> Scan:
        """Record the host as it is now (before init), once it has finished booting (units
        still starting would change the inventory on their own)."""
        lab.exec(host, ["systemctl", "is-system-running", "--wait"], timeout=300)
        return cls(lab, host, inventory(lab, host))

    def footprint(self) -> set[str]:
        """What is on the host now that was not before (after init: what init created)."""
        return inventory(self.lab, self.host) - self.before

    def leftovers(self) -> list[str]:
        """What init (or clean) left: added since the first inventory, or changed in
        /etc/hosts. Empty when the host is as it was before init."""
        now = inventory(self.lab, self.host)
        added = sorted(now - self.before - _runtime_store(self.before, now))
        lost_hosts_lines = sorted(i for i in self.before - now if i.startswith("hosts:"))
        return added + [f"missing {i}" for i in lost_hosts_lines]

    def changes(self) -> list[str]:
        """Everything added (+) or gone (-) since the first inventory: empty when nothing
        changed at all (for runs that must not touch the host)."""
        now = inventory(self.lab, self.host)
        return [f"+{i}" for i in sorted(now - self.before)] + [
            f"-{i}" for i in sorted(self.before - now)
        ]
