"""The IPVS acceptance scenario, run INSIDE the lab VM (Debian kernel with IPVS, no network card).

Builds three HTTP backends in namespaces on a bridge, runs the lvscare zipapp with
--backend ipvs, and walks the mission's demo: start, stop one, stop all, start all, delete the
virtual service by hand, add a foreign real server, SIGTERM, --clean, then link mode. Each step
prints one `STEP {json}` line (with `ipvsadm -Ln` output) for the pytest side to judge.
Standard library only: the VM has python3 but not this project's packages.

`python3 lvscare_vm_scenario.py bench TRIALS` runs benchmarks/failover's IPVS part instead (see
`bench`): one `BENCH {json}` line per trial and for the CPU figures; benchmarks/failover prints
the table.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

SHARE = os.path.dirname(os.path.abspath(__file__))
PYZ = os.path.join(SHARE, "lvscare.pyz")
VIP, PORT = "10.103.97.12", 6443
NODE_IP = "10.250.110.1"
RS = {f"rs{i}": f"10.250.110.1{i}" for i in (1, 2, 3)}
RS_PORT = 8080
# Under TCG everything is ~20x slower than native: a generous probe timeout avoids flapping.
INTERVAL, TIMEOUT, FALL, RISE = 1.0, 3.0, 2, 1
# The timing step's interval: long, so that one tick more than claimed is this much late.
LONG = 5.0
servers: dict[str, subprocess.Popen] = {}


def sh(*argv: str, check: bool = True) -> str:
    """Run a command, return stdout."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def ipvsadm() -> str:
    """`ipvsadm -Ln` as text."""
    return sh("ipvsadm", "-Ln")


def dests(vip: str = VIP) -> list[str]:
    """Real servers of our virtual service as `IP:PORT Forward Weight` strings."""
    lines, ours = [], False
    for line in ipvsadm().splitlines():
        if line.startswith(("TCP", "UDP", "FWM")):
            ours = line.split()[1] == f"{vip}:{PORT}"
        elif ours and line.strip().startswith("->") and "RemoteAddress" not in line:
            parts = line.split()
            lines.append(f"{parts[1]} {parts[2]} {parts[3]}")
    return lines


def all_weight(count: int) -> bool:
    """True when our service has exactly `count` real servers, all at weight 1."""
    found = dests()
    return len(found) == count and all(d.endswith(" 1") for d in found)


def service_present() -> bool:
    """True when ipvsadm lists our virtual service."""
    return any(
        line.startswith("TCP") and line.split()[1] == f"{VIP}:{PORT}"
        for line in ipvsadm().splitlines()
    )


