"""The lab's offline package: kube/ laid out like sealos' kube1.14.1.tar.gz, with stand-ins.

Public API (the lab CLI wires `sealos-lab package` to `main`):
    build(version, out=None) -> Path     write kube<version>.tar.gz
    main(argv) -> int                    `sealos-lab package --version vX.Y.Z [--out FILE]`
"""

from __future__ import annotations

from .builder import BuildError, build, main, package_files, standin_script

__all__ = ["BuildError", "build", "main", "package_files", "standin_script"]
