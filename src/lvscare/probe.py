"""Health probes over kept-alive connections, with the kernel's word on a dead server at once.

One connection per real server stays open between probes (HTTP/1.1 keep-alive; TLS for https, so
no handshake per probe; plain TCP for tcp). Every interval a probe runs over it: GET the health
path and judge the status (tcp: a fresh connect, which then becomes the kept one).

Between probes the connection is watched. When the server's process dies its kernel closes the
connection at once (FIN, or RST): the prober then makes ONE fresh probe to confirm, and only when
that fails too does it report a failed probe (`events`, then `on_event()`), without waiting for
the next interval. A server that merely closed an idle connection answers the fresh probe and
nothing is reported; a confirmed failure counts as one failed probe, so it sets weight 0 (no new
connections) and `fall` consecutive failures are still needed to remove the server: a restart
blip or one lost connection cannot flap the rules. The fresh connection of a confirmation is not
kept, so a server that closes every idle connection costs at most one confirmation per interval.

Black holes (a host gone, packets dropped) send no FIN. They are caught by the probe timeout, and
sooner by the kernel's own evidence: a request that the server's kernel has not even acknowledged
after `ACK_WAIT` (a live host acknowledges within a round trip, or its delayed-ACK maximum of
0.2 s, however busy its apiserver is) fails the probe at once. Idle kept connections carry TCP
keepalive and TCP_USER_TIMEOUT, so the kernel drops them when the peer vanishes.

The default path is /readyz (apiservers since 1.16: it fails during a graceful shutdown, while
/healthz still says ok): a server that answers /readyz with 404 does not have it and is probed
on /healthz from then on (logged once). `--health-path` overrides both.
HTTPS does not verify the server certificate unless a CA file is given (apiservers use their own
CA, which a node may not have yet).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
import ssl
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable, Optional

from lvscare.model import Endpoint, ProbeResult, UserError

log = logging.getLogger("lvscare")

READYZ, HEALTHZ = "/readyz", "/healthz"
# A request the server's kernel has not acknowledged after this long: nobody is there.
ACK_WAIT = 0.35
_TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)
_TCP_INFO_UNACKED = 24  # offset of tcpi_unacked in struct tcp_info

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timed out",
    errno.EPIPE: "connection closed",
}


@dataclass(frozen=True)
class ProbeSpec:
    """How to check a real server: scheme, path (None: /readyz, else /healthz where /readyz is
    404), healthy statuses, timeout, optional CA file."""

    scheme: str = "http"
    path: Optional[str] = None
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


class _Closed(ConnectionError):
    """The connection ended before any byte of a response."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[exc.errno]
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, (asyncio.IncompleteReadError, ConnectionError)):
        return str(exc) if isinstance(exc, _Closed) else "connection closed before a response"
    return str(exc) or type(exc).__name__


