"""Build lvscare as ONE self-contained file: a zipapp holding lvscare and pyroute2.

    python3 lvscare.pyz care --vs ... --rs ...     (or run it directly: it has a shebang)

The installer copies this file to nodes as /usr/local/bin/lvscare; it needs only the node's
python3 (>= 3.9), no pip and no network.
"""

from __future__ import annotations

import ast
import os
import py_compile
import shutil
import tempfile
import zipapp
from pathlib import Path

# Build-only modules stay out of the node's copy.
_LEAVE_OUT = {"zipapp.py"}

_MAIN = '''"""lvscare zipapp entry point."""
import sys

from lvscare.cli import main

sys.exit(main())
'''


def _copy_package(src: Path, dest: Path, leave_out: frozenset[str] = frozenset()) -> None:
    shutil.copytree(
        src,
        dest,
        ignore=lambda _dir, names: [
            n for n in names if n == "__pycache__" or n.endswith((".pyc", ".so")) or n in leave_out
        ],
    )


def _pyroute2_licenses(pyroute2_dir: Path, dest: Path) -> None:
    """Ship pyroute2's license texts with its code."""
    for dist in pyroute2_dir.parent.glob("pyroute2-*.dist-info"):
        for path in dist.rglob("*"):
            if path.is_file() and path.name.upper().startswith(("LICENSE", "COPYING", "README")):
                shutil.copy2(path, dest / f"{path.name}.pyroute2")


_LAZY_INIT = '''"""pyroute2, slimmed by lvscare's zipapp build: public names are imported on first
use (PEP 562) instead of all at once, which keeps lvscare's start cheap on slow nodes."""
import importlib

try:
    from pyroute2.config.version import __version__
except ImportError:
    __version__ = "unknown"
from pyroute2.config import log

_LAZY = %r
__all__ = sorted(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pyroute2' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
'''


def _slim_pyroute2_init(init: Path) -> None:
    """Rewrite pyroute2/__init__.py, which imports ~400 modules eagerly, into a lazy one with the
    same public names (taken from its own `from pyroute2.x import ...` lines)."""
    tree = ast.parse(init.read_text())
    lazy: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyroute2."):
            for alias in node.names:
                lazy[alias.asname or alias.name] = str(node.module)
    lazy.pop("log", None)
    if "IPRoute" not in lazy or "IPVS" not in lazy:
        return  # an unexpected layout: keep the original rather than guess
    init.write_text(_LAZY_INIT % dict(sorted(lazy.items())))


def _compile(root: Path) -> None:
    """Add `module.pyc` beside each `module.py`: zipimport cannot cache bytecode itself, and
    compiling pyroute2 at every start costs seconds on a slow node. Unchecked-hash pycs skip the
    mtime check; another Python version ignores them (magic mismatch) and reads the source."""
    for path in sorted(root.rglob("*.py")):
        py_compile.compile(
            str(path),
            cfile=str(path.with_suffix(".pyc")),
            dfile=str(path.relative_to(root)),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )


def build(out: Path) -> Path:
    """Write the zipapp to `out` (mode 0755, `#!/usr/bin/env python3`) and return its path."""
    import pyroute2

    import lvscare

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lvscare_dir = Path(lvscare.__file__).resolve().parent
    pyroute2_dir = Path(pyroute2.__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="lvscare-zipapp-") as tmp:
        root = Path(tmp) / "app"
        root.mkdir()
        _copy_package(lvscare_dir, root / "lvscare", frozenset(_LEAVE_OUT))
        _copy_package(pyroute2_dir, root / "pyroute2")
        _pyroute2_licenses(pyroute2_dir, root)
        _slim_pyroute2_init(root / "pyroute2" / "__init__.py")
        (root / "__main__.py").write_text(_MAIN)
        _compile(root)
        partial = out.with_name(out.name + ".part")
        zipapp.create_archive(root, partial, interpreter="/usr/bin/env python3", compressed=True)
        os.chmod(partial, 0o755)  # noqa: S103 (an executable for root to run)
        os.replace(partial, out)
    return out


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/lvscare.pyz")
    print(build(target))
