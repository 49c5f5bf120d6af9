"""HTTPS client of the stand-in apiserver, with Go-like wording for connection failures.

The host name of the server URL is resolved by the system resolver on every (re)connect, so
/etc/hosts decides where `apiserver.cluster.local` goes (through the VIP on a node). The TLS
server name stays the URL's host, so the apiserver certificate must carry it in its SANs.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import socket
import ssl
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from .hostenv import resolve_host
from .pki import Kubeconfig, cert_sans


class ApiError(Exception):
    """The apiserver answered with an error status."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ConnectError(Exception):
    """The apiserver could not be reached; str() reads like Go's net/http errors."""

    def __init__(self, kind: str, host: str, port: int, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.host = host
        self.port = port


def split_server(server: str) -> tuple[str, int]:
    """(host, port) of "https://host:port" (port 443 when absent)."""
    parts = urlsplit(server if "://" in server else f"https://{server}")
    return parts.hostname or "", parts.port or 443


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a chosen IP that verifies the certificate for the URL's host."""

    def __init__(self, ip: str, host: str, port: int, context: ssl.SSLContext, timeout: float):
        super().__init__(host, port, context=context, timeout=timeout)
        self._ip = ip
        self._tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self._ip, self.port), timeout=self.timeout)
        try:
            server_name = self.host if self._tls_context.check_hostname else None
            self.sock = self._tls_context.wrap_socket(raw, server_hostname=server_name)
        except BaseException:
            raw.close()
            raise


def _client_context(
    ca_pem: Optional[str],
    insecure: bool,
    cert_pem: Optional[str],
    key_pem: Optional[str],
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if insecure or not ca_pem:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cadata=ca_pem)
    if cert_pem and key_pem:
        # load_cert_chain only reads files: a private temp dir, removed right away.
        with tempfile.TemporaryDirectory(prefix="sealos-standin-") as tmp:
            cert_path = Path(tmp) / "client.crt"
            key_path = Path(tmp) / "client.key"
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key_pem)
            cert_path.write_text(cert_pem)
            context.load_cert_chain(str(cert_path), str(key_path))
    return context


