"""The stand-in kubelet's static pods in test mode (no root, no mount namespace): host-network
manifests run as processes, an image the node does not have fails with ErrImagePull, a changed
manifest replaces the pod, a removed one stops it, a container that exits starts again."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from sealos_lab.package.standin import pods

IMAGE = "docker.io/library/python:3.11-slim"


def manifest(command: list[str], image: str = IMAGE, host_network: bool = True) -> str:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "demo", "namespace": "kube-system"},
        "spec": {
            "hostNetwork": host_network,
            "containers": [{"name": "demo", "image": image, "command": command}],
        },
    }
    return yaml.safe_dump(pod)


def wait(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


@pytest.fixture
def static(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SEALOS_STANDIN_ROOT", str(tmp_path / "root"))
    monkeypatch.setattr(pods, "PACKAGE_IMAGES", [IMAGE])
    folder = tmp_path / "manifests"
    folder.mkdir()
    runner = pods.StaticPods(folder, "node-1")
    yield folder, runner
    runner.stop_all("test over")


def only_container(runner: pods.StaticPods) -> pods.PodProcess:
    [(_sha, containers)] = runner.running.values()
    [container] = containers
    return container


def test_a_host_network_pod_runs_with_its_hosts_copy_and_follows_its_manifest(static, capfd):
    folder, runner = static
    (folder / "demo.yaml").write_text(manifest(["sleep", "60"]))
    runner.sync()
    first = only_container(runner)
    assert first.alive()
    copy = first.pod_dir / "etc" / "hosts"
    assert copy.read_bytes() == Path("/etc/hosts").read_bytes()
    assert "started as host process" in capfd.readouterr().err

    (folder / "demo.yaml").write_text(manifest(["sleep", "61"]))
    runner.sync()
    second = only_container(runner)
    assert second.pid != first.pid and second.alive() and not first.alive()

    os.kill(second.pid, 9)
    assert wait(lambda: not second.alive())
    old_pid = second.pid
    assert wait(lambda: (runner.sync(), second.alive() and second.pid != old_pid)[1])

    (folder / "demo.yaml").unlink()
    runner.sync()
    assert runner.running == {} and not second.alive()


def test_an_image_not_on_the_node_fails_with_err_image_pull(static, capfd):
    folder, runner = static
    (folder / "demo.yaml").write_text(manifest(["sleep", "60"], image="example.org/other:1"))
    runner.sync()
    assert runner.running == {}
    assert 'Failed to pull image "example.org/other:1": ErrImagePull' in capfd.readouterr().err


def test_pods_that_are_not_host_network_or_the_stand_in_control_plane_are_not_run(static, capfd):
    folder, runner = static
    (folder / "demo.yaml").write_text(manifest(["sleep", "60"], host_network=False))
    control = yaml.safe_load(manifest(["kube-apiserver"]))
    control["metadata"]["annotations"] = {pods.STANDIN_ANNOTATION: "run by the stand-in kubeadm"}
    (folder / "kube-apiserver.yaml").write_text(yaml.safe_dump(control))
    runner.sync()
    assert runner.running == {}
    err = capfd.readouterr().err
    assert "runs host-network pods only" in err and "runs it itself" in err