def _chunked_done(buf: bytes | bytearray, pos: int) -> bool:
    """True when a chunked body starting at `pos` is complete in `buf`."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return False
        try:
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            raise ValueError("bad chunked body") from None
        if size == 0:
            return buf.find(b"\r\n\r\n", eol) >= 0 or buf[eol + 2 : eol + 4] == b"\r\n"
        pos = eol + 2 + size + 2
        if pos > len(buf):
            return False


def parse_response(buf: bytes | bytearray, eof: bool) -> Optional[tuple[int, bool]]:
    """(status, connection reusable) once the response in `buf` is complete; None while more is
    to come. Raises ValueError for an answer that is not HTTP, _Closed for no answer at all."""
    nl = buf.find(b"\n")
    if nl < 0:
        if not eof:
            return None
        if not buf:
            raise _Closed("connection closed before a response")
        nl = len(buf)
    line = bytes(buf[:nl])
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response ({line[:40]!r})")
    status = int(parts[1])
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return (status, False) if eof else None
    headers = {}
    for raw in bytes(buf[nl + 1 : end]).decode("latin-1").split("\r\n"):
        name, _, value = raw.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    connection = headers.get("connection", "")
    keep = "close" not in connection if parts[0] == "HTTP/1.1" else "keep-alive" in connection
    body = end + 4
    if status < 200 or status in (204, 304):
        return status, keep and status >= 200
    if "chunked" in headers.get("transfer-encoding", ""):
        if _chunked_done(buf, body):
            return status, keep
        return (status, False) if eof else None
    length = headers.get("content-length", "")
    if length.isdigit():
        if len(buf) - body >= int(length):
            return status, keep
        return (status, False) if eof else None
    return status, False  # a body until close: judge the status, do not reuse


class _Conn(asyncio.Protocol):
    """One kept connection to a real server: a request at a time, and news of its end."""

    def __init__(self, on_peer_close: Callable[[_Conn, str], None]):
        self.transport: Optional[asyncio.Transport] = None
        self.buffer = bytearray()
        self.waiter: Optional[asyncio.Future] = None
        self.ended: Optional[str] = None
        self.watching = False  # idle and kept: its end is news
        self.on_peer_close = on_peer_close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            return  # nothing asked for (a chatty server): ignored
        self.buffer += data
        try:
            done = parse_response(self.buffer, eof=False) is not None
        except ValueError:
            done = True
        if done:
            self.waiter.set_result(None)

    def eof_received(self) -> bool:
        self._end("connection closed by the server")
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._end(_describe(exc) if exc else "connection closed by the server")

    def _end(self, reason: str) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        elif self.watching:
            self.watching = False
            self.on_peer_close(self, reason)

    def unacked(self) -> int:
        """Segments the server's kernel has not acknowledged yet (TCP_INFO), 0 if unknown."""
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is None:
            return 0
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            return int(struct.unpack_from("=I", info, _TCP_INFO_UNACKED)[0])
        except (OSError, struct.error):
            return 0

    async def exchange(self, request: bytes, ack_wait: Optional[float]) -> tuple[int, bool]:
        """Send a request, wait for the whole response; (status, reusable)."""
        assert self.transport is not None
        if self.ended is not None:
            raise _Closed(self.ended)
        self.buffer.clear()
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        try:
            self.transport.write(request)
            if ack_wait is not None:
                await asyncio.wait({waiter}, timeout=ack_wait)
                if not waiter.done() and self.unacked():
                    raise OSError(
                        errno.ETIMEDOUT,
                        f"no TCP acknowledgement within {ack_wait:g}s (host unreachable?)",
                    )
            await waiter
        finally:
            self.waiter = None
        parsed = parse_response(self.buffer, eof=self.ended is not None)
        if parsed is None:
            raise _Closed(self.ended or "connection closed before a response")
        return parsed

    def close(self) -> None:
        """Close it (no wait for the peer); its end is no news."""
        self.watching = False
        if self.ended is None:
            self.ended = "closed by lvscare"
        if self.transport is not None:
            self.transport.abort()


