"""The full log of a run: every command, its output and exit status; secrets redacted; 0600."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional, TextIO

from sealos.redaction import Redactor
from sealos.state import make_private_dir


class CommandLog:
    """Appends timestamped, host-tagged lines to one file, all through the redactor."""

    def __init__(self, path: Optional[Path], redact: Redactor) -> None:
        self.path = path
        self.redact = redact
        self._file: Optional[TextIO] = None
        if path is not None:
            make_private_dir(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8", errors="replace")

    def write(self, host: str, kind: str, text: str) -> None:
        """One event: kind is e.g. 'run', 'stdout', 'stderr', 'exit', 'upload', 'phase'."""
        if self._file is None:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        clean = self.redact(text).rstrip("\n")
        lines = clean.splitlines() or [""]
        for line in lines:
            self._file.write(f"{stamp} [{host}] {kind}: {line}\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def new_log_path(home: Path, action: str) -> Path:
    """~/.sealos/logs/<action>-YYYYmmdd-HHMMSS.log (with a counter if that exists already)."""
    base = home / "logs" / f"{action}-{time.strftime('%Y%m%d-%H%M%S')}"
    path = base.with_suffix(".log")
    n = 1
    while path.exists():
        path = Path(f"{base}-{n}.log")
        n += 1
    return path
