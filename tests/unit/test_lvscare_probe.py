"""lvscare's probes against real servers on loopback: HTTP, HTTPS (self-signed), TCP, timeouts,
kept-alive connections and the events they give when a server dies between probes."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lvscare.model import Endpoint, UserError
from lvscare.probe import Prober, ProbeSpec, parse_response, parse_statuses


class ServerThread:
    """An asyncio loop in a thread that runs the test's servers; the prober (lvscare.reactor,
    no asyncio) runs in the test's own thread, as in lvscare."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        async def shutdown():
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await asyncio.sleep(0.05)  # handlers close their transports

        self.call(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def servers():
    thread = ServerThread()
    try:
        yield thread
    finally:
        thread.stop()


async def _serve(handler, tls: ssl.SSLContext | None = None):
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    asyncio.get_running_loop().create_task(server.serve_forever())  # cancelled at stop()
    port = server.sockets[0].getsockname()[1]
    return server, Endpoint("127.0.0.1", port)


def http_handler(status: int, seen: list | None = None):
    async def handle(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        if seen is not None:
            seen.append(request)
        writer.write(f"HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    return handle


async def _silent(reader, writer):
    await asyncio.sleep(10)
    writer.close()


def probe_once(spec: ProbeSpec, handler, tls=None):
    thread = ServerThread()
    try:
        _, ep = thread.call(_serve(handler, tls))  # closed by stop() (its serve_forever task)
        prober = Prober(spec)
        try:
            return prober.probe(ep)
        finally:
            prober.close()
    finally:
        thread.stop()


def test_http_200_is_healthy_and_the_request_is_well_formed():
    seen: list = []
    result = probe_once(ProbeSpec("http", "/healthz"), http_handler(200, seen))
    assert (result.ok, result.reason) == (True, "HTTP 200")
    request = seen[0].decode()
    assert request.startswith("GET /healthz HTTP/1.1\r\n")
    assert "\r\nHost: 127.0.0.1:" in request
    assert "Connection: close" not in request, "HTTP/1.1 keep-alive: one connection for all probes"


def test_http_status_outside_the_healthy_ranges_fails():
    result = probe_once(ProbeSpec("http", "/"), http_handler(503))
    assert (result.ok, result.reason) == (False, "HTTP 503")
    spec = ProbeSpec("http", "/", statuses=parse_statuses("200,401-403"))
    assert probe_once(spec, http_handler(401)).ok
    assert not probe_once(spec, http_handler(302)).ok


def test_a_server_that_never_answers_times_out_within_the_timeout():
    result = probe_once(ProbeSpec("http", "/", timeout=0.3), _silent)
    assert (result.ok, result.reason) == (False, "timed out after 0.3s")


def test_garbage_instead_of_http_fails():
    async def handle(reader, writer):
        await reader.readline()
        writer.write(b"SSH-2.0-OpenSSH\r\n")
        writer.close()

    result = probe_once(ProbeSpec("http", "/"), handle)
    assert not result.ok and "not an HTTP response" in result.reason


def test_refused_connection():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        result = Prober(ProbeSpec("tcp")).probe(Endpoint("127.0.0.1", port))
    assert (result.ok, result.reason) == (False, "connection refused")


def test_tcp_scheme_only_needs_a_connect():
    result = probe_once(ProbeSpec("tcp"), _silent)
    assert (result.ok, result.reason) == (True, "connected")


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=apiserver",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def test_https_accepts_a_self_signed_certificate_without_a_ca(self_signed):
    cert, key = self_signed
    result = probe_once(ProbeSpec("https", "/healthz"), http_handler(200), _server_tls(cert, key))
    assert (result.ok, result.reason) == (True, "HTTP 200")


def test_https_with_a_ca_verifies_the_certificate(self_signed, tmp_path):
    cert, key = self_signed
    good = ProbeSpec("https", "/healthz", ca_file=str(cert))
    assert probe_once(good, http_handler(200), _server_tls(cert, key)).ok
    other_ca = tmp_path / "other.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
         str(tmp_path / "k"), "-out", str(other_ca), "-days", "1", "-subj", "/CN=other"],
        check=True, capture_output=True,
    )  # fmt: skip
    bad = ProbeSpec("https", "/healthz", ca_file=str(other_ca))
    result = probe_once(bad, http_handler(200), _server_tls(cert, key))
    assert not result.ok and "TLS error" in result.reason


def test_probe_all_runs_in_parallel_each_with_its_own_timeout(servers):
    open_now, most = [0], [0]

    async def counting_silent(reader, writer):
        open_now[0] += 1
        most[0] = max(most[0], open_now[0])
        try:
            await asyncio.sleep(10)
        finally:
            open_now[0] -= 1
            writer.close()

    _, slow_ep = servers.call(_serve(counting_silent))
    _, slow2_ep = servers.call(_serve(counting_silent))
    _, fast_ep = servers.call(_serve(http_handler(200)))
    got = Prober(ProbeSpec("http", "/", timeout=0.5)).probe_all([slow_ep, fast_ep, slow2_ep])
    assert got[fast_ep].ok
    assert got[slow_ep].reason == got[slow2_ep].reason == "timed out after 0.5s"
    assert most[0] == 2, "both hanging servers held a probe at the same time"


def test_unreadable_ca_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--health-ca"):
        Prober(ProbeSpec("https", ca_file=str(tmp_path / "missing.pem")))


@pytest.mark.parametrize("text", ["abc", "200-", "99-200", "300-200", "200-700"])
def test_bad_status_lists_are_refused(text):
    with pytest.raises(UserError, match="--health-status"):
        parse_statuses(text)


class KeepAliveServer:
    """An HTTP/1.1 server on loopback that keeps connections open; counts connections and
    requests; answers per path from `answers` (default 200). Runs in the ServerThread."""

    def __init__(self, thread: ServerThread, answers: dict | None = None, tls=None):
        self.thread = thread
        self.answers = answers or {}
        self.tls = tls
        self.connections = 0
        self.paths: list[str] = []
        self.writers: list = []

    async def handle(self, reader, writer):
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split()[1].decode()
                self.paths.append(path)
                status = self.answers.get(path, 200)
                body = b"ok" if status == 200 else b"no"
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s"
                             % (status, len(body), body))  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> Endpoint:
        async def start():
            self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.tls)
            return Endpoint("127.0.0.1", self.server.sockets[0].getsockname()[1])

        self.ep = self.thread.call(start())
        return self.ep

    def die(self):
        """What a killed process does: the listener goes, every connection is closed."""

        async def die():
            self.server.close()
            for writer in self.writers:
                writer.transport.abort()
            await self.server.wait_closed()

        self.thread.call(die())

    def close_idle(self):
        """Close every connection, keep listening."""

        async def close():
            for writer in self.writers:
                writer.close()

        self.thread.call(close())


