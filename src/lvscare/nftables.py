"""A small client for nftables: libnftables through ctypes, or the `nft` program when the library
is missing.

The library keeps the per-tick cost low (no process to spawn: listing a table is ~0.2 ms); both
paths take the same scripts and give the same JSON.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import shutil
import subprocess
from typing import Any, Optional

from lvscare.model import UserError

_OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON from <nftables/libnftables.h>


class NftError(Exception):
    """nft refused a command; the message is nft's own first line."""


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "unknown error")


def _raise_for(message: str) -> None:
    if "Operation not permitted" in message:
        raise UserError("changing nftables rules needs root (CAP_NET_ADMIN): run lvscare as root.")
    raise NftError(_first_line(message))


class _Library:
    """libnftables.so.1 through ctypes: one context for the whole process."""

    def __init__(self, lib: ctypes.CDLL):
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self.lib = lib
        self.ctx = lib.nft_ctx_new(0)
        if not self.ctx:
            raise OSError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)

    def run(self, command: str, as_json: bool) -> str:
        # JSON output also makes the library try JSON input first: set it only to list.
        self.lib.nft_ctx_output_set_flags(self.ctx, _OUTPUT_JSON if as_json else 0)
        rc = self.lib.nft_run_cmd_from_buffer(self.ctx, command.encode())
        out = (self.lib.nft_ctx_get_output_buffer(self.ctx) or b"").decode()
        err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode()
        if rc != 0:
            _raise_for(err or out)
        return out

    def close(self) -> None:
        if self.ctx:
            self.lib.nft_ctx_free(self.ctx)
            self.ctx = None


class _Program:
    """The `nft` program, when libnftables cannot be loaded."""

    def __init__(self, path: str):
        self.path = path

    def run(self, command: str, as_json: bool) -> str:
        argv = [self.path, *(["-j"] if as_json else []), "-f", "-"]
        proc = subprocess.run(argv, input=command, capture_output=True, text=True)
        if proc.returncode != 0:
            _raise_for(proc.stderr or proc.stdout)
        return proc.stdout

    def close(self) -> None:
        pass


class Nft:
    """Run nft scripts and list tables as JSON."""

    def __init__(self, prefer_library: bool = True):
        self._impl: Any = None
        if prefer_library:
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            try:
                self._impl = _Library(ctypes.CDLL(name))
            except OSError:
                self._impl = None
        if self._impl is None:
            path = shutil.which("nft")
            if path is None:
                raise UserError(
                    "nftables is not available on this host (no libnftables.so.1, no nft): "
                    "install the nftables package or use --backend ipvs."
                )
            self._impl = _Program(path)

    @property
    def via(self) -> str:
        """`libnftables` or `nft` (how commands reach the kernel)."""
        return "libnftables" if isinstance(self._impl, _Library) else "nft"

    def run(self, script: str) -> None:
        """Apply a script atomically (one transaction)."""
        self._impl.run(script, as_json=False)

    def list_text(self, what: str) -> str:
        """`nft list WHAT` as text; empty when it does not exist."""
        try:
            return self._impl.run(f"list {what}", as_json=False)
        except NftError:
            return ""

    def list_raw(self, what: str) -> Optional[str]:
        """`nft -j list WHAT` as nft printed it; None when it is missing."""
        try:
            return str(self._impl.run(f"list {what}", as_json=True))
        except NftError as exc:
            if "No such file or directory" in str(exc):
                return None
            raise

    @staticmethod
    def parse(raw: str) -> list[dict]:
        """The objects of a JSON listing, metainfo dropped."""
        items = json.loads(raw).get("nftables", [])
        return [item for item in items if "metainfo" not in item]

    def list_json(self, what: str) -> Optional[list[dict]]:
        """`nft -j list WHAT` as a list of objects (metainfo dropped); None when it is missing."""
        raw = self.list_raw(what)
        return None if raw is None else self.parse(raw)

    def close(self) -> None:
        """Free the library context."""
        self._impl.close()