def wait(cond, limit: float) -> float:
    """Poll `cond` until true; return the seconds it took, or -1 when `limit` passed."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if cond():
            return round(time.monotonic() - start, 2)
        time.sleep(0.25)  # each poll runs ipvsadm: leave the VM's one CPU to lvscare
    return -1.0


def since(start: float, cond, limit: float) -> float:
    """Seconds from `start` until `cond` was first seen true (taken after the check: late rather
    than early), or -1 when not within `limit` seconds of `start`."""
    while True:
        if cond():
            return round(time.monotonic() - start, 2)
        if time.monotonic() - start >= limit:
            return -1.0
        time.sleep(0.25)


def request(timeout: float = 3.0, vip: str = VIP) -> dict:
    """One HTTP GET through the VIP: which backend answered, or the error and its time."""
    start = time.monotonic()
    try:
        with socket.create_connection((vip, PORT), timeout=timeout) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
            data = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        body = data.split(b"\r\n\r\n", 1)[-1].decode().strip()
        return {"ok": True, "backend": body, "seconds": round(time.monotonic() - start, 3)}
    except OSError as exc:
        return {"ok": False, "error": str(exc), "seconds": round(time.monotonic() - start, 3)}


def step(name: str, **data) -> None:
    """Print one result line for pytest."""
    data.update(step=name, ipvsadm=ipvsadm())
    print("STEP " + json.dumps(data), flush=True)


def start_server(name: str, keepalive: bool = False) -> None:
    """An HTTP server in namespace `name` whose page is its own name (`keepalive`: HTTP/1.1
    keep-alive, KEEPALIVE_SERVER; else Python's http.server)."""
    root = f"/tmp/www-{name}"
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write(name + "\n")
    if keepalive:
        serve = ["-c", KEEPALIVE_SERVER, RS[name], str(RS_PORT), root]
    else:
        serve = ["-m", "http.server", "--bind", RS[name], "--directory", root, str(RS_PORT)]
    servers[name] = subprocess.Popen(
        ["ip", "netns", "exec", name, sys.executable, *serve],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def server_up(name: str) -> bool:
    """True when the backend answers directly (not through the VIP)."""
    try:
        socket.create_connection((RS[name], RS_PORT), timeout=0.5).close()
        return True
    except OSError:
        return False


def stop_server(name: str) -> None:
    """Kill one backend by PID and wait for it."""
    proc = servers.pop(name)
    proc.kill()
    proc.wait()


def lvscare(*extra: str, log: str = "/tmp/lvscare.log") -> subprocess.Popen:
    """Start the zipapp with the scenario's settings."""
    argv = [sys.executable, PYZ, "care", "--vs", f"{VIP}:{PORT}"]
    for ip in RS.values():
        argv += ["--rs", f"{ip}:{RS_PORT}"]
    argv += ["--health-schem", "http", "--health-path", "/", "--interval", f"{INTERVAL}s",
             "--health-timeout", f"{TIMEOUT}s", "--fall", str(FALL), "--rise", str(RISE),
             "--backend", "ipvs", *extra]  # fmt: skip
    return subprocess.Popen(argv, stdout=open(log, "a"), stderr=subprocess.STDOUT)


def setup_network() -> None:
    """Bridge lvsbr0 (node address) with three backend namespaces on veths; no route out."""
    sh("ip", "link", "add", "lvsbr0", "type", "bridge")
    sh("ip", "addr", "add", f"{NODE_IP}/24", "dev", "lvsbr0")
    sh("ip", "link", "set", "lvsbr0", "up")
    for name, ip in RS.items():
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", f"v{name}", "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "link", "set", f"v{name}", "master", "lvsbr0", "up")
        sh("ip", "-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        sh("ip", "-n", name, "link", "set", "lo", "up")


def timing() -> None:
    """The timing claims on the kernel's rules: a fresh lvscare with a LONG interval, each action
    taken right after a tick that changed the rules; seconds from the action to each change."""
    care = lvscare("--interval", f"{LONG:g}s", log="/tmp/lvscare-timing.log")
    out: dict = {"interval": LONG, "start": wait(lambda: all_weight(3), 60)}  # tick 0 wrote them
    stop_server("rs2")
    stopped = time.monotonic()
    rs2 = f"{RS['rs2']}:{RS_PORT}"
    out["weight0"] = since(stopped, lambda: f"{rs2} Masq 0" in dests(), 3 * LONG)
    out["removed"] = since(stopped, lambda: not any(d.startswith(rs2) for d in dests()), 4 * LONG)
    stop_server("rs1")
    stop_server("rs3")
    out["all_removed"] = wait(lambda: service_present() and not dests(), 4 * LONG)
    for name in RS:
        start_server(name)
    wait(lambda: all(server_up(n) for n in RS), 30)
    started = time.monotonic()
    out["restored"] = since(started, lambda: all_weight(3), 4 * LONG)
    sh("ipvsadm", "-D", "-t", f"{VIP}:{PORT}")  # right after the tick that restored them
    deleted = time.monotonic()
    out["deleted"] = not service_present()
    out["repaired"] = since(deleted, lambda: all_weight(3), 4 * LONG)
    care.send_signal(signal.SIGTERM)
    care.wait(timeout=30)
    subprocess.run([sys.executable, PYZ, "care", "--vs", f"{VIP}:{PORT}", "--clean"],
                   capture_output=True)  # fmt: skip
    with open("/tmp/lvscare-timing.log") as f:
        out["log"] = f.read()
    step("timing", **out)


def pinned() -> None:
    """A client holding one connection through the VIP (like kubelet's watch) whose real server
    is black-holed: once lvscare removes that server, the client's socket must end at once
    (SOCK_DESTROY) instead of waiting for TCP to give up."""
    conn = socket.create_connection((VIP, PORT), timeout=5)
    port = conn.getsockname()[1]
    out: dict = {"client_port": port}
    victim = ""
    with open("/proc/net/ip_vs_conn") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if len(parts) > 6 and int(parts[2], 16) == port:
                dest = ".".join(str(int(parts[5][i : i + 2], 16)) for i in range(0, 8, 2))
                victim = next((n for n, ip in RS.items() if ip == dest), "")
    out["victim"] = victim
    if victim:
        rules = (
            "table inet blackhole {\n\tchain input {\n\t\ttype filter hook input "
            f"priority -300; policy accept;\n\t\ttcp dport {RS_PORT} drop\n\t}}\n}}\n"
        )
        subprocess.run(["ip", "netns", "exec", victim, "nft", "-f", "-"], input=rules, text=True,
                       check=True)  # fmt: skip
        out["removed"] = wait(lambda: not any(d.startswith(RS[victim] + ":") for d in dests()), 60)
        start = time.monotonic()
        try:
            conn.settimeout(10)
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = conn.recv(4096)
            out["outcome"] = "answered" if data else "closed"
        except OSError as exc:
            out["outcome"] = type(exc).__name__
        out["seconds"] = round(time.monotonic() - start, 2)
        sh("ip", "netns", "exec", victim, "nft", "delete", "table", "inet", "blackhole")
        out["back"] = wait(lambda: all_weight(3), 60)
    conn.close()
    step("pinned", **out)


LOCAL_VIP = "10.103.97.13"
LOCAL_PORTS = (8081, 8082, 8083)


def local_stop_all() -> None:
    """The issue's seed: three HTTP servers on this host's loopback behind the VIP (its route
    goes via lo). All stopped: the virtual server stays, without real servers, and a connect
    must be refused at once (the kernel's answer to IPVS's drop is lost on lo: a client used to
    wait for its timeout). Then `ipvsadm -C` (IPVS has no notifications: repaired at a tick)."""
    local: list[subprocess.Popen] = []
    for port in LOCAL_PORTS:
        root = f"/tmp/www-lo{port}"
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write(f"lo{port}\n")
        local.append(subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", root,
             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
    argv = [sys.executable, PYZ, "care", "--vs", f"{LOCAL_VIP}:{PORT}"]
    argv += [f"--rs=127.0.0.1:{port}" for port in LOCAL_PORTS]
    argv += ["--health-schem", "http", "--health-path", "/", "--interval", f"{INTERVAL}s",
             "--health-timeout", f"{TIMEOUT}s", "--backend", "ipvs"]  # fmt: skip
    care = subprocess.Popen(argv, stdout=open("/tmp/lvscare-local.log", "a"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)  # fmt: skip
    out: dict = {"start": wait(lambda: len(dests(LOCAL_VIP)) == 3, 60)}
    # The route comes right after the rules (the same tick): wait for it too.
    wait(lambda: LOCAL_VIP in sh("ip", "route"), 30)
    out["route"] = sh("ip", "route", "get", LOCAL_VIP, check=False)
    out["before"] = [request(vip=LOCAL_VIP) for _ in range(3)]
    for proc in local:
        proc.kill()
        proc.wait()
    out["emptied"] = wait(lambda: not dests(LOCAL_VIP), 30)
    out["ipvsadm_empty"] = ipvsadm()
    out["requests"] = [request(vip=LOCAL_VIP) for _ in range(2)]
    out["guard"] = sh("nft", "list", "table", "ip", "lvscare_failfast", check=False)
    sh("ipvsadm", "-C")
    cleared = time.monotonic()
    out["repaired_after_clear"] = since(
        cleared, lambda: any(ln.startswith("TCP") and LOCAL_VIP in ln
                             for ln in ipvsadm().splitlines()), 4 * INTERVAL + 10)  # fmt: skip
    care.send_signal(signal.SIGTERM)
    care.wait(timeout=30)
    clean = subprocess.run([sys.executable, PYZ, "care", "--vs", f"{LOCAL_VIP}:{PORT}", "--clean"],
                           capture_output=True, text=True)  # fmt: skip
    out["clean_output"] = clean.stdout + clean.stderr
    out["guard_after_clean"] = sh("nft", "list", "tables", check=False)
    with open("/tmp/lvscare-local.log") as f:
        out["log"] = f.read()
    step("local-stop-all", **out)


def main() -> None:
    """Walk the scenario; every outcome is printed, pytest decides."""
    setup_network()
    for name in RS:
        start_server(name)
    step("servers", up=wait(lambda: all(server_up(n) for n in RS), 30))
    t0 = time.monotonic()
    care = lvscare()
    took = wait(lambda: all_weight(3), 60)
    took_route = wait(lambda: f"{VIP} dev lvsbr0" in sh("ip", "route"), 30)
    step("start", seconds=took, startup=round(time.monotonic() - t0, 2), route=took_route,
         dests=dests(), requests=[request() for _ in range(6)])  # fmt: skip

    stop_server("rs2")
    took = wait(lambda: not any(d.startswith(RS["rs2"] + ":") for d in dests()), 30)
    wait(lambda: all_weight(2), 30)
    step("stop-one", seconds=took, dests=dests(), requests=[request() for _ in range(6)])

    stop_server("rs1")
    stop_server("rs3")
    took = wait(lambda: service_present() and not dests(), 30)
    step("stop-all", seconds=took, dests=dests(), requests=[request() for _ in range(2)])

    for name in RS:
        start_server(name)
    wait(lambda: all(server_up(n) for n in RS), 30)
    took = wait(lambda: all_weight(3), 30)
    step("start-all", seconds=took, dests=dests(), requests=[request() for _ in range(6)])

    sh("ipvsadm", "-D", "-t", f"{VIP}:{PORT}")
    took = wait(lambda: all_weight(3), 30)
    step("delete-service", seconds=took, dests=dests())

    sh("ipvsadm", "-a", "-t", f"{VIP}:{PORT}", "-r", "10.250.110.99:8080", "-m")
    took = wait(lambda: all_weight(3), 30)
    step("foreign-rs", seconds=took, dests=dests())

    pinned()

    care.send_signal(signal.SIGTERM)
    rc = care.wait(timeout=30)
    step("sigterm", rc=rc, dests=dests(), requests=[request() for _ in range(3)])

    clean = subprocess.run(
        [sys.executable, PYZ, "care", "--vs", f"{VIP}:{PORT}", "--clean"],
        capture_output=True, text=True,
    )  # fmt: skip
    step("clean", rc=clean.returncode, present=service_present(), routes=sh("ip", "route"),
         output=clean.stdout + clean.stderr)  # fmt: skip

    care = lvscare("--mode", "link", log="/tmp/lvscare-link.log")
    took = wait(lambda: all_weight(3), 60)
    wait(lambda: VIP in sh("ip", "-brief", "addr", "show", "dev", "lvscare0", check=False), 30)
    link_requests = [request() for _ in range(3)]
    care.send_signal(signal.SIGTERM)
    care.wait(timeout=30)
    addrs = sh("ip", "-brief", "addr", "show", "dev", "lvscare0", check=False)
    clean = subprocess.run(
        [sys.executable, PYZ, "care", "--vs", f"{VIP}:{PORT}", "--clean"],
        capture_output=True, text=True,
    )  # fmt: skip
    step("link-mode", seconds=took, requests=link_requests, addrs=addrs, clean_rc=clean.returncode,
         after_clean=sh("ip", "link", "show", "lvscare0", check=False) + ipvsadm())  # fmt: skip

    timing()
    local_stop_all()

    for name in list(servers):
        stop_server(name)
    with open("/tmp/lvscare.log") as f:
        log = f.read()
    with open("/tmp/lvscare-link.log") as f:
        log += f.read()
    print("STEP " + json.dumps({"step": "log", "text": log, "ipvsadm": ""}), flush=True)


# --- benchmarks/failover's IPVS part ------------------------------------------------------------

# A keep-alive HTTP/1.1 server (as an apiserver keeps its clients' connections), quiet.
KEEPALIVE_SERVER = r"""
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])),
                                         functools.partial(Handler, directory=sys.argv[3]))
server.serve_forever()
"""
ATTEMPT_PERIOD, ATTEMPT_TIMEOUT = 0.1, 3.0
# What a failed new connection that reached the dead real server ends with, per case.
REACHED = {"killed": ("ConnectionRefusedError", "ConnectionResetError"),
           "black-holed": ("TimeoutError", "ConnectionAbortedError")}  # fmt: skip
BENCH_BLACKHOLE = (
    "table inet benchhole {\n\tchain input {\n\t\ttype filter hook input "
    f"priority -300; policy accept;\n\t\ttcp dport {RS_PORT} drop\n\t}}\n}}\n"
)


def _hex_endpoint(ip: str, port: int) -> str:
    return "".join(f"{int(x):02X}" for x in ip.split(".")) + f":{port:04X}"


def proc_dests() -> dict[str, str]:
    """The VIP's real servers from /proc/net/ip_vs (a file read: cheap enough to poll every
    50 ms in a TCG guest, unlike ipvsadm): IP -> weight."""
    vs, found, ours = _hex_endpoint(VIP, PORT), {}, False
    with open("/proc/net/ip_vs") as f:
        for line in f.readlines()[3:]:
            parts = line.split()
            if parts and parts[0] in ("TCP", "UDP", "FWM"):
                ours = parts[1] == vs
            elif ours and parts and parts[0] == "->":
                addr = parts[1].split(":")[0]
                ip = ".".join(str(int(addr[i : i + 2], 16)) for i in range(0, 8, 2))
                found[ip] = parts[3]
    return found


def since_fast(start: float, cond, limit: float) -> float | None:
    """Seconds from `start` until `cond` held (polled every 50 ms), or None after `limit`."""
    while time.monotonic() - start < limit:
        if cond():
            return round(time.monotonic() - start, 3)
        time.sleep(0.05)
    return None


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    """A new connection through the VIP every ATTEMPT_PERIOD (in a thread with its own event
    loop); each attempt is kept as (monotonic start, ok, backend or error class)."""

    def __init__(self) -> None:
        self.attempts: list[tuple[float, bool, str]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()

    async def _attempt(self) -> None:
        start = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(VIP, PORT), ATTEMPT_TIMEOUT
            )
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), ATTEMPT_TIMEOUT)
            writer.close()
            result = (start, True, data.split(b"\r\n\r\n", 1)[-1].decode().strip() or "empty")
        except Exception as exc:
            result = (start, False, type(exc).__name__)
        with self.lock:
            self.attempts.append(result)

    async def _main(self) -> None:
        tasks: set = set()
        while not self.stop.is_set():
            task = asyncio.ensure_future(self._attempt())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(ATTEMPT_PERIOD)
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=ATTEMPT_TIMEOUT + 5)


def bench_trial(client: Client, kind: str, name: str) -> dict:
    """Kill or black-hole `name` at a random phase against lvscare's ticks; the kernel's view
    (weight 0, removed: /proc/net/ip_vs) and the client's (its last new connection that reached
    the dead server; None when none did: missing, never 0)."""
    time.sleep(random.uniform(0.0, INTERVAL))
    ip = RS[name]
    dead = time.monotonic()
    if kind == "killed":
        stop_server(name)
    else:
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=BENCH_BLACKHOLE,
                       text=True, check=True)  # fmt: skip
    weight0 = since_fast(dead, lambda: proc_dests().get(ip, "0") == "0", 30)
    removed = since_fast(dead, lambda: ip not in proc_dests(), 30)
    time.sleep(ATTEMPT_TIMEOUT + 0.5)  # attempts still in flight resolve
    with client.lock:
        failed = [at for at, ok, detail in client.attempts
                  if at >= dead and not ok and detail in REACHED[kind]]  # fmt: skip
    if kind == "killed":
        start_server(name, keepalive=True)
    else:
        sh("ip", "netns", "exec", name, "nft", "delete", "table", "inet", "benchhole")
    back = wait(lambda: all_weight(3), 60)
    return {"kind": kind, "name": name, "weight0": weight0, "removed": removed,
            "vip": round(max(failed) - dead, 3) if failed else None, "back": back}  # fmt: skip


