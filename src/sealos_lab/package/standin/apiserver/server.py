"""The stand-in apiserver's HTTPS server, and `kubeadm sealos-lab-apiserver` (the unit runs it)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from ..hostenv import log
from .api import Apiserver
from .auth import ApiserverError, identify
from .settings import ApiserverSettings, settings_from_manifest


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sealos-lab-stand-in-kube-apiserver"
    apiserver: Apiserver

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are not logged one by one (heartbeats); handlers log what matters

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
            peer = (
                self.connection.getpeercert()
                if isinstance(self.connection, ssl.SSLSocket)
                else None
            )
            who = identify(self.apiserver.store, peer, self.headers.get("Authorization", ""))
            for route_method, pattern, handler in self.apiserver.routes:
                match = pattern.match(parts.path)
                if match and route_method == method:
                    if method != "GET" and handler not in self.apiserver.without_quorum:
                        self.apiserver.require_quorum()  # an etcd write needs a quorum
                    result = handler(who, body, query, *match.groups())
                    if method != "GET" and handler not in self.apiserver.batched_writes:
                        # Object writes reach the peers before the client hears back, as an
                        # etcd write reaches a quorum; heartbeats travel in the 1 s batches.
                        self.apiserver.replicator.replicate_once()
                    self._send(200, result)
                    return
            raise ApiserverError(
                404, "NotFound", "the server could not find the requested resource"
            )
        except ApiserverError as exc:
            self._send(
                exc.code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": str(exc),
                    "reason": exc.reason,
                    "code": exc.code,
                },
            )
        except (ValueError, KeyError, TypeError) as exc:
            self._send(
                400,
                {
                    "kind": "Status",
                    "status": "Failure",
                    "message": f"bad request: {exc}",
                    "reason": "BadRequest",
                    "code": 400,
                },
            )

    def _send(self, code: int, result: Any) -> None:
        if isinstance(result, str):
            payload, ctype = result.encode(), "text/plain; charset=utf-8"
        else:
            payload, ctype = json.dumps(result).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls_context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the connection's own thread: a slow client can't stall accept.
        request.settimeout(10)
        try:
            tls = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        tls.settimeout(120)
        try:
            super().finish_request(tls, client_address)
        except (ssl.SSLError, ConnectionError, TimeoutError):
            pass  # the client went away mid-answer (a health probe that timed out): its loss
        finally:
            with contextlib.suppress(OSError):
                tls.close()


def serve(settings: ApiserverSettings) -> int:
    """Run the apiserver until SIGTERM."""
    apiserver = Apiserver(settings)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(settings.cert_file, settings.key_file)
    context.load_verify_locations(settings.client_ca_file)
    etcd_ca = Path(settings.client_ca_file).parent / "etcd" / "ca.crt"
    if etcd_ca.exists():
        # The stand-in etcdctl's client certificates (etcd-ca): the members API only (auth.py).
        context.load_verify_locations(str(etcd_ca))
    context.verify_mode = ssl.CERT_OPTIONAL
    handler = type("Handler", (_Handler,), {"apiserver": apiserver})
    _TLSServer.address_family = socket.AF_INET
    server = _TLSServer(("0.0.0.0", settings.bind_port), handler)
    server.tls_context = context
    log(
        "apiserver",
        f"serving on 0.0.0.0:{settings.bind_port} as {settings.node_name} ({settings.url})",
    )

    def _stop(_signum: int, _frame: Any) -> None:
        apiserver.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    replicator = threading.Thread(
        target=apiserver.replicator.run, args=(apiserver.stopping,), daemon=True
    )
    replicator.start()
    try:
        server.serve_forever(poll_interval=1.0)
    finally:
        apiserver.stopping.set()
        apiserver.store.save_if_dirty()
        server.server_close()
    log("apiserver", "stopped")
    return 0


def apiserver_main(argv: list[str]) -> int:
    """`kubeadm sealos-lab-apiserver --manifest FILE --state-dir DIR` (what the unit runs)."""
    manifest = state_dir = ""
    for arg in argv:
        if arg.startswith("--manifest="):
            manifest = arg.split("=", 1)[1]
        elif arg.startswith("--state-dir="):
            state_dir = arg.split("=", 1)[1]
    if not manifest or not state_dir:
        log("apiserver", "usage: sealos-lab-apiserver --manifest=FILE --state-dir=DIR")
        return 2
    try:
        settings = settings_from_manifest(Path(manifest), Path(state_dir))
    except (OSError, KeyError, ValueError, yaml.YAMLError) as exc:
        log("apiserver", f"cannot start: {manifest}: {exc}")
        return 1
    os.umask(0o077)
    return serve(settings)
