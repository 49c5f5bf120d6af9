"""A built package's init.sh for real (not its test mode), run twice, then sealos's clean script,
on this machine but inside throwaway namespaces, so the machine is untouched:
- a mount namespace whose /usr, /etc, /opt, /var and /root are overlays: every write lands in a
  temp folder (the overlay's upper folder, read here between the steps), and a fresh /run;
- an empty network namespace (clean's nft, ip and ipvsadm steps see none of the machine's);
- a PID namespace (clean's sweep of interrupted runs sees only this test's processes).
systemctl, modprobe, sysctl and swapoff are stubs that log their calls (init.sh's PATH starts with
/usr/local/sbin, where they are), and the package's ctr and kubeadm are scripts that log theirs:
what runs is the real init.sh and the real clean script, against real files.
"""

from __future__ import annotations

import fnmatch
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "unit"))
from fake_upstream import Upstream, oci_layout, write_tree

from sealos import clean_script
from sealos import remote_paths as rp
from sealos.kubeversion import KubeVersion
from sealos.package_versions import kubeadm_images
from sealos.packaging import build, images
from sealos.phases.commands import mark_started, record_installed

pytestmark = pytest.mark.root
OVERLAID = ("/usr", "/etc", "/opt", "/var", "/root")
STUBS = ("systemctl", "modprobe", "sysctl", "swapoff")
FSTAB = "UUID=1234 / ext4 errors=remount-ro 0 1\n/swapfile none swap sw 0 0\n"


def logging_script(log: Path, extra: str = "") -> bytes:
    return f'#!/bin/sh\necho "$(basename "$0") $*" >> {log}\n{extra}exit 0\n'.encode()


@pytest.fixture
def world(tmp_path, monkeypatch):
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("skopeo") is None:
        pytest.skip("needs root, unshare and skopeo")
    log = tmp_path / "calls.log"
    log.touch()
    script = logging_script(log)
    write_tree(tmp_path / "upstream", contents={"ctr": script, "kubeadm": script})
    refs = kubeadm_images(KubeVersion.parse("v1.28.15"))
    oci_layout(
        tmp_path / "oci",
        [*refs, *(f"docker.io/calico/{c}:v3.26.4" for c in ("cni", "node", "kube-controllers"))],
    )
    monkeypatch.setattr(images, "source", lambda ref, mirrors: f"oci:{tmp_path / 'oci'}:{ref}")
    up = Upstream(tmp_path / "upstream")
    try:
        opts = build.BuildOptions(
            version="v1.28.15",
            out=tmp_path / "kube.tar.gz",
            mirrors=up.mirrors(),
            cache=tmp_path / "cache",
        )
        build.build(opts, io.StringIO())
    finally:
        up.close()
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    active = tmp_path / "containerd-active"
    systemctl = (
        f'case "$1" in\nis-active) [ -e {active} ]; exit $? ;;\n'
        f"start | restart) touch {active} ;;\nesac\n"
    )
    for name in STUBS:
        (stubs / name).write_bytes(logging_script(log, systemctl if name == "systemctl" else ""))
        (stubs / name).chmod(0o755)
    (tmp_path / "fstab").write_text(FSTAB)
    (tmp_path / "clean.sh").write_text(clean_script.script([], ["kube.tar.gz"]))
    return tmp_path


def in_namespaces(t: Path, body: str) -> subprocess.CompletedProcess[str]:
    mounts = "".join(
        f"mkdir -p {t}/upper{d} {t}/work{d}\n"
        f"mount -t overlay overlay -o lowerdir={d},upperdir={t}/upper{d},workdir={t}/work{d} {d}\n"
        for d in OVERLAID
    )
    script = f"set -e\n{mounts}mount -t tmpfs tmpfs /run\nmkdir -p /run/systemd/system\n{body}"
    command = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--net",
        "--pid",
        "--fork",
        "--mount-proc",
    ]
    return subprocess.run(
        [*command, "sh", "-c", script], capture_output=True, text=True, timeout=120
    )


