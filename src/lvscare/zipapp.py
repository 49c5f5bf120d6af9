"""Build lvscare as ONE self-contained file: a zipapp holding lvscare and pyroute2.

    python3 lvscare.pyz care --vs ... --rs ...     (or run it directly: it has a shebang)

The installer copies this file to nodes as /usr/local/bin/lvscare; it needs only the node's
python3 (>= 3.9), no pip and no network.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipapp
from pathlib import Path

# Lab-only or build-only modules stay out of the node's copy.
_LEAVE_OUT = {"demo.py", "zipapp.py"}

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
        (root / "__main__.py").write_text(_MAIN)
        partial = out.with_name(out.name + ".part")
        zipapp.create_archive(root, partial, interpreter="/usr/bin/env python3", compressed=True)
        os.chmod(partial, 0o755)  # noqa: S103 (an executable for root to run)
        os.replace(partial, out)
    return out


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/lvscare.pyz")
    print(build(target))
