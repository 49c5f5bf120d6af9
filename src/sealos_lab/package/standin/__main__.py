"""Development entry: python -m sealos_lab.package.standin kubeadm|kubelet|kubectl ARGS..."""

from __future__ import annotations

import sys

from .main import standin_main

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.stderr.write(
            "usage: python -m sealos_lab.package.standin kubeadm|kubelet|kubectl ARGS\n"
        )
        sys.exit(2)
    sys.exit(standin_main(sys.argv[1], sys.argv[2:]))
