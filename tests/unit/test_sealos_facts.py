"""The facts script runs under a real sh (read-only) and its output parses into HostFacts."""

from __future__ import annotations

import subprocess

from sealos.facts import gather_script, parse


def test_script_runs_on_this_machine_and_parses():
    out = subprocess.run(
        ["sh", "-c", gather_script("kube-none.tar.gz", "apiserver.cluster.local", 123)],
        capture_output=True,
        text=True,
        check=True,
    )
    f = parse(out.stdout)
    assert f.hostname and f.arch and f.kernel
    assert f.time > 1_600_000_000
    assert f.python3 is not None and f.python3 >= (3, 9)
    assert "tar" in f.tools and "sha256sum" in f.tools
    assert "127.0.0.1" in f.addresses
    assert f.disk_free > 0
    assert f.package_sha256 is None


def test_parse_handles_repeated_and_odd_lines():
    f = parse(
        "hostname=Node1\nuid=0\ntool=curl\ntool=tar\naddress=10.0.0.2\naddress=10.0.0.2\n"
        "hosts_line=10.0.0.2 apiserver.cluster.local # managed by sealos\nnoise\npython3=weird\n"
        "leftover=/etc/kubernetes/kubelet.conf\ninit_done=1\n"
    )
    assert f.hostname == "node1" and f.uid == 0 and f.tools == {"curl", "tar"}
    assert f.addresses == ["10.0.0.2"] and f.python3 is None
    assert f.hosts_lines == ["10.0.0.2 apiserver.cluster.local # managed by sealos"]
    assert (
        f.kubeadm_leftovers == ["/etc/kubernetes/kubelet.conf"] and f.init_done and not f.join_done
    )
