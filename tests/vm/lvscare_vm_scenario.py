"""The IPVS acceptance scenario, run INSIDE the lab VM (Debian kernel with IPVS, no network card).

Builds three HTTP backends in namespaces on a bridge, runs the lvscare zipapp with
--backend ipvs, and walks the mission's demo: start, stop one, stop all, start all, delete the
virtual service by hand, add a foreign real server, SIGTERM, --clean, then link mode. Each step
prints one `STEP {json}` line (with `ipvsadm -Ln` output) for the pytest side to judge.
Standard library only: the VM has python3 but not this project's packages.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
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


def start_server(name: str) -> None:
    """An HTTP server in namespace `name` whose page is its own name."""
    root = f"/tmp/www-{name}"
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write(name + "\n")
    servers[name] = subprocess.Popen(
        ["ip", "netns", "exec", name, sys.executable, "-m", "http.server", "--bind", RS[name],
         "--directory", root, str(RS_PORT)],
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


if __name__ == "__main__":
    main()
