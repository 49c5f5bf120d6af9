"""The lab's releases as `sealos package build` will meet them: over HTTP from 127.0.0.1, and in a
lab (`sealos-lab releases up`), where a host installs Debian's containerd from the mirror's
upstream-shaped tarball, starts it, imports an image copied from the registry, and lists it; and
`sealos-lab down` leaves no process, namespace or mount behind."""

from __future__ import annotations

import hashlib
import os
import shlex
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lab_releases_host import host_sh, import_image, install_runtime
from sealos_lab import release_mirror, releases, servers
from sealos_lab.lab import Lab
from sealos_lab.testing import lab_session, leftovers, run_cli

pytestmark = pytest.mark.root
VERSION = "v1.28.15"


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (lab cache, namespaces)")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def test_loopback_releases_serve_upstream_urls_and_stop_by_pid(tmp_path: Path) -> None:
    _need_root()
    with releases.start(tmp_path / "r", [VERSION], ["amd64"]) as served:
        args = served.mirror_args()
        assert args[-1] == "--insecure-registry"
        mirrors = dict(v.split("=", 1) for k, v in zip(args[0::2], args[1::2]) if k == "--mirror")
        assert mirrors == {h: f"{served.base_url}/{h}" for h in release_mirror.HOSTS}
        regs = [v for k, v in zip(args, args[1:]) if k == "--registry-mirror"]
        assert sorted(regs) == [
            f"docker.io={served.registry.endpoint}",
            f"registry.k8s.io={served.registry.endpoint}",
        ]
        kubeadm = served.url(f"https://dl.k8s.io/release/{VERSION}/bin/linux/amd64/kubeadm")
        body = _get(kubeadm)
        assert _get(kubeadm + ".sha256").decode() == hashlib.sha256(body).hexdigest()
        a = next(a for a in release_mirror.artifacts(VERSION, "amd64") if a.name == "containerd")
        tarball = _get(f"{served.base_url}/{a.path}")
        line = _get(f"{served.base_url}/{a.checksum_path}").decode()
        assert line == f"{hashlib.sha256(tarball).hexdigest()}  {a.url_name}\n"
        with pytest.raises(urllib.error.HTTPError):
            _get(served.url(f"https://dl.k8s.io/release/{VERSION}/bin/linux/amd64/kube-proxy"))
        seen = served.requests()
        assert (f"/{a.path}", 200) in seen
        assert any(status == 404 for _, status in seen)
        pids = [served.http, served.registry]
    for s in pids:
        assert not s.alive(), s
        assert not servers.listening(os.getpid(), s.port), s


def _host_sh(lab: Lab, script: str) -> str:
    return host_sh(lab, "h1", script)


def test_lab_host_runs_containerd_from_the_mirror_and_imports_an_image(tmp_path: Path) -> None:
    _need_root()
    name = "it-releases"
    # runtime none: the test installs containerd itself, from the release mirror
    with lab_session(name, hosts=1, runtime="none") as lab:
        up = run_cli("releases", "up", "--name", name, "--version", VERSION, timeout=600)
        assert up.returncode == 0, up.stderr
        args = shlex.split(up.stdout)
        base = f"http://{lab.operator_ip}:{releases.LAB_HTTP_PORT}"
        assert f"dl.k8s.io={base}/dl.k8s.io" in args
        served = releases.running_for_lab(name)
        assert served is not None and served.netns == lab.operator_netns
        again = run_cli("releases", "args", "--name", name)
        assert shlex.split(again.stdout) == args

        install_runtime(lab, "h1", served, VERSION)
        assert _host_sh(lab, "systemctl is-active containerd").strip() == "active"
        assert "/usr/local/bin/containerd" in _host_sh(
            lab, "systemctl show -p ExecStart containerd"
        )
        import_image(lab, "h1", served, "registry.k8s.io/pause:3.9", tmp_path)
        listed = _host_sh(lab, "ctr -n k8s.io images ls -q").split()
        assert "registry.k8s.io/pause:3.9" in listed
        shown = _host_sh(lab, "crictl images").splitlines()
        assert shown[0].split()[:2] == ["IMAGE", "TAG"]
        assert any(line.split()[:2] == ["registry.k8s.io/pause", "3.9"] for line in shown[1:])
        # `releases down` stops both by PID; `up` again serves the same files (built already).
        stopped = run_cli("releases", "down", "--name", name)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
        assert not served.http.alive() and not served.registry.alive()
        gone = run_cli("releases", "args", "--name", name)
        assert gone.returncode != 0 and "serves no releases" in gone.stderr
        again = run_cli("releases", "up", "--name", name, "--version", VERSION, timeout=600)
        assert again.returncode == 0, again.stderr
        restarted = releases.running_for_lab(name)
        assert restarted is not None
        pids = [restarted.http, restarted.registry]
    # `sealos-lab down` (lab_session's end) stops them with the lab.
    for s in pids:
        assert not s.alive(), s
    assert leftovers(name) == []


def test_recorded_servers_are_stopped_from_their_state_file(tmp_path: Path) -> None:
    """What `sealos-lab down` relies on: another process stops the servers from state.json."""
    _need_root()
    served = releases.start(tmp_path / "r", [VERSION], ["amd64"])
    try:
        loaded = releases.LabReleases.load(tmp_path / "r")
        assert (loaded.http.pid, loaded.registry.pid) == (served.http.pid, served.registry.pid)
        assert loaded.running()
        stopped = servers.stop_recorded(tmp_path / "r" / releases.STATE_FILE)
        assert {s.pid for s in stopped} == {served.http.pid, served.registry.pid}
        assert not served.http.alive() and not served.registry.alive()
    finally:
        served.stop()


def test_benchmark_prints_its_figures() -> None:
    """benchmarks/lab_releases, small (warm cache, one arch), as smoke: runs and prints."""
    _need_root()
    import sys
    from subprocess import run

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "lab_releases"
    proc = run(
        [sys.executable, str(bench), "--arches", "amd64", "--warm-only"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = dict(line.rsplit(None, 1) for line in proc.stdout.splitlines()[1:])
    assert float(rows["images (10) built and pushed"]) > 0
    assert int(rows["tree bytes"]) > 10_000_000
