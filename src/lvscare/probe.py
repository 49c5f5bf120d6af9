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
CA, which a node may not have yet). `ssl` is imported only for https.
Everything runs on lvscare.reactor (generators on `selectors`), not asyncio: cheaper to start.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from lvscare.model import Endpoint, ProbeResult, UserError
from lvscare.reactor import Cancelled, Coroutine, Reactor, Task

if TYPE_CHECKING:
    import ssl

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
    if isinstance(exc, _Closed):
        return str(exc)
    ssl_mod = _ssl_loaded()
    if ssl_mod is not None and isinstance(exc, ssl_mod.SSLError):
        if isinstance(exc, ssl_mod.SSLEOFError):
            return "connection closed before a response"
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_WORDS:
        if exc.strerror and exc.errno == errno.ETIMEDOUT and "acknowledgement" in exc.strerror:
            return exc.strerror
        return _ERRNO_WORDS[exc.errno]
    if isinstance(exc, ConnectionError):
        return "connection closed before a response"
    return str(exc) or type(exc).__name__


def _ssl_loaded() -> Any:
    import sys

    return sys.modules.get("ssl")


# Errors a probe turns into a failed result (ssl.SSLError is an OSError).
_PROBE_ERRORS = (OSError, ValueError)


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


def _want(exc: BaseException) -> Optional[str]:
    """ "read"/"write" when a non-blocking (TLS) socket asks to wait, else None."""
    if isinstance(exc, BlockingIOError):
        return "read"
    ssl_mod = _ssl_loaded()
    if ssl_mod is not None:
        if isinstance(exc, ssl_mod.SSLWantReadError):
            return "read"
        if isinstance(exc, ssl_mod.SSLWantWriteError):
            return "write"
    return None