def bench_pinned() -> dict:
    """A kept-alive client (kubelet's watch): one HTTP/1.1 connection through the VIP, a request
    every 0.1 s; its server is black-holed; seconds until the client's connection fails (lvscare
    ends connections to a real server it removes; without that, TCP or the client gives up)."""
    import http.client

    conn = http.client.HTTPConnection(VIP, PORT, timeout=60)
    conn.request("GET", "/")
    name = conn.getresponse().read().decode().strip()
    subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=BENCH_BLACKHOLE,
                   text=True, check=True)  # fmt: skip
    dead = time.monotonic()
    how, stuck = "no error", None
    while time.monotonic() - dead < 60:
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
        except Exception as exc:
            stuck, how = round(time.monotonic() - dead, 3), type(exc).__name__
            break
        time.sleep(0.1)
    conn.close()
    sh("ip", "netns", "exec", name, "nft", "delete", "table", "inet", "benchhole")
    wait(lambda: all_weight(3), 60)
    return {"kind": "pinned", "name": name, "stuck": stuck, "how": how}


def bench(trials: int, cpu_window: float) -> None:
    """benchmarks/failover's IPVS part: lvscare --backend ipvs with the scenario's settings,
    3 keep-alive real servers; CPU idle, trials of each case with a client making a new
    connection every ATTEMPT_PERIOD, kept-alive client trials, CPU over all of that."""
    setup_network()
    for name in RS:
        start_server(name, keepalive=True)
    wait(lambda: all(server_up(n) for n in RS), 30)
    care = lvscare(log="/tmp/lvscare-bench.log")
    if wait(lambda: all_weight(3), 120) < 0:
        with open("/tmp/lvscare-bench.log") as f:
            log = f.read()[-3000:]
        raise RuntimeError(f"lvscare did not set up three real servers:\n{ipvsadm()}\n{log}")
    settings = {"interval": INTERVAL, "timeout": TIMEOUT, "fall": FALL, "rise": RISE}
    print("BENCH " + json.dumps({"kind": "settings", **settings}), flush=True)
    used, t0 = cpu_seconds(care.pid), time.monotonic()
    time.sleep(cpu_window)
    print("BENCH " + json.dumps({"kind": "cpu", "what": "3 real servers, idle",
                                 "used": cpu_seconds(care.pid) - used,
                                 "span": time.monotonic() - t0}), flush=True)  # fmt: skip
    client = Client()
    used, t0 = cpu_seconds(care.pid), time.monotonic()
    names = list(RS)
    for kind in ("killed", "black-holed"):
        for i in range(trials):
            print("BENCH " + json.dumps(bench_trial(client, kind, names[i % 3])), flush=True)
    client.close()
    for _ in range(min(trials, 3)):
        print("BENCH " + json.dumps(bench_pinned()), flush=True)
    print("BENCH " + json.dumps({"kind": "cpu", "what": "3 real servers, client + failures",
                                 "used": cpu_seconds(care.pid) - used,
                                 "span": time.monotonic() - t0}), flush=True)  # fmt: skip
    care.send_signal(signal.SIGTERM)
    care.wait(timeout=30)
    for name in list(servers):
        stop_server(name)


if __name__ == "__main__":
    if sys.argv[1:2] == ["bench"]:
        bench(int(sys.argv[2]), float(sys.argv[3]))
    else:
        main()
