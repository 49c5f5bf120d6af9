"""The kubelet's start-up refusals, as the real kubelet's (cmd/kubelet/app/server.go,
pkg/kubelet/cm, dockershim up to 1.23): swap on while failSwapOn, no runtime answering at its
endpoint, and a cgroup driver other than the runtime's.

The real kubelet says the last only for docker ("misconfiguration: kubelet cgroup driver: ... is
different from docker cgroup driver: ..."); with containerd it starts, and the control plane's
static pods restart in a loop. The stand-in, which runs no pods, exits then too, saying so.
"""

from __future__ import annotations

from typing import Any, Optional

from .hostprobe import HostProbe, host_probe
from .versions import KubeVersion


def _flag_bool(value: str) -> bool:
    return value.lower() not in ("false", "0", "f")


def kubelet_runtime_endpoint(
    flags: dict[str, str], config: dict[str, Any], version: KubeVersion
) -> str:
    """Where the kubelet looks for its runtime: dockershim (docker) up to 1.23 unless
    --container-runtime=remote; the flag, the config's containerRuntimeEndpoint (1.27+) or
    containerd's socket from 1.24."""
    if version.minor <= 23:
        if flags.get("container-runtime", "docker") != "remote":
            return "unix:///var/run/dockershim.sock"
        return flags.get("container-runtime-endpoint") or "unix:///var/run/dockershim.sock"
    return (
        flags.get("container-runtime-endpoint")
        or str(config.get("containerRuntimeEndpoint") or "")
        or "unix:///run/containerd/containerd.sock"
    )


def kubelet_startup_problem(
    flags: dict[str, str],
    config: dict[str, Any],
    version: KubeVersion,
    probe: Optional[HostProbe] = None,
) -> Optional[str]:
    """Why the kubelet would exit at start-up (the text after `"command failed" err=`), or None."""
    probe = probe or host_probe()
    fail_swap_on = (
        _flag_bool(flags["fail-swap-on"])
        if "fail-swap-on" in flags
        else config.get("failSwapOn") is not False
    )
    swaps = probe.swap_lines()
    if fail_swap_on and swaps:
        header = (probe.read("/proc/swaps") or "").splitlines()[:1]
        return (
            "failed to run Kubelet: running with swap on is not supported, please disable swap! "
            "or set --fail-swap-on flag to false. /proc/swaps contained: "
            f"[{' '.join(header + swaps)}]"
        )
    endpoint = kubelet_runtime_endpoint(flags, config, version)
    driver = flags.get("cgroup-driver") or str(config.get("cgroupDriver") or "") or "cgroupfs"
    if "docker" in endpoint:
        code, output = probe.run(["docker", "info"])
        if code != 0:
            return (
                "failed to run Kubelet: failed to create kubelet: failed to get docker version: "
                f"{output.strip() or 'Cannot connect to the Docker daemon'}"
            )
    else:
        problem = probe.cri_problem(endpoint)
        if problem is not None:
            return (
                "failed to run Kubelet: validate service connection: validate CRI v1 runtime API "
                f'for endpoint "{endpoint}": rpc error: code = Unavailable desc = connection '
                f'error: desc = "transport: Error while dialing: {problem}"'
            )
    runtime, runtime_driver, _problem = probe.runtime_cgroup_driver(endpoint)
    if runtime_driver is None or runtime_driver == driver:
        return None
    if runtime == "docker":
        return (
            f'failed to run Kubelet: misconfiguration: kubelet cgroup driver: "{driver}" is '
            f'different from docker cgroup driver: "{runtime_driver}"'
        )
    return (
        f'failed to run Kubelet: misconfiguration: kubelet cgroup driver: "{driver}" is different '
        f'from the containerd cgroup driver: "{runtime_driver}" (containerd config dump: '
        f"SystemdCgroup = {'true' if runtime_driver == 'systemd' else 'false'}; sealos-lab "
        "stand-in: the real kubelet starts, and the control plane's static pods restart in a "
        "loop)"
    )
