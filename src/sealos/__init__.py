"""sealos: installs a highly available Kubernetes cluster over SSH, with lvscare on every node."""

__version__ = "0.1.0"
