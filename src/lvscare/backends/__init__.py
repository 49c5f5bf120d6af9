"""Backends that make the kernel hold lvscare's virtual server: IPVS, nftables, in-memory."""

from __future__ import annotations

from lvscare.backends.base import Backend, BackendError
from lvscare.model import UserError

__all__ = ["BACKENDS", "Backend", "BackendError", "open_backend"]

BACKENDS = ("auto", "ipvs", "nft")


def open_backend(name: str) -> Backend:
    """Open the named backend; `auto` is IPVS when the kernel has it, else nftables."""
    if name not in BACKENDS:
        raise UserError(f"--backend {name} is not known: use auto, ipvs or nft.")
    if name in ("auto", "ipvs"):
        from lvscare.backends.ipvs import IpvsBackend

        try:
            return IpvsBackend()
        except UserError:
            if name == "ipvs":
                raise
    from lvscare.backends.nft import NftBackend

    return NftBackend()
