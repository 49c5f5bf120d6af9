"""Health probes: HTTP, HTTPS or TCP checks of all real servers in parallel, each with a timeout.

HTTP is a hand-written minimal HTTP/1.1 GET over asyncio streams: only the status line matters.
HTTPS does not verify the server certificate unless a CA file is given (apiservers use their own
CA, which a node may not have yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from lvscare.model import Endpoint, ProbeResult, UserError

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timed out",
}


@dataclass(frozen=True)
class ProbeSpec:
    """How to check a real server: scheme, path, healthy statuses, timeout, optional CA file."""

    scheme: str = "http"
    path: str = "/healthz"
    statuses: tuple[tuple[int, int], ...] = ((200, 399),)
    timeout: float = 1.0
    ca_file: Optional[str] = None

    def healthy_status(self, status: int) -> bool:
        """True when `status` falls in one of the healthy ranges."""
        return any(low <= status <= high for low, high in self.statuses)


def parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    """Parse `200-399` or `200,204,300-302` into inclusive ranges."""
    ranges = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise UserError(
                f"--health-status {text} is not a status list: "
                "write ranges like 200-399 or 200,204."
            )
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if not 100 <= first <= last <= 599:
            raise UserError(
                f"--health-status {text}: each range must lie within 100-599, low before high."
            )
        ranges.append((first, last))
    return tuple(ranges)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[exc.errno]
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, (asyncio.IncompleteReadError, ConnectionError)):
        return "connection closed before a response"
    return str(exc) or type(exc).__name__


class Prober:
    """Checks real servers according to one ProbeSpec; reuses one TLS context for all probes."""

    def __init__(self, spec: ProbeSpec):
        self.spec = spec
        self._tls: Optional[ssl.SSLContext] = None
        if spec.scheme == "https":
            self._tls = self._tls_context(spec.ca_file)

    @staticmethod
    def _tls_context(ca_file: Optional[str]) -> ssl.SSLContext:
        if ca_file is None:
            # Apiservers present certificates of a cluster CA the node may not have: no checks.
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UserError(
                f"--health-ca {ca_file} cannot be read as a CA certificate ({exc}): "
                "give a PEM file with the CA that signed the real servers' certificates."
            ) from None

    async def probe(self, endpoint: Endpoint) -> ProbeResult:
        """Check one real server within the spec's timeout."""
        try:
            return await asyncio.wait_for(self._check(endpoint), self.spec.timeout)
        except asyncio.TimeoutError:
            return ProbeResult(False, f"timed out after {self.spec.timeout:g}s")
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
            return ProbeResult(False, _describe(exc))

    async def probe_all(self, endpoints: Iterable[Endpoint]) -> dict[Endpoint, ProbeResult]:
        """Check all real servers at once; each has its own timeout."""
        endpoints = list(endpoints)
        results = await asyncio.gather(*(self.probe(ep) for ep in endpoints))
        return dict(zip(endpoints, results))

    async def _check(self, endpoint: Endpoint) -> ProbeResult:
        tls = self._tls
        reader, writer = await asyncio.open_connection(
            endpoint.host,
            endpoint.port,
            ssl=tls,
            server_hostname=endpoint.host if tls is not None else None,
        )
        try:
            if self.spec.scheme == "tcp":
                return ProbeResult(True, "connected")
            host = f"[{endpoint.host}]" if endpoint.family == 6 else endpoint.host
            request = (
                f"GET {self.spec.path} HTTP/1.1\r\n"
                f"Host: {host}:{endpoint.port}\r\n"
                "User-Agent: lvscare\r\n"
                "Accept: */*\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(request.encode("ascii"))
            line = await reader.readline()
            return self._judge(line)
        finally:
            writer.close()
            # A TLS close may wait for the peer's close_notify; the probe's answer is known.
            if tls is None:
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    def _judge(self, line: bytes) -> ProbeResult:
        if not line:
            return ProbeResult(False, "connection closed before a response")
        parts = line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return ProbeResult(False, f"not an HTTP response ({line[:40]!r})")
        status = int(parts[1])
        if self.spec.healthy_status(status):
            return ProbeResult(True, f"HTTP {status}")
        return ProbeResult(False, f"HTTP {status}")
