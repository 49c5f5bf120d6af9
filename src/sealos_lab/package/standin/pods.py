"""The stand-in kubelet's pods: host-network pods' commands run as host processes.

The stand-in kubelet runs no containers (containerd, where a lab host has it, can't run them on
nspawn hosts), so a pod's container is its command run on the host (host network, host
filesystem), each said so in the kubelet's log. What the real
kubelet does and a user would notice is kept:
- a host-network pod gets a copy of the node's /etc/hosts taken when its container starts
  (kubelet_pods.go `ensureHostsFile`), laid over /etc in a mount namespace of its own: a later
  change of the node's file reaches the pod only when its container starts again;
- an image that is not on the node fails the pod with ErrImagePull (the lab is offline);
- a container that exits is started again (restartPolicy Always, with a back-off); a changed
  static pod manifest replaces the pod, a removed one stops it.
The processes belong to the kubelet: they stop when it stops (kubeadm reset stops the kubelet
first), where the real kubelet's containers would be removed by kubeadm reset through the CRI.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import yaml

from .embedded import PACKAGE_IMAGES
from .hostenv import host_path, log, standin_root

PODS_DIR = "/var/lib/kubelet/pods"
DEFAULT_MANIFEST_DIR = "/etc/kubernetes/manifests"
HOSTS_FILE = "/etc/hosts"
# The stand-in kubeadm marks the control plane's manifests: it runs that part itself.
STANDIN_ANNOTATION = "sealos-lab.io/stand-in"
BACKOFF_FIRST = 2.0
BACKOFF_MAX = 60.0
IMAGE_RETRY = 10.0


def images_on_node() -> Optional[set[str]]:
    """Images the node has: containerd's (k8s.io) where it runs, else the package's own list (the
    lab's packages carry no runtime; the stand-in takes their images as loaded). None: the runtime
    did not answer."""
    if not standin_root() and shutil.which("ctr") is not None:
        listed = subprocess.run(
            ["ctr", "-n", "k8s.io", "images", "ls", "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
        return set(listed.stdout.split()) if listed.returncode == 0 else None
    return set(PACKAGE_IMAGES)


def image_problem(image: str) -> str:
    """Why a pod's image can't be had ("" when it is on the node)."""
    images = images_on_node()
    if images is None:
        return "container runtime is not running (ctr -n k8s.io images ls failed)"
    if image in images:
        return ""
    return (
        f'Failed to pull image "{image}": ErrImagePull: the image is not on this node and the '
        "sealos-lab is offline (images here: the package's)"
    )


class PodProcess:
    """One container of a pod, run as a host process."""

    def __init__(self, pod: str, uid: str, container: str, argv: list[str]) -> None:
        self.pod = pod  # namespace/name, for the log
        self.uid = uid
        self.container = container
        self.argv = argv
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.restarts = 0
        self.next_start = 0.0
        self.started = 0.0

    @property
    def pod_dir(self) -> Path:
        return host_path(f"{PODS_DIR}/{self.uid}")

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the command with a fresh copy of the node's /etc/hosts (as a container start)."""
        etc = self.pod_dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        hosts_copy = etc / "hosts"
        shutil.copyfile(HOSTS_FILE, hosts_copy)
        os.chmod(hosts_copy, 0o644)
        if standin_root():
            # Test mode runs unprivileged beside other "hosts": no mount namespace of its own.
            argv, where = self.argv, "the node's /etc/hosts (test mode: no mount namespace)"
        else:
            # The copy is laid over the node's /etc (a read-only overlay, the copy on top) in a
            # mount namespace of its own. Not a bind mount on /etc/hosts itself: that is the
            # node's file, and replacing it there (sealos writes a new file and renames it over)
            # would detach the bind mount, where a container's /etc/hosts is a file of its own.
            script = 'mount -t overlay overlay -o "lowerdir=$0:/etc" /etc && exec "$@"'
            argv = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                str(etc),
                *self.argv,
            ]
            where = f"a copy of /etc/hosts taken now ({hosts_copy})"
        log_path = self.pod_dir / f"{self.container}.log"
        with open(log_path, "ab") as handle:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self.started = time.monotonic()
        log(
            "kubelet",
            f'pod "{self.pod}" container "{self.container}": started as host process '
            f"{self.proc.pid} (sealos-lab stand-in: a host process, not a container) with {where}; "
            f"log {log_path}",
        )

    def restart_if_exited(self) -> None:
        """restartPolicy Always: start an exited container again after a back-off."""
        if self.proc is None or self.alive():
            return
        now = time.monotonic()
        if self.next_start == 0.0:
            code = self.proc.returncode
            ran = now - self.started
            self.restarts = 0 if ran > 300 else self.restarts + 1
            delay = min(BACKOFF_FIRST * 2 ** max(self.restarts - 1, 0), BACKOFF_MAX)
            log(
                "kubelet",
                f'pod "{self.pod}" container "{self.container}" exited with {code}; '
                f"back-off {delay:g}s restarting it",
            )
            self.next_start = now + delay
        if now >= self.next_start:
            self.next_start = 0.0
            self.start()

    def stop(self, why: str) -> None:
        """SIGTERM the container's process group, SIGKILL after 10 s."""
        if self.proc is None:
            return
        if self.alive():
            log("kubelet", f'pod "{self.pod}" container "{self.container}": stopping ({why})')
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def pod_processes(pod: dict[str, Any], uid: str) -> list[PodProcess]:
    """The containers of a pod manifest as host processes (command + args)."""
    meta = pod.get("metadata") or {}
    name = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
    found = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
        found.append(PodProcess(name, uid, str(container.get("name")), argv))
    return found