def upper(t: Path) -> dict[str, str]:
    """What the overlays hold: {path on the machine: 'f' file, 'd' folder, 'w' whiteout}."""
    found = {}
    for d in OVERLAID:
        base = t / "upper" / d.lstrip("/")
        for p in base.rglob("*"):
            mode = p.lstat().st_mode
            kind = "w" if stat.S_ISCHR(mode) else "d" if stat.S_ISDIR(mode) else "f"
            found[d + "/" + str(p.relative_to(base))] = kind
    return found


def calls(t: Path) -> list[str]:
    return (t / "calls.log").read_text().splitlines()


def covered(path: str) -> bool:
    return any(
        fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/")
        for removal in rp.CLEAN_FOOTPRINT
        for pattern in removal.paths
    )


def test_init_sh_for_real_then_clean_leaves_nothing(world):
    t = world
    stubs = "".join(f"install -m 0755 {t}/stubs/{s} /usr/local/sbin/{s}\n" for s in STUBS)
    setup = f"{stubs}cp {t}/fstab /etc/fstab\ntar -C /root -xzf {t}/kube.tar.gz\n"
    # as sealos runs it: its marker first (clean removes only what is ours: issue 11), the record
    # of what init.sh installed after it
    first = in_namespaces(
        t,
        f"{setup}{mark_started('test')}\ncd /root/kube/shell && sh init.sh && {record_installed()}",
    )
    assert first.returncode == 0, first.stdout + first.stderr
    log = calls(t)
    for call in (
        "systemctl daemon-reload",
        "systemctl enable containerd.service",
        "systemctl start containerd.service",
        "systemctl enable kubelet.service",
        "ctr version",
        "modprobe br_netfilter",
        "modprobe ip_vs",
        "sysctl -q -p /etc/sysctl.d/k8s.conf",
        "swapoff -a",
    ):
        assert call in log, (call, log)
    imported = sorted(
        c.rsplit("/", 1)[-1] for c in log if c.startswith("ctr -n k8s.io images import ")
    )
    assert len(imported) == 10
    assert "images: 10 imported into containerd" in first.stdout
    written = upper(t)
    for path in (
        "/usr/bin/kubeadm",
        "/usr/local/bin/containerd",
        "/usr/local/bin/ctr",
        "/usr/local/sbin/runc",
        "/opt/cni/bin/bridge",
        "/etc/containerd/config.toml",
        "/etc/systemd/system/containerd.service",
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
    ):
        assert written.get(path) == "f", path
    mine = {f"/usr/local/sbin/{s}" for s in STUBS} | {"/etc/fstab"}
    files = [p for p, kind in written.items() if kind == "f" and p not in mine]
    assert [p for p in files if not covered(p)] == []
    assert "w" not in written.values()
    (t / "calls.log").write_text("")

    second = in_namespaces(t, "cd /root/kube/shell && sh init.sh")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "binaries: 0 installed or updated" in second.stdout
    assert "systemctl start containerd.service" in calls(t)  # nothing changed: no restart
    assert not any("restart" in c for c in calls(t))

    cleaned = in_namespaces(t, f"sh {t}/clean.sh")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    removed, problems, _ = clean_script.parse(cleaned.stdout)
    assert problems == []
    for path in ("/usr/local/bin/containerd", "/usr/local/sbin/runc", "/opt/cni/bin/bridge"):
        assert path in removed, (path, removed)
    assert "/etc/containerd/config.toml" in removed
    assert "systemctl disable --now containerd.service" in calls(t)
    left = upper(t)
    assert (t / "upper/etc/fstab").read_text() == FSTAB  # the swap line is back
    # clean removes /usr/bin/kubeadm, kubelet and kubectl when they are the package's; one the
    # machine had before was replaced by init.sh with the package's, so it is gone too (a whiteout)
    by_path = {p for p in rp.KUBE_BINARIES.paths if os.path.lexists(p)}
    leftovers = {p: k for p, k in left.items() if k != "d" and p not in mine | by_path}
    assert leftovers == {}
    new_dirs = [p for p, k in left.items() if k == "d" and not Path(p).is_dir()]
    assert new_dirs == []
