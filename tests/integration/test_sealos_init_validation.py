"""`sealos init` bad input on real lab hosts (issue 4, acceptance 4) and --dry-run: each problem is
one clear sentence, the exit code is non-zero, and no host is changed.

Runs the real CLI on the lab's operator side, like a user. The package here is a placeholder
tarball: these runs stop before anything would use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealos_lab.lab import Lab
from sealos_lab.testing import lab_session, wait_for_output

pytestmark = [pytest.mark.root, pytest.mark.lab]

SNAPSHOT = (
    "sha256sum /etc/hosts; ls -A /root; "
    "ls -d /var/lib/sealos /etc/kubernetes /usr/local/bin/lvscare 2>/dev/null; true"
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    with lab_session("slval", hosts=3) as lab:
        yield lab


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pkg")
    (d / "kube/bin").mkdir(parents=True)
    (d / "kube/shell").mkdir(parents=True)
    (d / "kube/bin/kubeadm").write_text("#!/bin/sh\nexit 1\n")
    (d / "kube/shell/init.sh").write_text("exit 1\n")
    out = d / "kube1.20.15.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(d / "kube", arcname="kube")
    return out


def snapshot(lab: Lab) -> dict[str, str]:
    return {h.name: lab.exec(h.name, ["sh", "-c", SNAPSHOT]).stdout for h in lab.hosts}


def sealos(lab: Lab, home: Path, args: list[str], password: str | None, timeout: float = 120):
    env = {"PATH": os.environ["PATH"], "SEALOS_HOME": str(home), "HOME": str(home)}
    if password is not None:
        env["SEALOS_PASSWORD"] = password
    return lab.run([sys.executable, "-m", "sealos", "init", *args], env=env, timeout=timeout)


def ips(lab: Lab) -> list[str]:
    return [h.ip for h in lab.hosts]


def base_args(lab: Lab, package: Path) -> list[str]:
    m1, m2, n1 = ips(lab)
    return [
        "--master",
        m1,
        "--master",
        m2,
        "--node",
        n1,
        "--version",
        "v1.20.15",
        "--pkg",
        str(package),
    ]


def test_dry_run_prints_the_plan_per_host_and_changes_nothing(lab, package, tmp_path):
    before = snapshot(lab)
    proc = sealos(lab, tmp_path, [*base_args(lab, package), "--dry-run"], lab.password)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    m1, m2, n1 = ips(lab)
    assert "Dry run: nothing was changed" in out
    assert f"  {m1}:" in out and f"  {m2}:" in out and f"  {n1}:" in out
    assert "kubeadm init --config /root/kubeadm-config.yaml --upload-certs" in out
    assert f"map apiserver.cluster.local to {m1} (the first master)" in out
    # The node's lvscare unit starts (ready once the VIP rule is in place) before its join.
    plan = out[out.rindex(f"  {n1}:") :]
    assert "lvscare.service (Before=kubelet.service" in plan, plan
    assert plan.index("lvscare care --vs 10.103.97.2:6443") < plan.index("kubeadm join"), plan
    assert snapshot(lab) == before
    assert not (tmp_path / "config.yaml").exists()
    assert lab.password not in out + proc.stderr


def test_password_with_shell_metacharacters_and_spaces_works(lab, package, tmp_path):
    tricky = "a b'c\"d$e;f\\g `h` $(i)"
    for h in lab.hosts:
        lab.exec(h.name, ["chpasswd"], input=f"root:{tricky}\n", check=True)
    try:
        proc = sealos(lab, tmp_path, [*base_args(lab, package), "--dry-run"], tricky)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # The prompt form reads it from stdin when stdin is not a terminal.
        env = {"PATH": os.environ["PATH"], "SEALOS_HOME": str(tmp_path)}
        argv = [sys.executable, "-m", "sealos", "init", *base_args(lab, package), "--dry-run"]
        piped = lab.run([*argv, "--passwd", "-"], env=env, input=tricky + "\n")
        assert piped.returncode == 0, piped.stdout + piped.stderr
        log = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
        assert tricky not in log and "a b'c" not in log
    finally:
        for h in lab.hosts:
            lab.exec(h.name, ["chpasswd"], input=f"root:{lab.password}\n", check=True)


def test_each_bad_input_is_named_and_nothing_changes(lab, package, tmp_path):
    m1, m2, n1 = ips(lab)
    ghost = m1.rsplit(".", 1)[0] + ".60"  # inside the lab's isolated subnet, no host there
    cases = [
        ("wrong password", base_args(lab, package), "wrong-password",
         [f"{m1}: the password for 'root' was refused; check --passwd (or SEALOS_PASSWORD)."]),
        ("unreachable", [*base_args(lab, package), "--node", ghost, "--connect-timeout", "2"],
         lab.password,
         [f"{ghost}: no answer on port 22 within 2 s; check the address and that the host is up."]),
        ("VIP is a host", [*base_args(lab, package), "--vip", n1], lab.password,
         [f"the VIP {n1} is the address of host {n1}; choose a --vip that no host uses."]),
        ("master as node", [*base_args(lab, package), "--node", m2], lab.password,
         [f"{m2} is listed both as --master and as --node; a host is either a master or a node."]),
        ("missing package", [*base_args(lab, package)[:-1], str(tmp_path / "kube1.20.15.tar.gz")],
         lab.password,
         [f"the package file {tmp_path / 'kube1.20.15.tar.gz'} does not exist; check --pkg."]),
    ]  # fmt: skip
    before = snapshot(lab)
    for label, args, password, expected in cases:
        t0 = time.monotonic()
        proc = sealos(lab, tmp_path, args, password)
        took = time.monotonic() - t0
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, (label, out)
        for sentence in expected:
            assert sentence in out, (label, out)
        assert "nothing was changed" in out and "Traceback" not in out, label
        if label == "unreachable":
            assert took < 2 + 8, took  # the answer comes with the connect timeout, not later
    assert snapshot(lab) == before
    assert not (tmp_path / "config.yaml").exists()


def test_duplicate_hostnames_refused(lab, package, tmp_path):
    lab.set_hostname("h2", lab.host("h1").hostname)
    try:
        before = snapshot(lab)
        proc = sealos(lab, tmp_path, base_args(lab, package), lab.password)
        m1, m2, _ = ips(lab)
        assert proc.returncode == 1
        assert f"{m1} and {m2} share the hostname {lab.host('h1').hostname!r}" in proc.stdout
        assert snapshot(lab) == before
    finally:
        lab.set_hostname("h2", "slval-h2")


def test_downloaded_package_with_wrong_checksum_is_refused_and_removed(lab, package, tmp_path):
    serve = tmp_path / "www"
    serve.mkdir()
    (serve / package.name).write_bytes(package.read_bytes())
    port = 18080
    server = subprocess.Popen(
        lab.run_argv([sys.executable, "-u", "-m", "http.server", str(port), "--bind",
                      lab.operator_ip, "--directory", str(serve)]),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_output(server, "Serving HTTP on")  # printed once it listens
        url = f"http://{lab.operator_ip}:{port}/{package.name}"
        args = base_args(lab, package)
        i = args.index("--pkg")
        # plain http: the checksum must be given (a wrong one here)
        args[i : i + 2] = ["--pkg-url", url, "--pkg-sha256", "0" * 64]
        before = snapshot(lab)
        proc = sealos(lab, tmp_path, args, lab.password)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        expected = f"the package downloaded from {url} has SHA-256 "
        assert all(f"{ip}: {expected}" in out for ip in ips(lab)), out
        assert "0" * 64 in out
        assert snapshot(lab) == before, "the wrong download must not stay on the hosts"
    finally:
        server.terminate()
        server.wait(10)


def test_kubeadm_steps_run_once_reset_leftovers_and_wait_for_a_running_one(lab):
    """The host-side guard of kubeadm init/join, on a real lab host with a recording `kubeadm`."""
    from sealos.phases.commands import EXIT_BUSY, mark_started, once

    h = lab.hosts[0].name
    fake = (
        "mkdir -p /tmp/fakebin && printf '#!/bin/sh\\necho \"$*\" >> /tmp/kubeadm.calls\\n' "
        "> /tmp/fakebin/kubeadm && chmod +x /tmp/fakebin/kubeadm"
    )
    lab.exec(h, ["sh", "-c", fake], check=True)
    marker = "/var/lib/sealos/test.done"

    def step(wait: int = 900, body: str = "kubeadm join --config x") -> subprocess.CompletedProcess:
        script = "PATH=/tmp/fakebin:$PATH; " + once(marker, body, wait=wait)
        return lab.exec(h, ["sh", "-c", script], timeout=60)

    def calls() -> list[str]:
        return lab.exec(h, ["sh", "-c", "cat /tmp/kubeadm.calls 2>/dev/null"]).stdout.splitlines()

    try:
        assert step().returncode == 0 and calls() == ["join --config x"]
        again = step()
        assert again.returncode == 0 and "done before" in again.stdout and len(calls()) == 1
        lab.exec(
            h,
            [
                "sh",
                "-c",
                f"rm -f {marker}; mkdir -p /etc/kubernetes/pki && touch /etc/kubernetes/pki/ca.crt",
            ],
        )
        # Leftovers of a foreign install are never reset (issue 11); of one sealos started, are.
        refused = step()
        assert refused.returncode == 1 and "not resetting it" in refused.stderr
        lab.exec(h, ["sh", "-c", mark_started("the test")], check=True)
        assert step().returncode == 0
        assert calls()[1:] == ["reset -f", "join --config x"]
        # Holds the lock until its stdin closes; says "held" once it has it.
        holder = subprocess.Popen(
            lab.exec_argv(h, ["flock", "/var/lib/sealos/kubeadm.lock", "sh", "-c",
                              "echo held; read _"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_for_output(holder, "held")
            lab.exec(h, ["rm", "-f", marker])
            busy = step(wait=1)
            assert busy.returncode == EXIT_BUSY and "another run holds" in busy.stderr
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(20)
        failing = step(body="false")
        assert failing.returncode != 0
        assert lab.exec(h, ["test", "-f", marker]).returncode != 0  # no marker after a failure
    finally:
        lab.exec(
            h,
            ["sh", "-c", "rm -rf /tmp/fakebin /tmp/kubeadm.calls /var/lib/sealos /etc/kubernetes"],
        )
