"""Acceptance 2 of lvscare: the nftables backend for real, on this machine's kernel.

A "node" namespace and three backend namespaces with real HTTP servers on an isolated bridge
(sealos_lab.netns, 10.250.100.0/24, no route out). lvscare runs in the node namespace; requests
go through the VIP from there; `nft list ruleset` is the independent observer.
Each test gets its own lvscare process (and its own log), started with all three backends healthy
and no lvscare rules: one failure cannot carry over into the next test.
Deadlines below are generous functional limits (a change must happen at all), not speed checks.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import pytest

from sealos_lab import netns

pytestmark = pytest.mark.root

PREFIX, SUBNET = "lvs-it", "10.250.100.0/24"
VIP = "10.250.100.100"
PORT = 6443
RS_PORT = 8080
INTERVAL, TIMEOUT, FALL, RISE = 0.25, 1.0, 2, 1
# The timing claims ("within fall/rise intervals", "within one interval") are judged on the
# kernel's rules with a long interval, acting right after a tick: one tick more than claimed is
# LONG seconds late, far past SLACK (lvscare's probes and nft write, this test's polling).
LONG, SLACK = 3.0, 1.0

# A backend: answers its own name on /, and /healthz and /readyz with 503 while its "down" file
# exists. While its "down.shutdown" file exists it is an apiserver in graceful shutdown (its
# --shutdown-delay-duration): /readyz fails, /healthz still says ok, and it still serves.
# HTTP/1.1 keep-alive, so one client connection can make several requests.
BACKEND = r"""
import http.server, os, sys
name, ip, port, down = sys.argv[1:5]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        sick = self.path in ("/healthz", "/readyz") and os.path.exists(down)
        sick = sick or self.path == "/readyz" and os.path.exists(down + ".shutdown")
        body = b"sick\n" if sick else (name + "\n").encode()
        self.send_response(503 if sick else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
if ":" in ip:
    http.server.ThreadingHTTPServer.address_family = __import__("socket").AF_INET6
server = http.server.ThreadingHTTPServer((ip, int(port)), Handler)
print("ready", flush=True)
server.serve_forever()
"""

# A client in the node namespace: N requests through the VIP, one JSON line per request.
CLIENT = r"""
import json, socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(count):
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=3) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        out = {"ok": True, "backend": data.split(b"\r\n\r\n", 1)[-1].decode().strip()}
    except OSError as exc:
        out = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}
    out["seconds"] = round(time.monotonic() - start, 3)
    print(json.dumps(out), flush=True)
"""

# A client holding ONE keep-alive connection: a request now, another after a line on stdin.
HOLDER = r"""
import http.client, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5)
for _ in range(2):
    conn.request("GET", "/")
    print(conn.getresponse().read().decode().strip(), flush=True)
    sys.stdin.readline()
"""


# A client pinned to one backend by ONE keep-alive connection (like kubelet's watch): a request,
# then after a line on stdin another one on the same connection, timed, as a JSON line.
PINNED = r"""
import http.client, json, sys, time
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5)
conn.request("GET", "/")
print(conn.getresponse().read().decode().strip(), flush=True)
sys.stdin.readline()
start = time.monotonic()
try:
    conn.request("GET", "/")
    out = {"ok": True, "backend": conn.getresponse().read().decode().strip()}
except Exception as exc:
    out = {"ok": False, "error": type(exc).__name__}
