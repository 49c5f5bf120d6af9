"""The package's kube/shell/init.sh, run for real in its test mode (SEALOS_INIT_ROOT: every file
under a temp root; no systemctl, sysctl, modprobe, swapoff or ctr), and the clean footprint:
everything it writes is a path `sealos clean` knows, and clean's markers are the ones it writes.
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest
from fake_upstream import Upstream, write_tree

from sealos import clean_script
from sealos import remote_paths as rp
from sealos.packaging import build

INIT_SH = Path(build.__file__).parent / "files/init.sh"
FSTAB = """\
UUID=1234 / ext4 errors=remount-ro 0 1
/swapfile none swap sw 0 0
# /old-swap none swap sw 0 0
UUID=5678 none swap sw 0 0
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """A package built from the throwaway upstream, unpacked: its kube/ folder."""
    tmp = tmp_path_factory.mktemp("pkg")
    up = Upstream(tmp / "upstream")
    write_tree(tmp / "upstream")
    try:
        opts = build.BuildOptions(
            version="v1.28.15",
            out=tmp / "kube.tar.gz",
            mirrors=up.mirrors(),
            cache=tmp / "cache",
            images=False,
        )
        path = build.build(opts, io.StringIO()).path
    finally:
        up.close()
    with tarfile.open(path) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    return tmp / "unpacked/kube"


def run_init(kube: Path, root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEALOS_INIT_ROOT": str(root)}
    # from another folder, as `cd kube/shell && sh init.sh` would not be: the script finds itself
    return subprocess.run(
        ["sh", str(kube / "shell/init.sh")], env=env, capture_output=True, text=True, cwd="/"
    )


def test_init_sh_is_posix_sh():
    for shell in ("sh", "dash"):
        done = subprocess.run([shell, "-n", str(INIT_SH)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_init_sh_installs_everything_and_a_second_run_changes_nothing(package, tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/fstab").write_text(FSTAB)
    first = run_init(package, root)
    assert first.returncode == 0, first.stderr
    assert "binaries: 12 installed or updated" in first.stdout  # 9 of kube/bin, 3 CNI plugins
    for path, mode in {
        "usr/bin/kubeadm": 0o755,
        "usr/bin/kubelet": 0o755,
        "usr/bin/kubectl": 0o755,
        "usr/local/bin/containerd": 0o755,
        "usr/local/bin/ctr": 0o755,
        "usr/local/bin/containerd-shim-runc-v2": 0o755,
        "usr/local/bin/crictl": 0o755,
        "usr/local/sbin/runc": 0o755,
        "opt/cni/bin/bridge": 0o755,
        "opt/cni/bin/loopback": 0o755,
        "etc/systemd/system/containerd.service": 0o644,
        "etc/systemd/system/kubelet.service": 0o644,
        "etc/systemd/system/kubelet.service.d/10-kubeadm.conf": 0o644,
        "etc/containerd/config.toml": 0o644,
    }.items():
        assert (root / path).stat().st_mode & 0o777 == mode, path
    assert (root / "usr/local/sbin/runc").read_bytes() == (package / "bin/runc").read_bytes()
    assert (root / "etc/modules-load.d/k8s.conf").read_text().split() == [
        "overlay",
        "br_netfilter",
        "ip_vs",
        "ip_vs_rr",
        "ip_vs_wrr",
        "ip_vs_sh",
        "nf_conntrack",
    ]
    sysctls = (root / "etc/sysctl.d/k8s.conf").read_text()
    assert "net.ipv4.ip_forward = 1" in sysctls
    assert "net.bridge.bridge-nf-call-iptables = 1" in sysctls
    fstab = (root / "etc/fstab").read_text().splitlines()
    assert fstab == [
        "UUID=1234 / ext4 errors=remount-ro 0 1",
        f"{rp.SWAP_MARKER}/swapfile none swap sw 0 0",
        "# /old-swap none swap sw 0 0",
        f"{rp.SWAP_MARKER}UUID=5678 none swap sw 0 0",
    ]
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}

    second = run_init(package, root)
    assert second.returncode == 0, second.stderr
    assert "binaries: 0 installed or updated" in second.stdout
    assert "fstab" not in second.stdout
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before  # nothing rewritten


def footprint_covers(path: str) -> bool:
    for removal in rp.CLEAN_FOOTPRINT:
        for pattern in removal.paths:
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/"):
                return True
    return False


def test_init_sh_writes_only_paths_clean_knows(package, tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/fstab").write_text(FSTAB)
    assert run_init(package, root).returncode == 0
    written = ["/" + str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
    assert len(written) == 19
    assert [p for p in written if not footprint_covers(p)] == []
    # and the check is not vacuous
    assert not footprint_covers("/etc/passwd") and not footprint_covers("/usr/local/lib/x")


def test_clean_undoes_the_fstab_and_config_markers_init_sh_wrote(package, tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/fstab").write_text(FSTAB)
    assert run_init(package, root).returncode == 0
    script = clean_script.script(["10.103.97.2"], [])
    # clean's own fstab command, pointed at the test root, gives the original file back
    sed = re.search(r"^\s*(sed -i .*) /etc/fstab \|\|", script, flags=re.M)
    assert sed is not None
    fstab = root / "etc/fstab"
    subprocess.run(["sh", "-c", f"{sed.group(1)} {shlex.quote(str(fstab))}"], check=True)
    assert fstab.read_text() == FSTAB
    # clean recognises the containerd config init.sh wrote by its marker line
    grep = re.search(r"if (grep -qxF -- .*) /etc/containerd/config\.toml", script)
    assert grep is not None
    config = shlex.quote(str(root / "etc/containerd/config.toml"))
    assert subprocess.run(["sh", "-c", f"{grep.group(1)} {config}"]).returncode == 0


def test_init_sh_refuses_a_containerd_config_that_is_not_its_own(package, tmp_path):
    root = tmp_path / "root"
    (root / "etc/containerd").mkdir(parents=True)
    (root / "etc/containerd/config.toml").write_text("version = 2\n# the user's own\n")
    done = run_init(package, root)
    assert done.returncode == 1
    assert "config.toml exists and was not written by sealos; move it away" in done.stderr
    assert not (root / "usr").exists()  # refused before anything was written


def test_the_clean_script_compares_runtime_binaries_with_the_package():
    script = clean_script.script([], [])
    assert "for d in /usr/bin /usr/local/bin /usr/local/sbin; do" in script
    assert "for f in /root/kube/cni/bin/*; do" in script
    assert "for d in /opt/cni/bin; do" in script
    assert "systemctl disable --now containerd.service" in script
    assert "wipe /var/lib/containerd /run/containerd /opt/containerd" in script
    # containerd stops after kubeadm reset (reset removes the pods through it)
    assert script.index("kubeadm reset -f") < script.index("disable --now containerd.service")