def test_probes_reuse_one_kept_alive_connection(servers):
    srv = KeepAliveServer(servers)
    ep = srv.start()
    prober = Prober(ProbeSpec("http", "/healthz"))
    results = [prober.probe(ep) for _ in range(3)]
    prober.close()
    assert all(r.ok for r in results)
    assert srv.connections == 1 and srv.paths == ["/healthz"] * 3


def test_https_probes_reuse_one_tls_connection(servers, self_signed):
    cert, key = self_signed
    srv = KeepAliveServer(servers, tls=_server_tls(cert, key))
    ep = srv.start()
    prober = Prober(ProbeSpec("https", "/healthz"))
    results = [prober.probe(ep) for _ in range(3)]
    prober.close()
    assert all(r.ok for r in results) and srv.connections == 1, "one TLS handshake for all"


@pytest.mark.parametrize("scheme", ["http", "https", "tcp"])
def test_a_server_that_dies_between_probes_is_reported_at_once(servers, self_signed, scheme):
    """No probe_all after the death: the kept connection's end and a refused fresh connect are
    the event, well before any next interval."""
    cert, key = self_signed
    srv = KeepAliveServer(servers, tls=_server_tls(cert, key) if scheme == "https" else None)
    ep = srv.start()
    prober = Prober(ProbeSpec(scheme, "/healthz", timeout=2.0))
    woke: list[float] = []
    prober.on_event = lambda: woke.append(time.monotonic())
    assert prober.probe(ep).ok
    deadline = time.monotonic() + 5
    while srv.connections < 1 and time.monotonic() < deadline:  # the server saw the connection
        time.sleep(0.01)
    srv.die()
    died = time.monotonic()
    prober.reactor.run_until(lambda: bool(woke), 5)
    events = prober.take_events()
    prober.close()
    assert woke, "no event within 5 s"
    assert list(events) == [ep] and not events[ep].ok
    assert events[ep].reason.endswith(", then connection refused"), events[ep].reason
    assert woke[0] - died < 1.0, f"reported {woke[0] - died:.2f} s after the death"


def test_a_server_that_only_closes_an_idle_connection_is_no_event(servers):
    srv = KeepAliveServer(servers)
    ep = srv.start()
    prober = Prober(ProbeSpec("http", "/healthz"))
    prober.on_event = lambda: None
    assert prober.probe(ep).ok
    srv.close_idle()  # the server still accepts: a fresh probe passes
    prober.reactor.run_until(lambda: False, 0.5)
    events = prober.take_events()
    after = prober.probe(ep)
    prober.close()
    assert events == {} and after.ok
    assert srv.connections == 3, "the confirmation connected once, and the next probe anew"


def test_default_path_is_readyz_and_healthz_where_readyz_is_404(servers):
    has_readyz = KeepAliveServer(servers, {"/readyz": 500})  # an apiserver shutting down
    no_readyz = KeepAliveServer(servers, {"/readyz": 404})
    ep1, ep2 = has_readyz.start(), no_readyz.start()
    prober = Prober(ProbeSpec("http"))
    first = prober.probe_all([ep1, ep2])
    second = prober.probe_all([ep1, ep2])
    prober.close()
    assert (first[ep1].ok, first[ep1].reason) == (False, "HTTP 500"), "readyz failing counts"
    assert first[ep2].ok and second[ep2].ok
    assert has_readyz.paths == ["/readyz", "/readyz"]
    assert no_readyz.paths == ["/readyz", "/healthz", "/healthz"], "one 404, then /healthz only"


@pytest.mark.parametrize(
    ("raw", "eof", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False, (200, True)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no", False, None),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False, (200, False)),
        (b"HTTP/1.0 200 OK\r\n\r\nbody", False, (200, False)),
        (b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n", False,
         (500, True)),
        (b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n", False, None),
        (b"HTTP/1.1 204 No Content\r\n\r\n", False, (204, True)),
    ],
)  # fmt: skip
def test_parse_response_knows_when_a_response_is_complete(raw, eof, expected):
    assert parse_response(raw, eof) == expected