class _Conn:
    """One kept connection to a real server (a plain or TLS non-blocking socket)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()
        self.buffer = bytearray()
        self.ended: Optional[str] = None
        self.watched: Optional[Reactor] = None

    def unacked(self) -> int:
        """Segments the server's kernel has not acknowledged yet (TCP_INFO), 0 if unknown."""
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            return int(struct.unpack_from("=I", info, _TCP_INFO_UNACKED)[0])
        except (OSError, struct.error):
            return 0

    def exchange(self, request: bytes, ack_wait: Optional[float]) -> Coroutine:
        """Send a request, read the whole response; returns (status, reusable)."""
        if self.ended is not None:
            raise _Closed(self.ended)
        self.buffer.clear()
        view = memoryview(request)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except OSError as exc:
                want = _want(exc)
                if want is None:
                    raise
                yield (want, self.sock, None)
        sent = time.monotonic()
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                want = _want(exc)
                if want is None:
                    raise
                if ack_wait is None:
                    yield (want, self.sock, None)
                    continue
                left = sent + ack_wait - time.monotonic()
                if left > 0:
                    yield (want, self.sock, left)
                    continue
                if self.unacked():
                    raise OSError(
                        errno.ETIMEDOUT,
                        f"no TCP acknowledgement within {ack_wait:g}s (host unreachable?)",
                    ) from None
                ack_wait = None
                continue
            if not chunk:
                self.ended = "connection closed by the server"
                break
            self.buffer += chunk
            parsed = parse_response(self.buffer, eof=False)
            if parsed is not None:
                return parsed
        parsed = parse_response(self.buffer, eof=True)
        if parsed is None:
            raise _Closed(self.ended)
        return parsed

    def watch(self, reactor: Reactor, on_end: Callable[[_Conn, str], None]) -> None:
        """While idle: call `on_end` when the server closes it (FIN/RST) or the kernel gives up."""
        self.watched = reactor

        def readable() -> None:
            reason = None
            try:
                if not self.sock.recv(65536):  # data nobody asked for is dropped
                    reason = "connection closed by the server"
            except OSError as exc:
                if _want(exc) is None:
                    reason = f"connection ended ({_describe(exc)})"
            if reason is not None:
                self.unwatch()
                self.ended = reason
                on_end(self, reason)

        reactor.add_reader(self.fd, readable)

    def unwatch(self) -> None:
        """Stop watching."""
        if self.watched is not None:
            self.watched.remove_reader(self.fd)
            self.watched = None

    def close(self) -> None:
        """Close it (no wait for the peer)."""
        self.unwatch()
        if self.ended is None:
            self.ended = "closed by lvscare"
        self.sock.close()


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

    def __init__(self, spec: ProbeSpec, reactor: Optional[Reactor] = None):
        self.spec = spec
        self.reactor = reactor or Reactor()
        self._tls: Optional[ssl.SSLContext] = None
        self._requests: dict[tuple[Endpoint, str], bytes] = {}
        self._conns: dict[Endpoint, _Conn] = {}
        self._paths: dict[Endpoint, str] = {}
        self._confirming: dict[Endpoint, Task] = {}
        self.events: dict[Endpoint, ProbeResult] = {}
        self.on_event: Optional[Callable[[], None]] = None
        if spec.scheme == "https":
            self._tls = self._tls_context(spec.ca_file)

    @staticmethod
    def _tls_context(ca_file: Optional[str]) -> ssl.SSLContext:
        import ssl

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

    def probe(self, endpoint: Endpoint) -> ProbeResult:
        """Check one real server within the spec's timeout."""
        return self.probe_all([endpoint])[endpoint]

    def probe_all(self, endpoints: Iterable[Endpoint]) -> dict[Endpoint, ProbeResult]:
        """Check all real servers at once; each probe ends at the spec's timeout."""
        endpoints = list(dict.fromkeys(endpoints))
        tasks = {}
        for ep in endpoints:
            # A confirmation under way: its answer is this probe's answer.
            confirming = self._confirming.get(ep)
            tasks[ep] = confirming or Task(self.reactor, self._guarded(ep, keep=True))
        self.reactor.run_until(lambda: all(t.done for t in tasks.values()), self.spec.timeout)
        late = ProbeResult(False, f"timed out after {self.spec.timeout:g}s")
        results = {}
        for ep, task in tasks.items():
            if not task.done and task is not self._confirming.get(ep):
                task.cancel()
            ok = task.done and task.error is None and task.result is not None
            results[ep] = task.result if ok else late
        return results

    def _guarded(self, endpoint: Endpoint, keep: bool) -> Coroutine:
        try:
            if self.spec.scheme == "tcp":
                return (yield from self._check_tcp(endpoint, keep))
            return (yield from self._check_http(endpoint, keep))
        except _PROBE_ERRORS as exc:
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

    def _connect(self, endpoint: Endpoint) -> Coroutine:
        family = socket.AF_INET6 if endpoint.family == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        try:
            _tune(sock, self.spec.timeout)
            err = sock.connect_ex((endpoint.host, endpoint.port))
            if err == errno.EINPROGRESS:
                yield ("write", sock, None)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            if self._tls is not None:
                sock = self._tls.wrap_socket(
                    sock, server_hostname=endpoint.host, do_handshake_on_connect=False
                )
                while True:
                    try:
                        sock.do_handshake()
                        break
                    except OSError as exc:
                        want = _want(exc)
                        if want is None:
                            raise
                        yield (want, sock, None)
        except BaseException:
            sock.close()
            raise
        return _Conn(sock)

    def _keep(self, endpoint: Endpoint, conn: _Conn) -> None:
        old = self._conns.pop(endpoint, None)
        if old is not None and old is not conn:
            old.close()
        self._conns[endpoint] = conn
        conn.watch(self.reactor, lambda c, reason: self._peer_closed(endpoint, c, reason))

    def _check_tcp(self, endpoint: Endpoint, keep: bool) -> Coroutine:
        # A fresh connect every time: a black hole times out. The newest one is kept and watched.
        conn = yield from self._connect(endpoint)
        if keep:
            self._keep(endpoint, conn)
        else:
            conn.close()
        return ProbeResult(True, "connected")

    def _check_http(self, endpoint: Endpoint, keep: bool) -> Coroutine:
        path = self.spec.path or self._paths.get(endpoint, READYZ)
        conn = self._conns.pop(endpoint, None) if keep else None
        reused = conn is not None and conn.ended is None
        ack_wait = ACK_WAIT if self.spec.timeout > ACK_WAIT else None
        try:
            if conn is None or not reused:
                if conn is not None:
                    conn.close()
                conn = yield from self._connect(endpoint)
            conn.unwatch()
            try:
                status, reusable = yield from conn.exchange(self._request(endpoint, path), ack_wait)
            except _Closed:
                if not reused:
                    raise
                # The server closed the idle connection as we sent: one fresh try.
                conn.close()
                conn = yield from self._connect(endpoint)
                status, reusable = yield from conn.exchange(self._request(endpoint, path), ack_wait)
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
            return (yield from self._check_http(endpoint, keep))
        if self.spec.healthy_status(status):
            return ProbeResult(True, f"HTTP {status}")
        return ProbeResult(False, f"HTTP {status}")

    def _peer_closed(self, endpoint: Endpoint, conn: _Conn, reason: str) -> None:
        """A kept connection ended between probes: confirm with one fresh probe."""
        if self._conns.get(endpoint) is conn:
            del self._conns[endpoint]
        conn.close()
        if endpoint not in self._confirming:
            task = Task(self.reactor, self._confirm(endpoint, reason), timeout=self.spec.timeout)
            if not task.done:
                self._confirming[endpoint] = task

    def _confirm(self, endpoint: Endpoint, reason: str) -> Coroutine:
        try:
            try:
                result = yield from self._guarded(endpoint, keep=False)
            except Cancelled:
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
        for task in list(self._confirming.values()):
            task.cancel()
        self._confirming.clear()
