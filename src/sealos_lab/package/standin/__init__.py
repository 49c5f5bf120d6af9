"""Stand-ins for kubeadm, kubelet and kubectl, as they run on lab hosts.

The modules here and in the packages `kubeadm/` and `apiserver/` are written to be concatenated by
`sealos_lab.package.builder` into ONE script per binary: they import each other only with
top-level `from .module import name` / `from ..module import name` lines (which the builder
drops), and no two modules define the same top-level name. A new module must be added to the
builder's STANDIN_MODULES (the build fails otherwise); a package's `__init__.py` holds only its
docstring. `embedded.py` is replaced at build time by constants (program name, Kubernetes
version, the schemas).
"""
