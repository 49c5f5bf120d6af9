"""Per-host lab options (`HostSpec`) and which layers a runtime boots with."""

from __future__ import annotations

import pytest

from sealos_lab.hostlayers import layers_for
from sealos_lab.state import HostSpec, LabHost


def test_layers_per_runtime() -> None:
    assert layers_for("containerd") == ["tools", "containerd"]
    assert layers_for("none") == ["tools"]  # conntrack and iptables on every host
    with pytest.raises(ValueError):
        layers_for("docker")


@pytest.mark.parametrize(
    "spec,kind,problem",
    [
        (HostSpec(), "nspawn", None),
        (HostSpec(runtime="none"), "nspawn", None),
        (HostSpec(runtime="docker"), "nspawn", "runtime 'docker': choose containerd or none"),
        (HostSpec(cpus=1), "nspawn", "memory, CPUs and cgroup v1 are options of VM hosts (--vm)"),
        (HostSpec(cgroup_v1=True), "nspawn", "memory, CPUs and cgroup v1 are options"),
        (HostSpec(memory_mb=1024, cpus=1, cgroup_v1=True), "vm", None),
        (HostSpec(memory_mb=128), "vm", "memory 128 MB: a VM host needs at least 256"),
        (HostSpec(cpus=0), "vm", "0 CPUs: choose 1 to 8"),
    ],
)
def test_host_spec_problems(spec: HostSpec, kind: str, problem: str | None) -> None:
    found = spec.problem(kind)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)


def test_a_host_recorded_before_the_options_loads_with_their_defaults() -> None:
    old = {"name": "h1", "hostname": "x-h1", "ip": "10.0.0.11", "kind": "vm", "netns": "n",
           "machine": "m"}  # fmt: skip
    host = LabHost(**old)
    assert (host.runtime, host.memory_mb, host.cpus, host.cgroup_v1) == (
        "containerd",
        None,
        None,
        False,
    )
