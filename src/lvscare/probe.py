"""Health probes: HTTP, HTTPS or TCP checks of all real servers in parallel, each with a timeout.

HTTP is a hand-written minimal HTTP/1.1 GET over asyncio streams: only the status line matters.
HTTPS does not verify the server certificate unless a CA file is given (apiservers use their own
CA, which a node may not have yet).
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
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
        self._requests: dict[Endpoint, bytes] = {}
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
        return (await self.probe_all([endpoint]))[endpoint]

    async def probe_all(self, endpoints: Iterable[Endpoint]) -> dict[Endpoint, ProbeResult]:
        """Check all real servers at once; each probe ends at its own timeout."""
        endpoints = list(dict.fromkeys(endpoints))
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._guarded(ep)) for ep in endpoints]
        # One wait for all: the probes start together, so each still gets the full timeout.
        _, pending = await asyncio.wait(tasks, timeout=self.spec.timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        late = ProbeResult(False, f"timed out after {self.spec.timeout:g}s")
        return {
            ep: late if task in pending else task.result() for ep, task in zip(endpoints, tasks)
        }

    async def _guarded(self, endpoint: Endpoint) -> ProbeResult:
        try:
            if self._tls is None:
                return await self._check_plain(endpoint)
            return await self._check_tls(endpoint)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
            return ProbeResult(False, _describe(exc))

    def _request(self, endpoint: Endpoint) -> bytes:
        request = self._requests.get(endpoint)
        if request is None:
            host = f"[{endpoint.host}]" if endpoint.family == 6 else endpoint.host
            request = (
                f"GET {self.spec.path} HTTP/1.1\r\n"
                f"Host: {host}:{endpoint.port}\r\n"
                "User-Agent: lvscare\r\n"
                "Accept: */*\r\n"
                "Connection: close\r\n\r\n"
            ).encode("ascii")
            self._requests[endpoint] = request
        return request

    async def _check_plain(self, endpoint: Endpoint) -> ProbeResult:
        # Bare non-blocking sockets: a probe every second for months, so the cheapest path.
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if endpoint.family == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, (endpoint.host, endpoint.port))
            if self.spec.scheme == "tcp":
                return ProbeResult(True, "connected")
            await loop.sock_sendall(sock, self._request(endpoint))
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    break
                data += chunk
            return self._judge(data.split(b"\n", 1)[0] if data else b"")
        finally:
            sock.close()

    async def _check_tls(self, endpoint: Endpoint) -> ProbeResult:
        reader, writer = await asyncio.open_connection(
            endpoint.host, endpoint.port, ssl=self._tls, server_hostname=endpoint.host
        )
        try:
            if self.spec.scheme == "tcp":
                return ProbeResult(True, "connected")
            writer.write(self._request(endpoint))
            return self._judge(await reader.readline())
        finally:
            # No wait for the peer's close_notify: the probe's answer is already known.
            writer.close()

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