out["seconds"] = round(time.monotonic() - start, 3)
print(json.dumps(out), flush=True)
"""

BLACKHOLE = (
    "table inet lvsit_blackhole {\n"
    "\tchain input {\n"
    "\t\ttype filter hook input priority -300; policy accept;\n"
    f"\t\ttcp dport {RS_PORT} drop\n"
    "\t}\n"
    "}\n"
)


class Site:
    """The isolated network, its backend processes and helpers to drive them."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.net = netns.Network(PREFIX, SUBNET)
        self.backend_py = tmp / "backend.py"
        self.backend_py.write_text(BACKEND)
        self.client_py = tmp / "client.py"
        self.client_py.write_text(CLIENT)
        self.servers: dict[str, subprocess.Popen] = {}
        self.ips: dict[str, str] = {}
        self.node = ""

    def create(self) -> None:
        self.net.destroy()
        self.net.create()
        self.node = self.net.add_host("node", 2).netns
        for i in (1, 2, 3):
            self.ips[f"rs{i}"] = self.net.add_host(f"rs{i}", 10 + i).ip

    def start(self, *names: str) -> None:
        """Start backends (at once) and return when each of them listens."""
        for name in names:
            argv = [sys.executable, str(self.backend_py), name, self.ips[name], str(RS_PORT),
                    str(self.tmp / f"{name}.down")]  # fmt: skip
            proc = netns.popen(f"{PREFIX}-{name}", argv, stdout=subprocess.PIPE, text=True)
            self.servers[name] = proc
        for name in names:
            out = self.servers[name].stdout
            assert out is not None
            ready, _, _ = select.select([out], [], [], 20)
            assert ready and out.readline().strip() == "ready", f"backend {name} did not start"

    def healthy(self) -> None:
        """All three backends running and answering 200 on /healthz."""
        for name in self.ips:
            (self.tmp / f"{name}.down").unlink(missing_ok=True)
            (self.tmp / f"{name}.down.shutdown").unlink(missing_ok=True)
        for name, proc in list(self.servers.items()):
            if proc.poll() is not None:
                del self.servers[name]
        self.start(*(name for name in self.ips if name not in self.servers))

    def stop(self, name: str) -> None:
        proc = self.servers.pop(name)
        proc.kill()
        proc.wait()

    def stop_all(self) -> None:
        for name in list(self.servers):
            self.stop(name)

    def requests(self, count: int) -> list[dict]:
        out = netns.run(
            self.node, [sys.executable, str(self.client_py), VIP, str(PORT), str(count)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return [json.loads(line) for line in out.stdout.splitlines()]

    def nft(self, *args: str, check: bool = True) -> str:
        proc = netns.run(self.node, ["nft", *args], capture_output=True, text=True)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def ruleset(self) -> str:
        return self.nft("list", "ruleset")

    def lvscare(
        self, *extra: str, log: Path, interval: float = INTERVAL, path: Optional[str] = "/healthz"
    ) -> subprocess.Popen:
        argv = [sys.executable, "-m", "lvscare", "care", "--vs", f"{VIP}:{PORT}"]
        for ip in self.ips.values():
            argv += ["--rs", f"{ip}:{RS_PORT}"]
        argv += ["--health-path", path] if path else []
        argv += ["--health-schem", "http",
                 "--interval", f"{interval:g}s", "--health-timeout", f"{TIMEOUT}s",
                 "--fall", str(FALL), "--rise", str(RISE), "--backend", "nft", *extra]  # fmt: skip
        with log.open("a") as out:  # the child keeps its own copy of the descriptor
            return netns.popen(self.node, argv, stdout=out, stderr=subprocess.STDOUT)

    def leftovers(self) -> bool:
        """True when lvscare's table, route or address for the VIP is in the node namespace."""
        tables = self.nft("list", "tables")
        ip = [netns.run(self.node, ["ip", *args], capture_output=True, text=True).stdout
              for args in (["route"], ["-brief", "addr"])]  # fmt: skip
        return "lvscare" in tables or any(VIP in out for out in ip)

    def clean(self) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "lvscare", "care", "--vs", f"{VIP}:{PORT}", "--clean"]
        return netns.run(self.node, argv, capture_output=True, text=True, timeout=60)

    def destroy(self) -> None:
        self.stop_all()
        self.net.destroy()


def dnat_targets(ruleset: str) -> list[str]:
    """The real servers in lvscare's round robin, as `nft list ruleset` prints them."""
    m = re.search(r"dnat ip to numgen inc mod \d+ map \{ (.*?) \}", ruleset)
    pairs = re.findall(r"\d+ : ([\d.]+) \. (\d+)", m.group(1)) if m else []
    return [f"{ip}:{port}" for ip, port in pairs]


def drained(ruleset: str) -> list[str]:
    """The real servers in lvscare's weight-0 set."""
    m = re.search(r"set weight0 \{.*?elements = \{ (.*?) \}", ruleset, re.S)
    pairs = re.findall(r"([\d.]+) \. (\d+)", m.group(1)) if m else []
    return [f"{ip}:{port}" for ip, port in pairs]


def wait_for(cond, limit: float = 15.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def first_seen(cond: Callable[[], bool], deadline: float) -> Optional[float]:
    """When (time.monotonic()) `cond` was first seen true, polling until `deadline`; None if not
    by then. The time is taken after the check: late rather than early."""
    while True:
        if cond():
            return time.monotonic()
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    s = Site(tmp_path_factory.mktemp("lvscare-it"))
    try:
        s.create()
        for name in ("rs1", "rs2", "rs3"):
            s.start(name)
        yield s
    finally:
        s.destroy()


class Care:
    """One lvscare process of one test, and its own log."""

    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc, self.log_path = proc, log_path

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def fresh(site) -> Site:
    """The site as every test starts: three healthy backends, no lvscare rules or routes (what
    an earlier test left is cleaned here; `lvscare --clean` only when needed, it costs 0.3 s)."""
    if site.leftovers():
        assert site.clean().returncode == 0
    site.healthy()
    assert not site.leftovers(), site.ruleset()
    return site


@pytest.fixture
def lvscare(fresh, request) -> Iterator[Callable[..., Care]]:
    """Starts lvscare processes of this test only; they are stopped (by PID) when it ends."""
    started: list[Care] = []

    def start(*extra: str, interval: float = INTERVAL, path: Optional[str] = "/healthz") -> Care:
        log = fresh.tmp / f"{request.node.name}-{len(started)}.log"
        started.append(Care(fresh.lvscare(*extra, log=log, interval=interval, path=path), log))
        return started[-1]

    try:
        yield start
    finally:
        for one in started:
            if one.proc.poll() is None:
                one.proc.kill()
            one.proc.wait()


@pytest.fixture
def care(site, lvscare) -> Care:
    """This test's lvscare, its rules in place: all three real servers in the round robin."""
    one = lvscare()
    assert wait_for(lambda: len(dnat_targets(site.ruleset())) == 3), one.log()
    return one


def rs(site: Site, name: str) -> str:
    return f"{site.ips[name]}:{RS_PORT}"


def test_start_round_robins_over_all_three(site, care):
    assert wait_for(lambda: len(dnat_targets(site.ruleset())) == 3), care.log()
    assert sorted(dnat_targets(site.ruleset())) == sorted(rs(site, n) for n in site.ips)
    answers = [r.get("backend") for r in site.requests(9)]
    assert sorted(answers) == ["rs1"] * 3 + ["rs2"] * 3 + ["rs3"] * 3
    routes = netns.run(site.node, ["ip", "route"], capture_output=True, text=True).stdout
    assert f"{VIP} dev eth0 proto 247 scope link src {site.net.address(2)}" in routes


def test_stop_one_is_at_weight_0_at_once_and_gone_within_fall_intervals(site, lvscare):
    care = lvscare(interval=LONG)
    assert wait_for(lambda: len(dnat_targets(site.ruleset())) == 3), care.log()
    # lvscare's first tick has just written the rules: the next ones come LONG, 2 * LONG later.
    target = rs(site, "rs2")
    site.stop("rs2")
    stopped = time.monotonic()

    def at_weight_0() -> bool:
        rules = site.ruleset()
        return target in drained(rules) and target not in dnat_targets(rules)

    # The first failed probe (the next tick) sets weight 0: no new connections.
    drained_at = first_seen(at_weight_0, stopped + LONG + SLACK)
    assert drained_at is not None, f"not at weight 0 within one interval: {site.ruleset()}"
    # The FALL-th failed probe removes it: FALL intervals after the stop, not earlier.
    gone_at = first_seen(
        lambda: site.ips["rs2"] not in site.ruleset(), stopped + FALL * LONG + SLACK
    )
    assert gone_at is not None, f"still in the rules {FALL} intervals after: {site.ruleset()}"
    assert gone_at - drained_at > (FALL - 1) * LONG - SLACK, (
        f"removed {gone_at - drained_at:.2f} s after weight 0: before failed probe number {FALL}"
    )
    assert sorted(dnat_targets(site.ruleset())) == sorted([rs(site, "rs1"), rs(site, "rs3")])
    results = site.requests(12)
    assert all(r["ok"] for r in results), results
    assert {r["backend"] for r in results} == {"rs1", "rs3"}
    lines = [ln for ln in care.log().splitlines() if target in ln]
    assert any(f"removed {target} from {VIP}:{PORT}: 2 consecutive failed probes" in ln
               for ln in lines), lines  # fmt: skip


def test_stop_all_fails_fast(site, care):
    site.stop_all()
    assert wait_for(lambda: "dnat" not in site.ruleset()), site.ruleset()
    assert "reject with tcp reset" in site.ruleset()
    for result in site.requests(3):
        assert not result["ok"]
        assert result["error"].startswith("ConnectionRefusedError"), result


def test_start_all_brings_all_three_back_within_rise_intervals(site, lvscare):
    site.stop_all()
    care = lvscare(interval=LONG)

    def all_removed() -> bool:
        rules = site.ruleset()
        return "reject with tcp reset" in rules and not dnat_targets(rules) and not drained(rules)

    # Every probe fails: weight 0 at the first tick, removed at the FALL-th; we act right after.
    assert wait_for(all_removed, FALL * LONG + 5), care.log()
    site.start("rs1", "rs2", "rs3")
    started = time.monotonic()
    back_at = first_seen(lambda: len(dnat_targets(site.ruleset())) == 3,
                         started + RISE * LONG + SLACK)  # fmt: skip
    assert back_at is not None, f"not all back within {RISE} interval(s): {site.ruleset()}"
    assert {r.get("backend") for r in site.requests(6)} == {"rs1", "rs2", "rs3"}
    for name in ("rs1", "rs2", "rs3"):
        assert (
            f"restored {rs(site, name)} in {VIP}:{PORT} with weight 1: "
            "1 consecutive successful probe (HTTP 200)"
        ) in care.log()


# Event-driven claims: with an interval this long, waiting for the next tick cannot pass EVENT.
VERY_LONG, EVENT = 10.0, 1.0


def test_killed_backend_leaves_the_round_robin_before_the_next_tick(site, lvscare):
    """The kernel closes a killed server's kept health connection; lvscare confirms with one
    fresh connect and sets weight 0 at once, not at the next tick VERY_LONG seconds away."""
    care = lvscare(interval=VERY_LONG)
    assert wait_for(lambda: len(dnat_targets(site.ruleset())) == 3), care.log()
    target = rs(site, "rs2")
    site.stop("rs2")  # SIGKILL
    stopped = time.monotonic()
    out_at = first_seen(lambda: target not in dnat_targets(site.ruleset()), stopped + EVENT)
    assert out_at is not None, f"still in the round robin {EVENT} s after the kill: {care.log()}"
    assert target in drained(site.ruleset()), "weight 0 (no new connections), removal after fall"
    results = site.requests(6)
    assert all(r["ok"] for r in results) and {r["backend"] for r in results} == {"rs1", "rs3"}
    assert f"{target} weight 0 in {VIP}:{PORT}: probe failed (connection closed by the " in (
        care.log()
    )


def test_apiserver_in_graceful_shutdown_leaves_before_it_stops_accepting(site, lvscare):
    """No --health-path: lvscare probes /readyz. An apiserver in its shutdown delay fails
    /readyz while /healthz says ok and it still serves: it must be out of the rules before the
    delay ends and it stops accepting."""
    care = lvscare(interval=1.0, path=None)
    assert wait_for(lambda: len(dnat_targets(site.ruleset())) == 3), care.log()
    delay = 4.0  # its --shutdown-delay-duration; fall 2 at 1 s intervals needs about 2 s
    target = rs(site, "rs2")
    (site.tmp / "rs2.down.shutdown").touch()
    shutdown = time.monotonic()
    gone_at = first_seen(lambda: site.ips["rs2"] not in site.ruleset(), shutdown + delay)
    still_serving = [r["backend"] for r in site.requests(3)]
    site.stop("rs2")  # the delay is over: it stops accepting
    assert gone_at is not None, f"still in the rules when it stopped accepting: {care.log()}"
    assert "rs2" not in still_serving and all(still_serving), still_serving
    assert f"removed {target} from {VIP}:{PORT}: 2 consecutive failed probes (HTTP 503)" in (
        care.log()
    )


def test_flush_and_deleted_route_are_repaired_without_waiting_for_the_tick(site, lvscare):
    """`nft flush ruleset` (what `systemctl restart nftables` runs) and a deleted VIP route are
    noticed through netlink notifications and repaired at once, not VERY_LONG seconds later."""
    care = lvscare(interval=VERY_LONG)
    assert wait_for(lambda: len(dnat_targets(site.ruleset())) == 3), care.log()
    site.nft("flush", "ruleset")
    flushed = time.monotonic()
    back_at = first_seen(lambda: len(dnat_targets(site.ruleset())) == 3, flushed + EVENT)
    assert back_at is not None, f"not repaired {EVENT} s after the flush: {site.ruleset()}"
    assert f"repaired virtual server {VIP}:{PORT}: it was missing from the kernel" in care.log()
    site.nft("delete", "table", "ip", "lvscare")
    deleted = time.monotonic()
    assert first_seen(lambda: len(dnat_targets(site.ruleset())) == 3, deleted + EVENT), (
        site.ruleset()
    )

    def route() -> str:
        return netns.run(site.node, ["ip", "route"], capture_output=True, text=True).stdout

    netns.run(site.node, ["ip", "route", "del", f"{VIP}/32"], check=True)
    removed = time.monotonic()
    assert first_seen(lambda: VIP in route(), removed + EVENT), f"route not back: {route()}"
    assert f"repaired route {VIP}/32 dev eth0" in care.log()
    assert all(r["ok"] for r in site.requests(3))


def test_connection_pinned_to_a_removed_black_holed_server_ends_at_once(site, lvscare):
    """A kept-alive client through the VIP stays on its backend (conntrack). When that backend
    is black-holed and lvscare removes it, lvscare ends the connection (SOCK_DESTROY of the
    local socket): the client's next request fails at once instead of hanging until its
    timeout, and a new connection goes to a live backend."""
    care = lvscare()
    holder = None
    victim = ""
    try:
        assert wait_for(lambda: len(dnat_targets(site.ruleset())) == 3), care.log()
        holder = netns.popen(
            site.node, [sys.executable, "-c", PINNED, VIP, str(PORT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdin is not None and holder.stdout is not None
        victim = holder.stdout.readline().strip()
        assert victim in site.ips, victim
        proc = netns.run(f"{PREFIX}-{victim}", ["nft", "-f", "-"], input=BLACKHOLE,
                         capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert wait_for(lambda: site.ips[victim] not in site.ruleset(), 10), care.log()
        holder.stdin.write("\n")
        holder.stdin.flush()
        second = json.loads(holder.stdout.readline())
        assert not second["ok"] and second["error"] != "TimeoutError", second
        assert second["seconds"] < 1.0, f"the pinned client waited {second['seconds']} s"
        assert f"ended 1 connection through {VIP}:{PORT} still going to removed " in care.log()
        results = site.requests(3)
        assert all(r["ok"] for r in results) and victim not in {r["backend"] for r in results}
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        if victim:
            netns.run(f"{PREFIX}-{victim}", ["nft", "delete", "table", "inet", "lvsit_blackhole"],
                      capture_output=True)  # fmt: skip


def test_foreign_element_and_rule_are_removed(site, care):
    site.nft("add", "element", "ip", "lvscare", "weight0", "{ 10.250.100.99 . 80 }")
    assert wait_for(lambda: "10.250.100.99" not in site.ruleset()), site.ruleset()
    assert f"removed foreign real server 10.250.100.99:80 from {VIP}:{PORT}" in care.log()
    site.nft("add", "rule", "ip", "lvscare", "output", "counter", "comment", '"stranger"')
    assert wait_for(lambda: "stranger" not in site.ruleset()), site.ruleset()
    assert "chain output holds a rule lvscare did not write" in care.log()
    assert len(dnat_targets(site.ruleset())) == 3


def test_sigterm_keeps_the_rules_and_traffic(site, care):
    care.proc.send_signal(signal.SIGTERM)
    assert care.proc.wait(timeout=10) == 0
    assert "stopping on SIGTERM; rules stay in place" in care.log()
    assert len(dnat_targets(site.ruleset())) == 3
    assert {r.get("backend") for r in site.requests(6)} == {"rs1", "rs2", "rs3"}


def test_clean_removes_everything_lvscare_made(site, care):
    care.proc.send_signal(signal.SIGTERM)
    assert care.proc.wait(timeout=10) == 0
    assert len(dnat_targets(site.ruleset())) == 3, "nothing for clean to remove: a test of nothing"
    proc = site.clean()
    assert proc.returncode == 0, proc.stderr
    assert "table ip lvscare" not in site.ruleset()
    routes = netns.run(site.node, ["ip", "route"], capture_output=True, text=True).stdout
    assert VIP not in routes
    assert "removed nft virtual server" in proc.stderr and f"removed route {VIP}/32" in proc.stderr


def test_weight_0_lets_existing_connections_live_on(site, lvscare):
    care = lvscare("--fall", "3")
    holder = None
    try:
        assert wait_for(lambda: len(dnat_targets(site.ruleset())) == 3), care.log()
        holder = netns.popen(
            site.node, [sys.executable, "-c", HOLDER, VIP, str(PORT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdin is not None and holder.stdout is not None
        first = holder.stdout.readline().strip()
        (site.tmp / f"{first}.down").touch()  # its health check now answers 503
        assert wait_for(lambda: rs(site, first) in drained(site.ruleset())), site.ruleset()
        assert rs(site, first) not in dnat_targets(site.ruleset())
        answers = {r.get("backend") for r in site.requests(6)}
        assert first not in answers, "no new connections to a weight-0 server"
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == first, "the open connection still reaches it"
    finally:
        for name in ("rs1", "rs2", "rs3"):
            (site.tmp / f"{name}.down").unlink(missing_ok=True)
        if holder is not None:
            holder.kill()
            holder.wait()


def test_run_once_reconciles_once_and_exits_0(fresh):
    site = fresh
    proc = netns.run(
        site.node,
        [sys.executable, "-m", "lvscare", "care", "--vs", f"{VIP}:{PORT}",
         *[f"--rs={ip}:{RS_PORT}" for ip in site.ips.values()],
         "--health-schem", "http", "--backend", "nft", "--run-once"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        assert len(dnat_targets(site.ruleset())) == 3
    finally:
        site.clean()


def test_link_mode_puts_the_vip_on_a_dummy_link_and_masquerades(site, lvscare):
    care = lvscare("--mode", "link")
    try:
        assert wait_for(
            lambda: len(dnat_targets(site.ruleset())) == 3
            and "table ip lvscare_vip" in site.ruleset()
            and f"{VIP}/32" in netns.run(site.node, ["ip", "-brief", "addr"],
                                         capture_output=True, text=True).stdout
        ), care.log()  # fmt: skip
        assert {r.get("backend") for r in site.requests(6)} == {"rs1", "rs2", "rs3"}
    finally:
        care.proc.send_signal(signal.SIGTERM)
        care.proc.wait(timeout=10)
        clean = site.clean()
    assert clean.returncode == 0
    # This machine's kernel has no dummy driver: lvscare puts the VIP on lo instead.
    addresses = netns.run(site.node, ["ip", "addr"], capture_output=True, text=True).stdout
    assert "lvscare0" not in addresses and f"{VIP}/32" not in addresses
    assert "lvscare" not in site.ruleset()


def test_the_missions_demo_with_backends_on_the_nodes_loopback(fresh):
    """`--rs 127.0.0.1:8081 --rs 127.0.0.1:8082 --rs 127.0.0.1:8083`, as in the mission's text."""
    site = fresh
    vip = "10.250.100.101"
    servers = []
    try:
        for port in (8081, 8082, 8083):
            argv = [sys.executable, str(site.backend_py), f"lo{port}", "127.0.0.1", str(port),
                    str(site.tmp / "never")]  # fmt: skip
            proc = netns.popen(site.node, argv, stdout=subprocess.PIPE, text=True)
            servers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        once = netns.run(
            site.node,
            [sys.executable, "-m", "lvscare", "care", "--vs", f"{vip}:{PORT}",
             "--rs", "127.0.0.1:8081", "--rs", "127.0.0.1:8082", "--rs", "127.0.0.1:8083",
             "--health-schem", "http", "--health-path", "/", "--backend", "nft", "--run-once"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert once.returncode == 0, once.stderr
        routes = netns.run(site.node, ["ip", "route"], capture_output=True, text=True).stdout
        assert f"{vip} dev lo proto 247 scope link src 127.0.0.1" in routes
        out = netns.run(
            site.node, [sys.executable, str(site.client_py), vip, str(PORT), "6"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        answers = sorted(json.loads(line).get("backend") for line in out.stdout.splitlines())
        assert answers == ["lo8081", "lo8081", "lo8082", "lo8082", "lo8083", "lo8083"]
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        netns.run(site.node, [sys.executable, "-m", "lvscare", "care", "--vs", f"{vip}:{PORT}",
                              "--clean"], capture_output=True)  # fmt: skip


def test_ipv6_virtual_server(fresh):
    """The same over IPv6: `table ip6 lvscare`, a /128 route, requests through [VIP]."""
    site = fresh
    vip6 = "fd00:250:100::100"
    ips6 = {name: f"fd00:250:100::{11 + i}" for i, name in enumerate(("rs1", "rs2", "rs3"))}
    netns.run(site.node, ["ip", "addr", "add", "fd00:250:100::2/64", "dev", "eth0", "nodad"],
              check=True)  # fmt: skip
    servers = []
    try:
        for name, ip in ips6.items():
            netns.run(f"{PREFIX}-{name}", ["ip", "addr", "add", f"{ip}/64", "dev", "eth0",
                                           "nodad"], check=True)  # fmt: skip
            argv = [sys.executable, str(site.backend_py), f"{name}v6", ip, str(RS_PORT),
                    str(site.tmp / "never")]  # fmt: skip
            proc = netns.popen(f"{PREFIX}-{name}", argv, stdout=subprocess.PIPE, text=True)
            servers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        once = netns.run(
            site.node,
            [sys.executable, "-m", "lvscare", "care", "--vs", f"[{vip6}]:{PORT}",
             *[f"--rs=[{ip}]:{RS_PORT}" for ip in ips6.values()],
             "--health-schem", "http", "--health-path", "/", "--backend", "nft", "--run-once"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert once.returncode == 0, once.stderr
        table = site.nft("list", "table", "ip6", "lvscare")
        assert f"ip6 daddr {vip6} tcp dport {PORT} dnat ip6 to numgen inc mod 3" in table
        routes = netns.run(site.node, ["ip", "-6", "route"], capture_output=True, text=True)
        assert f"{vip6} dev eth0 proto 247" in routes.stdout
        out = netns.run(
            site.node, [sys.executable, str(site.client_py), vip6, str(PORT), "6"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        answers = sorted(json.loads(line).get("backend") for line in out.stdout.splitlines())
        assert answers == ["rs1v6", "rs1v6", "rs2v6", "rs2v6", "rs3v6", "rs3v6"]
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        netns.run(site.node, [sys.executable, "-m", "lvscare", "care", "--vs",
                              f"[{vip6}]:{PORT}", "--clean"], capture_output=True)  # fmt: skip
    assert "lvscare" not in site.nft("list", "tables")