class ApiClient:
    """Requests to one apiserver URL; keeps the connection open between calls."""

    def __init__(
        self,
        server: str,
        ca_pem: Optional[str] = None,
        insecure: bool = False,
        cert_pem: Optional[str] = None,
        key_pem: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 10.0,
    ) -> None:
        self.server = server
        self.host, self.port = split_server(server)
        self.token = token
        self.timeout = timeout
        self.context = _client_context(ca_pem, insecure, cert_pem, key_pem)
        self._conn: Optional[_PinnedHTTPSConnection] = None
        self._ip: Optional[str] = None
        self.last_peer_cert: Optional[bytes] = None

    @classmethod
    def from_kubeconfig(cls, config: Kubeconfig, timeout: float = 10.0) -> ApiClient:
        """A client for the current context of a kubeconfig."""
        return cls(
            config.server,
            ca_pem=config.ca_pem,
            insecure=config.insecure,
            cert_pem=config.cert_pem,
            key_pem=config.key_pem,
            token=config.token,
            timeout=timeout,
        )

    def close(self) -> None:
        """Drop the open connection (the next call resolves and connects again)."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        self._conn = None
        self._ip = None

    def local_address(self) -> Optional[str]:
        """The local IP of the open connection (the node's address toward the apiserver)."""
        if self._conn is not None and self._conn.sock is not None:
            with contextlib.suppress(OSError):
                return str(self._conn.sock.getsockname()[0])
        return None

    def _resolve(self) -> list[str]:
        try:
            return resolve_host(self.host)
        except socket.gaierror:
            raise ConnectError(
                "dns", self.host, self.port, f"dial tcp: lookup {self.host}: no such host"
            ) from None

    def _connect(self, addresses: list[str]) -> _PinnedHTTPSConnection:
        last: Optional[ConnectError] = None
        for ip in addresses:
            conn = _PinnedHTTPSConnection(ip, self.host, self.port, self.context, self.timeout)
            try:
                conn.connect()
            except ssl.SSLCertVerificationError as exc:
                last = ConnectError("tls", self.host, self.port, self._tls_detail(ip, exc))
                continue
            except (TimeoutError, socket.timeout):
                last = ConnectError(
                    "timeout", self.host, self.port, f"dial tcp {ip}:{self.port}: i/o timeout"
                )
                continue
            except OSError as exc:
                last = self._os_error(ip, exc)
                continue
            self._ip = ip
            return conn
        assert last is not None
        raise last

    def _os_error(self, ip: str, exc: OSError) -> ConnectError:
        if isinstance(exc, ssl.SSLError):
            detail = (
                f"dial tcp {ip}:{self.port}: remote error: {exc.reason or 'tls handshake failed'}"
            )
            if isinstance(exc, ssl.SSLEOFError):
                detail = f"dial tcp {ip}:{self.port}: EOF"
            return ConnectError("reset", self.host, self.port, detail)
        reasons = {
            errno.ECONNREFUSED: ("refused", "connection refused"),
            errno.EHOSTUNREACH: ("unreachable", "no route to host"),
            errno.ENETUNREACH: ("unreachable", "network is unreachable"),
            errno.ECONNRESET: ("reset", "connection reset by peer"),
        }
        kind, text = reasons.get(exc.errno or 0, ("error", exc.strerror or str(exc)))
        return ConnectError(
            kind, self.host, self.port, f"dial tcp {ip}:{self.port}: connect: {text}"
        )

    def _tls_detail(self, ip: str, exc: ssl.SSLCertVerificationError) -> str:
        if "mismatch" in str(exc) or "doesn't match" in str(exc):
            insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            insecure.check_hostname = False
            insecure.verify_mode = ssl.CERT_NONE
            sans: list[str] = []
            with (
                contextlib.suppress(OSError),
                socket.create_connection((ip, self.port), timeout=self.timeout) as raw,
                insecure.wrap_socket(raw) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
                if der:
                    sans = cert_sans(ssl.DER_cert_to_PEM_cert(der))
            return f"x509: certificate is valid for {', '.join(sans)}, not {self.host}"
        return "x509: certificate signed by unknown authority"

    def ensure_connection(self) -> None:
        """Resolve the host now; reconnect when it resolves elsewhere than the open connection."""
        addresses = self._resolve()
        if self._conn is not None and self._ip in addresses:
            return
        self.close()
        self._conn = self._connect(addresses)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; JSON (or text) of a 2xx answer, ApiError otherwise, ConnectError if down."""
        for attempt in range(2):
            self.ensure_connection()
            assert self._conn is not None
            headers = {"Accept": "application/json", "Connection": "keep-alive"}
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            try:
                self._conn.request(method, path, body=payload, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed: retry once on a fresh one.
                self.close()
                if attempt == 0:
                    continue
                raise ConnectError(
                    "reset",
                    self.host,
                    self.port,
                    f"dial tcp {self._ip}:{self.port}: connection reset by peer",
                ) from None
            except (TimeoutError, socket.timeout):
                ip = self._ip
                self.close()
                raise ConnectError(
                    "timeout", self.host, self.port, f"read tcp {ip}:{self.port}: i/o timeout"
                ) from None
            except OSError as exc:
                ip = self._ip or self.host
                self.close()
                raise self._os_error(ip, exc) from None
            except http.client.HTTPException as exc:
                # An answer cut short (an apiserver whose process ended mid-answer, as on a
                # master's reboot): a broken connection, as Go's "unexpected EOF".
                ip = self._ip or self.host
                self.close()
                raise ConnectError(
                    "reset",
                    self.host,
                    self.port,
                    f"read tcp {ip}:{self.port}: unexpected EOF ({type(exc).__name__})",
                ) from None
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return self._decode(response.status, response.getheader("Content-Type", ""), data)
        raise AssertionError("unreachable")

    @staticmethod
    def _decode(status: int, content_type: str, data: bytes) -> Any:
        parsed: Any = data.decode(errors="replace")
        if "json" in content_type:
            with contextlib.suppress(ValueError):
                parsed = json.loads(data)
        if 200 <= status < 300:
            return parsed
        if isinstance(parsed, dict):
            raise ApiError(status, str(parsed.get("message", "")), str(parsed.get("reason", "")))
        raise ApiError(status, str(parsed).strip())


def fetch_peer_certificate(host: str, port: int, timeout: float = 5.0) -> Optional[str]:
    """The PEM certificate a TLS server presents (no verification), for discovery's first look."""
    insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        insecure.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der) if der else None


def rfc3339(ts: float) -> str:
    """Kubernetes' timestamp format (what the apiserver writes and kubectl reads)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC3339 time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
