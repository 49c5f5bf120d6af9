"""Issue 11, "Destroying what is not ours", on the lab: a host with a Kubernetes install sealos
did not make is refused by `init` and by `clean --node` and stays as it was; on a host sealos did
install, a kubectl config and a kubectl put there by someone else after init survive `clean`.

One 2-host lab, one story (each test needs the one before it).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sealos_lab.lab import Lab
from sealos_lab.testing import host_sh, lab_session, run_sealos

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sealos_scan import Scan

pytestmark = [pytest.mark.root, pytest.mark.lab]

VERSION = "v1.20.15"
# What another Kubernetes install leaves, made by hand (no marker of sealos).
FOREIGN = (
    "mkdir -p /etc/kubernetes /var/lib/etcd/member && "
    "echo 'apiVersion: v1  # another cluster' > /etc/kubernetes/admin.conf && "
    "echo 'an etcd member' > /var/lib/etcd/member/x && "
    "printf '#!/bin/sh\\necho the admin own kubectl\\n' > /usr/bin/kubectl && "
    "chmod 755 /usr/bin/kubectl"
)
THEIR_CONFIG = "apiVersion: v1\nkind: Config\n# the admin's config of another cluster\n"
THEIR_KUBECTL = "#!/bin/sh\necho the admin's own kubectl\n"


@dataclass
class Story:
    lab: Lab
    home: Path
    package: Path
    scans: dict[str, Scan]
    passed: set[str] = field(default_factory=set)

    def need(self, step: str) -> None:
        if step not in self.passed:
            pytest.fail(f"needs the earlier step {step} of this story to pass")

    def sealos(self, *args: str, timeout: float = 600):
        return run_sealos(self.lab, self.home, *args, timeout=timeout)

    def sh(self, host: str, script: str) -> str:
        return host_sh(self.lab, host, script, timeout=60)


def ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> Iterator[Story]:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    from sealos_lab.package import build

    folder = tmp_path_factory.mktemp("notours")
    package = build(VERSION, folder / f"kube{VERSION[1:]}.tar.gz")
    with lab_session("nonours", hosts=2) as lab:
        scans = {h.name: Scan.take(lab, h.name) for h in lab.hosts}
        yield Story(lab, folder / "home", package, scans)


def test_init_refuses_a_host_with_a_kubernetes_install_sealos_did_not_make(story):
    lab, (m, other) = story.lab, story.lab.hosts
    story.sh(other.name, FOREIGN)
    foreign = Scan.take(lab, other.name)
    proc = story.sealos("init", "--master", m.ip, "--node", other.ip, "--version", VERSION,
                        "--pkg", str(story.package))  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert (
        f"{other.ip} holds a Kubernetes install sealos did not start there "
        "(/etc/kubernetes/admin.conf, /var/lib/etcd/member); remove it first with "
        f"`sealos clean --node {other.ip} --not-a-member`, or add --force-takeover"
    ) in proc.stdout, proc.stdout
    assert "nothing was changed" in proc.stdout
    assert foreign.changes() == []
    assert story.scans[m.name].changes() == []
    assert not (story.home / "config.yaml").exists()
    # the dry run refuses it too, instead of calling it "an earlier init stopped halfway"
    dry = story.sealos("init", "--master", other.ip, "--version", VERSION,
                       "--pkg", str(story.package), "--dry-run")  # fmt: skip
    assert dry.returncode == 1 and "stopped halfway" not in dry.stdout, dry.stdout
    assert f"{other.ip} holds a Kubernetes install sealos did not start" in dry.stdout
    assert foreign.changes() == []
    story.passed.add("refused")


def test_clean_refuses_a_host_that_is_not_a_member(story):
    story.need("refused")
    lab, (m, other) = story.lab, story.lab.hosts
    ok(story.sealos("init", "--master", m.ip, "--version", VERSION, "--pkg", str(story.package)))
    foreign = Scan.take(lab, other.name)
    proc = story.sealos("clean", "--node", other.ip, "-y")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert (
        f"{other.ip} is not a member of the cluster recorded in {story.home / 'config.yaml'}, so "
        "clean leaves it alone; add --not-a-member"
    ) in proc.stderr, proc.stderr
    assert foreign.changes() == []
    story.passed.add("init")


def test_clean_keeps_a_kubeconfig_and_a_kubectl_that_are_not_ours(story):
    story.need("init")
    lab, (m, other) = story.lab, story.lab.hosts
    foreign = Scan.take(lab, other.name)
    assert "/usr/bin/kubectl" in story.sh(m.name, "ls /usr/bin/kubectl")
    story.sh(
        m.name,
        f"printf '%s' {shlex.quote(THEIR_CONFIG)} > /root/.kube/config && "
        f"printf '%s' {shlex.quote(THEIR_KUBECTL)} > /usr/bin/kubectl",
    )
    out = ok(story.sealos("clean", "--all", "-y"))
    assert "kept what is not sealos's" in out, out
    assert story.sh(m.name, "cat /root/.kube/config") == THEIR_CONFIG
    assert story.sh(m.name, "cat /usr/bin/kubectl") == THEIR_KUBECTL
    left = set(story.scans[m.name].leftovers())
    assert {"file:/root/.kube/config", "file:/usr/bin/kubectl"} <= left, sorted(left)
    assert left <= {"file:/root/.kube", "file:/root/.kube/config", "file:/usr/bin/kubectl"}, sorted(
        left
    )
    assert not (story.home / "config.yaml").exists()
    assert foreign.changes() == []  # the other host was never touched