class StaticPods:
    """The manifests folder (staticPodPath): one running pod per host-network manifest."""

    def __init__(self, manifest_dir: Path, node: str) -> None:
        self.manifest_dir = manifest_dir
        self.node = node
        self.running: dict[str, tuple[str, list[PodProcess]]] = {}  # file -> (sha, containers)
        self.noted: dict[str, str] = {}  # file -> sha of a manifest not run, said once
        self.retry_at: dict[str, float] = {}

    def _note(self, name: str, sha: str, message: str) -> None:
        if self.noted.get(name) != sha:
            log("kubelet", f"static pod {name}: {message}")
            self.noted[name] = sha

    def sync(self) -> None:
        """Start new manifests' pods, replace changed ones, stop removed ones, restart exits."""
        seen = set()
        files = sorted(self.manifest_dir.glob("*")) if self.manifest_dir.is_dir() else []
        for path in files:
            if path.name.startswith(".") or path.suffix not in (".yaml", ".yml", ".json"):
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            seen.add(path.name)
            sha = hashlib.sha256(data).hexdigest()
            running = self.running.get(path.name)
            if running is not None and running[0] == sha:
                for container in running[1]:
                    container.restart_if_exited()
                continue
            if running is not None:
                for container in running[1]:
                    container.stop("its manifest changed")
                del self.running[path.name]
            self._start(path.name, data, sha)
        for name in [n for n in self.running if n not in seen]:
            for container in self.running.pop(name)[1]:
                container.stop("its manifest was removed")
        for name in [n for n in self.noted if n not in seen]:
            del self.noted[name]

    def _start(self, name: str, data: bytes, sha: str) -> None:
        if time.monotonic() < self.retry_at.get(name + sha, 0.0):
            return
        try:
            pod = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            self._note(name, sha, f"could not be read: {exc}")
            return
        if not isinstance(pod, dict) or pod.get("kind") != "Pod":
            self._note(name, sha, "not a Pod manifest; skipped")
            return
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if STANDIN_ANNOTATION in annotations:
            self._note(name, sha, "written by the stand-in kubeadm, which runs it itself")
            return
        spec = pod.get("spec") or {}
        if not spec.get("hostNetwork"):
            self._note(
                name, sha, "not run: the sealos-lab stand-in kubelet runs host-network pods only"
            )
            return
        for container in spec.get("containers") or []:
            problem = image_problem(str(container.get("image", "")))
            if problem:
                self._note(name, sha, problem)
                self.retry_at[name + sha] = time.monotonic() + IMAGE_RETRY
                return
        uid = hashlib.sha256(data + self.node.encode()).hexdigest()[:32]
        containers = pod_processes(pod, uid)
        for container in containers:
            container.start()
        self.running[name] = (sha, containers)
        self.noted.pop(name, None)

    def stop_all(self, why: str) -> None:
        for _sha, containers in self.running.values():
            for container in containers:
                container.stop(why)
        self.running.clear()


def manifest_dir_of(config_path: Path) -> Path:
    """staticPodPath of the kubelet's config file (kubeadm writes /etc/kubernetes/manifests)."""
    path = DEFAULT_MANIFEST_DIR
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError):
        config = yaml.safe_load(config_path.read_text()) or {}
        path = str(config.get("staticPodPath") or path)
    return host_path(path) if standin_root() and not path.startswith(standin_root()) else Path(path)
