"""Dispatch to the stand-in a binary is (PROGRAM is fixed at build time)."""

from __future__ import annotations

import sys
from typing import Optional

from .embedded import PROGRAM
from .etcdctl_cmd import etcdctl_main
from .kubeadm.dispatch import kubeadm_main
from .kubectl_cmd import kubectl_main
from .kubelet_cmd import kubelet_main


def standin_main(program: Optional[str] = None, argv: Optional[list[str]] = None) -> int:
    """Run kubeadm, kubelet or kubectl with argv (default: this binary and sys.argv)."""
    name = program or PROGRAM
    args = list(sys.argv[1:] if argv is None else argv)
    # Test mode marks its background processes with --sealos-lab-unit=NAME (see hostenv).
    args = [a for a in args if not a.startswith("--sealos-lab-unit=")]
    if name == "kubeadm":
        return kubeadm_main(args)
    if name == "kubelet":
        return kubelet_main(args)
    if name == "kubectl":
        return kubectl_main(args)
    if name == "etcdctl":
        return etcdctl_main(args)
    sys.stderr.write(f"unknown stand-in program {name!r}\n")
    return 2
