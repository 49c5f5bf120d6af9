"""Stand-ins for kubeadm, kubelet and kubectl, as they run on lab hosts.

The modules here are written to be concatenated by `sealos_lab.package.builder` into ONE script per
binary: they import each other only with `from .module import name` lines (which the builder
drops), and no two modules define the same top-level name. `embedded.py` is replaced at build time
by constants (program name, Kubernetes version, the schemas).
"""