def _tune(sock: socket.socket, timeout: float) -> None:
    """Let the kernel give up on a vanished peer: keepalive while idle, and a user timeout on
    unacknowledged data."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 1), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 2)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, max(1, int(timeout * 1000)))
    except OSError:
        pass  # a kernel without one of them still probes


class Prober:
    """Checks real servers according to one ProbeSpec over kept connections; reports confirmed
    deaths between probes in `events` and calls `on_event` (set by the loop)."""

    def __init__(self, spec: ProbeSpec):
        self.spec = spec
        self._tls: Optional[ssl.SSLContext] = None
        self._requests: dict[tuple[Endpoint, str], bytes] = {}
        self._conns: dict[Endpoint, _Conn] = {}
        self._paths: dict[Endpoint, str] = {}
        self._confirming: dict[Endpoint, asyncio.Task] = {}
        self.events: dict[Endpoint, ProbeResult] = {}
        self.on_event: Optional[Callable[[], None]] = None
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

    def take_events(self) -> dict[Endpoint, ProbeResult]:
        """The confirmed failures since the last call."""
        events, self.events = self.events, {}
        return events

    async def probe(self, endpoint: Endpoint) -> ProbeResult:
        """Check one real server within the spec's timeout."""
        return (await self.probe_all([endpoint]))[endpoint]

    async def probe_all(self, endpoints: Iterable[Endpoint]) -> dict[Endpoint, ProbeResult]:
        """Check all real servers at once; each probe ends at its own timeout."""
        endpoints = list(dict.fromkeys(endpoints))
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._guarded(ep, keep=True)) for ep in endpoints]
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

    async def _guarded(self, endpoint: Endpoint, keep: bool) -> ProbeResult:
        confirming = self._confirming.get(endpoint)
        if keep and confirming is not None:
            # A confirmation is already under way: its answer is this probe's answer.
            return await asyncio.shield(confirming)
        try:
            if self.spec.scheme == "tcp":
                return await self._check_tcp(endpoint, keep)
            return await self._check_http(endpoint, keep)
        except (OSError, ssl.SSLError, ValueError) as exc:
            return ProbeResult(False, _describe(exc))

    def _request(self, endpoint: Endpoint, path: str) -> bytes:
        request = self._requests.get((endpoint, path))
        if request is None:
            host = f"[{endpoint.host}]" if endpoint.family == 6 else endpoint.host
            request = (
                f"GET {path} HTTP/1.1\r\n"
                f"Host: {host}:{endpoint.port}\r\n"
                "User-Agent: lvscare\r\n"
                "Accept: */*\r\n\r\n"
            ).encode("ascii")
            self._requests[(endpoint, path)] = request
        return request

    async def _connect(self, endpoint: Endpoint) -> _Conn:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if endpoint.family == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        conn = _Conn(lambda c, reason: self._peer_closed(endpoint, c, reason))
        try:
            sock.setblocking(False)
            _tune(sock, self.spec.timeout)
            await loop.sock_connect(sock, (endpoint.host, endpoint.port))
            if self._tls is None:
                await loop.create_connection(lambda: conn, sock=sock)
            else:
                await loop.create_connection(
                    lambda: conn,
                    sock=sock,
                    ssl=self._tls,
                    server_hostname=endpoint.host,
                    ssl_handshake_timeout=max(self.spec.timeout, 0.1),
                )
        except BaseException:
            if conn.transport is not None:
                conn.close()
            sock.close()
            raise
        return conn

    def _keep(self, endpoint: Endpoint, conn: _Conn) -> None:
        old = self._conns.pop(endpoint, None)
        if old is not None and old is not conn:
            old.close()
        conn.watching = True
        self._conns[endpoint] = conn

    async def _check_tcp(self, endpoint: Endpoint, keep: bool) -> ProbeResult:
        # A fresh connect every time: a black hole times out. The newest one is kept and watched.
        conn = await self._connect(endpoint)
        if keep:
            self._keep(endpoint, conn)
        else:
            conn.close()
        return ProbeResult(True, "connected")

    async def _check_http(self, endpoint: Endpoint, keep: bool) -> ProbeResult:
        path = self.spec.path or self._paths.get(endpoint, READYZ)
        conn = self._conns.pop(endpoint, None) if keep else None
        reused = conn is not None and conn.ended is None
        ack_wait = ACK_WAIT if self.spec.timeout > ACK_WAIT else None
        try:
            if conn is None or not reused:
                conn = await self._connect(endpoint)
            conn.watching = False
            try:
                status, reusable = await conn.exchange(self._request(endpoint, path), ack_wait)
            except _Closed:
                if not reused:
                    raise
                # The server closed the idle connection as we sent: one fresh try.
                conn.close()
                conn = await self._connect(endpoint)
                status, reusable = await conn.exchange(self._request(endpoint, path), ack_wait)
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        if keep and reusable:
            self._keep(endpoint, conn)
        else:
            conn.close()
        if status == 404 and self.spec.path is None and path == READYZ:
            self._paths[endpoint] = HEALTHZ
            log.info("%s has no %s (HTTP 404): probing %s instead", endpoint, READYZ, HEALTHZ)
            return await self._check_http(endpoint, keep)
        if self.spec.healthy_status(status):
            return ProbeResult(True, f"HTTP {status}")
        return ProbeResult(False, f"HTTP {status}")

    def _peer_closed(self, endpoint: Endpoint, conn: _Conn, reason: str) -> None:
        """A kept connection ended between probes: confirm with one fresh probe."""
        if self._conns.get(endpoint) is conn:
            del self._conns[endpoint]
        conn.close()
        if endpoint in self._confirming:
            return
        task = asyncio.get_running_loop().create_task(self._confirm(endpoint, reason))
        self._confirming[endpoint] = task

    async def _confirm(self, endpoint: Endpoint, reason: str) -> ProbeResult:
        try:
            try:
                result = await asyncio.wait_for(
                    self._guarded(endpoint, keep=False), self.spec.timeout
                )
            except asyncio.TimeoutError:
                result = ProbeResult(False, f"timed out after {self.spec.timeout:g}s")
            if result.ok:
                log.debug("%s: %s, a fresh probe passed (%s)", endpoint, reason, result.reason)
                return result
            result = ProbeResult(False, f"{reason}, then {result.reason}")
            self.events[endpoint] = result
            if self.on_event is not None:
                self.on_event()
            return result
        finally:
            self._confirming.pop(endpoint, None)

    def close(self) -> None:
        """Close the kept connections and stop confirmations."""
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        for task in self._confirming.values():
            task.cancel()
        self._confirming.clear()
