"""Steps a lab host takes with the lab's releases, as a user following upstream's instructions
would: download containerd, runc and crictl from the mirror, check them against their checksum
files, install them with containerd's unit, start containerd; load an image copied from the
registry into containerd's k8s.io namespace."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sealos_lab import release_mirror
from sealos_lab.lab import Lab
from sealos_lab.releases import LabReleases


def host_sh(lab: Lab, host: str, script: str, timeout: float = 300) -> str:
    """Run a shell script on the host; its stdout, or an assertion error with all output."""
    proc = lab.exec(host, ["sh", "-ec", script], timeout=timeout)
    assert proc.returncode == 0, f"{script}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def install_runtime(lab: Lab, host: str, served: LabReleases, version: str) -> None:
    """containerd's getting-started on the host, from the mirror: download, verify, unpack,
    start the unit; runc and crictl beside it."""
    rt = {a.name: a for a in release_mirror.artifacts(version, "amd64")}
    ctd, runc, crictl = rt["containerd"], rt["runc"], rt["crictl"]
    unit = rt["containerd.service"].path
    base = served.base_url
    host_sh(
        lab,
        host,
        f"""
        cd /tmp
        curl -fsSLO {base}/{ctd.path} -O {base}/{ctd.checksum_path}
        sha256sum --check {ctd.url_name}.sha256sum
        tar Cxzf /usr/local {ctd.url_name}
        curl -fsSLO {base}/{runc.path} -O {base}/{runc.checksum_path}
        grep ' runc.amd64$' runc.sha256sum | sha256sum -c
        install -m 755 runc.amd64 /usr/local/sbin/runc
        curl -fsSLO {base}/{crictl.path} -O {base}/{crictl.checksum_path}
        echo "$(cat {crictl.url_name}.sha256)  {crictl.url_name}" | sha256sum --check
        tar Cxzf /usr/local/bin {crictl.url_name}
        mkdir -p /usr/local/lib/systemd/system
        curl -fsSLo /usr/local/lib/systemd/system/containerd.service {base}/{unit}
        systemctl daemon-reload
        systemctl start containerd
        """,
    )


def import_image(lab: Lab, host: str, served: LabReleases, image: str, tmp: Path) -> None:
    """Copy `image` (its upstream name) from the lab's registry into a docker-archive on the
    operator side, send it to the host, `ctr -n k8s.io images import` it there."""
    from sealos_lab.images import mirror_path

    archive = tmp / "image.tar"
    archive.unlink(missing_ok=True)
    copied = lab.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            f"docker://{served.registry.endpoint}/{mirror_path(image)}",
            f"docker-archive:{archive}:{image}",
        ]
    )
    assert copied.returncode == 0, copied.stderr
    put = subprocess.run(
        lab.exec_argv(host, ["sh", "-c", "cat > /tmp/image.tar"]),
        input=archive.read_bytes(),
        capture_output=True,
        timeout=120,
    )
    assert put.returncode == 0, put.stderr
    host_sh(lab, host, "ctr -n k8s.io images import /tmp/image.tar")
