"""The README demo: a lab of five real SSH hosts on this machine, then a real `sealos init` onto
them (3 masters, 2 nodes) with the lab's offline package, then what a user would check: nodes,
the VIP rule on a node, a request through the VIP, and a master failing under the nodes.

    python -m sealos_lab.demo [--version v1.14.1] [--keep]

The lab is removed at the end (also on failure or Ctrl-C) unless --keep is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from sealos_lab.lab import Lab, down, up
from sealos_lab.package import build
from sealos_lab.package.standin.hostenv import APISERVER_UNIT
from sealos_lab.paths import lab_dir

LAB = "demo"
VIP = "10.103.97.2"


def say(text: str) -> None:
    print(f"\n\033[1m### {text}\033[0m" if sys.stdout.isatty() else f"\n### {text}", flush=True)


def show(lab: Lab, host: str, script: str) -> str:
    """Run a shell line on a lab host, print it like a terminal would, return its output."""
    print(f"[{lab.host(host).hostname}]# {script}", flush=True)
    proc = lab.exec(host, ["sh", "-c", script], timeout=60)
    out = (proc.stdout + proc.stderr).rstrip()
    if out:
        print(out, flush=True)
    return proc.stdout


def wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def demo(version: str) -> int:
    say("1. A lab of 5 hosts: systemd-nspawn containers with real systemd and OpenSSH, isolated")
    lab = up(LAB, hosts=5)
    for h in lab.hosts:
        print(f"  {h.name}  {h.hostname:14} {h.ip}")
    masters, nodes = lab.hosts[:3], lab.hosts[3:]
    # The operator's ~/.sealos and the package live in the lab's folder: `down` removes them.
    home = lab.dir / "operator"
    home.mkdir(exist_ok=True)

    say(f"2. The offline package kube{version[1:]}.tar.gz (kubeadm/kubelet/kubectl: lab stand-ins)")
    pkg = build(version, home / f"kube{version[1:]}.tar.gz")
    print(f"  {pkg} ({pkg.stat().st_size // 1024} KiB)")

    say("3. sealos init, run from the operator side exactly as a user would")
    argv = [sys.executable, "-m", "sealos", "init"]
    for m in masters:
        argv += ["--master", m.ip]
    for n in nodes:
        argv += ["--node", n.ip]
    argv += ["--user", "root", "--pkg", str(pkg), "--version", version, "--vip", VIP]
    print(
        "  $ SEALOS_PASSWORD=… sealos " + " ".join(argv[3:]).replace(str(pkg), pkg.name), flush=True
    )
    env = {"PATH": os.environ["PATH"], "SEALOS_HOME": str(home), "SEALOS_PASSWORD": lab.password}
    start = time.monotonic()
    proc = lab.run(argv, env=env, timeout=900)
    print(proc.stdout + proc.stderr, flush=True)
    print(f"  sealos init: exit {proc.returncode} after {time.monotonic() - start:.1f} s")
    if proc.returncode != 0:
        return proc.returncode

    m0, m1, node = masters[0].name, masters[1].name, nodes[0].name
    say("4. What a node shows: the hosts entry, lvscare, its VIP rule, the apiserver via the VIP")
    show(lab, node, "grep apiserver.cluster.local /etc/hosts")
    show(lab, node, "systemctl is-active lvscare.service kubelet.service")
    show(lab, node, "nft list table ip lvscare")
    show(lab, node, "curl -sk https://apiserver.cluster.local:6443/healthz; echo")
    wait_for(lambda: show_quiet(lab, m0).count(" Ready ") == 5, 30)
    show(lab, m0, "kubectl get nodes")

    say(f"5. The first master's apiserver dies ({masters[0].ip}): lvscare drops it on every node")
    show(lab, m0, f"systemctl stop {APISERVER_UNIT}")
    dropped = wait_for(lambda: all(masters[0].ip not in rules(lab, n.name) for n in nodes), 20)
    show(lab, node, "nft list table ip lvscare")
    show(lab, node, "curl -sk https://apiserver.cluster.local:6443/healthz; echo")
    time.sleep(12)  # longer than the stand-in apiserver's Ready window
    show(lab, m1, "kubectl get nodes")

    say("6. It comes back: lvscare restores it")
    show(lab, m0, f"systemctl start {APISERVER_UNIT}")
    back = wait_for(lambda: all(masters[0].ip in rules(lab, n.name) for n in nodes), 30)
    show(lab, node, "nft list table ip lvscare")
    ok = dropped and back
    say("Done: " + ("the cluster survived losing a master" if ok else "lvscare did not react"))
    return 0 if ok else 1


def rules(lab: Lab, host: str) -> str:
    return lab.exec(host, ["nft", "list", "table", "ip", "lvscare"], timeout=30).stdout


def show_quiet(lab: Lab, host: str) -> str:
    return lab.exec(host, ["kubectl", "get", "nodes"], timeout=30).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sealos_lab.demo", description=__doc__)
    parser.add_argument("--version", default="v1.14.1", help="Kubernetes version of the package")
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("demo: the lab needs root (namespaces, systemd-nspawn); run it as root.")
        return 2
    down(LAB)  # a lab left by an earlier, interrupted demo
    try:
        return demo(args.version)
    except KeyboardInterrupt:
        print("\ndemo: interrupted")
        return 130
    finally:
        if args.keep:
            print(
                f"\nThe lab stays up: sealos-lab status --name {LAB}; "
                f"SEALOS_HOME={lab_dir(LAB)}/operator for sealos; sealos-lab down --name {LAB}"
            )
        else:
            down(LAB)


if __name__ == "__main__":
    sys.exit(main())
