"""lvscare on a node, in one place: the single-file bundle, its command line, and its keeper (a
systemd unit ordered before kubelet, or a static pod): what a node should have, whether it has it,
and how to install it. `init` and `join` install it; `join`/`clean` rewrite it when masters change.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from sealos.errors import SealosError
from sealos.facts import HostFacts
from sealos.kubeadm import APISERVER_PORT
from sealos.remote_paths import LVSCARE_BIN, LVSCARE_MANIFEST, LVSCARE_UNIT, LVSCARE_WANTS, q
from sealos.ssh import SSHConnection
from sealos.state import make_private_dir

UNIT_NAME = "lvscare.service"
STATIC_POD_NAME = "kube-sealyun-lvscare"


@dataclass(frozen=True)
class Bundle:
    """The lvscare zipapp built on the operator's machine, ready to upload."""

    path: Path
    sha256: str


def build_bundle(cache_dir: Path | None = None) -> Bundle:
    """The lvscare zipapp for this sealos, built once and cached by the hash of its sources.

    Reusing the cached file keeps its SHA-256 stable, so a re-run does not re-upload it to every
    node (a fresh zipapp build differs byte for byte). lvscare is imported lazily: sealos never
    needs it otherwise.
    """
    try:
        import pyroute2

        import lvscare
        from lvscare.zipapp import build
    except ImportError as e:
        raise SealosError(
            f"cannot build the lvscare bundle ({e}); install sealos together with lvscare "
            "(pip install -e . in the project) and run again."
        ) from None
    folder = cache_dir or Path(tempfile.mkdtemp(prefix="sealos-lvscare-"))
    key = _sources_hash(Path(lvscare.__file__).parent, str(getattr(pyroute2, "__version__", "")))
    path = folder / f"lvscare-{key[:16]}.pyz"
    if not path.is_file():
        make_private_dir(folder)
        for old in folder.glob("lvscare-*.pyz"):
            old.unlink(missing_ok=True)
        build(path)
    return Bundle(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def _sources_hash(package_dir: Path, extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for f in sorted(package_dir.rglob("*.py")):
        h.update(str(f.relative_to(package_dir)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def care_args(vip: str, masters: list[str], run_once: bool = False) -> list[str]:
    """`lvscare care` arguments: the VIP's virtual server over every master's apiserver, probed
    on lvscare's default path (/readyz, so an apiserver shutting down leaves first; /healthz where
    a server has no /readyz, as before 1.16)."""
    args = ["care", "--vs", endpoint(vip), "--health-schem", "https"]
    for m in masters:
        args += ["--rs", endpoint(m)]
    if run_once:
        args.append("--run-once")
    return args


def endpoint(ip: str) -> str:
    """IP:6443 as lvscare's --vs and --rs want it ([v6]:6443 for IPv6)."""
    return f"[{ip}]:{APISERVER_PORT}" if ":" in ip else f"{ip}:{APISERVER_PORT}"


def sha256_text(text: str) -> str:
    """SHA-256 of a rendered file, as the facts report the file on the host."""
    return hashlib.sha256(text.encode()).hexdigest()


def systemd_unit(vip: str, masters: list[str]) -> str:
    """The unit that keeps the VIP rule before kubelet starts (also after a reboot).

    `Type=notify`: lvscare says READY once the VIP rule is in place, so `systemctl start` returns
    only then and `kubeadm join` may follow at once.
    """
    exec_start = " ".join([LVSCARE_BIN, *care_args(vip, masters)])
    return (
        "# Written by sealos: keeps the apiserver VIP balanced over the masters on this node.\n"
        "[Unit]\n"
        "Description=lvscare: node-local load balancer for the Kubernetes apiserver VIP\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "Before=kubelet.service\n"
        "\n"
        "[Service]\n"
        "Type=notify\n"
        "NotifyAccess=main\n"
        "TimeoutStartSec=60\n"
        f"ExecStart={exec_start}\n"
        "Restart=always\n"
        "RestartSec=2\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def service_command(restart: bool) -> str:
    """Enable and (re)start the unit, reloading systemd only when it must.

    `enable` is the wants link it would make; a daemon-reload costs a second per node when many
    nodes share a busy machine, and a unit systemd has not loaded yet is read from disk on start.
    """
    return (
        f"ln -sf {q(LVSCARE_UNIT)} {q(LVSCARE_WANTS)} && "
        f'if [ "$(systemctl show -p NeedDaemonReload --value {UNIT_NAME})" = yes ]; '
        "then systemctl daemon-reload; fi && "
        f"systemctl {'restart' if restart else 'start'} {UNIT_NAME}"
    )


def pinned_by_digest(image: str) -> bool:
    """The image is named by its content (`NAME@sha256:...`), not by a tag that can move."""
    return "@sha256:" in image


def image_pull_policy(image: str) -> str:
    """A privileged pod's image by tag is never pulled: it must be the package's copy (imported
    by init.sh); one pinned by digest may be pulled, since a registry can't change it."""
    return "IfNotPresent" if pinned_by_digest(image) else "Never"


def static_pod_manifest(vip: str, masters: list[str], image: str) -> str:
    """The static pod `/etc/kubernetes/manifests/kube-sealyun-lvscare.yaml` (the original's way).

    The image only provides python3; the bundle itself comes from the host. The pod is
    privileged, so its image is never pulled by a mutable tag (image_pull_policy).
    """
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": STATIC_POD_NAME,
            "namespace": "kube-system",
            "labels": {"component": STATIC_POD_NAME, "tier": "control-plane"},
        },
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "containers": [
                {
                    "name": STATIC_POD_NAME,
                    "image": image,
                    "imagePullPolicy": image_pull_policy(image),
                    "command": ["python3", LVSCARE_BIN, *care_args(vip, masters)],
                    "securityContext": {"privileged": True},
                    "volumeMounts": [
                        {"name": "lvscare", "mountPath": LVSCARE_BIN, "readOnly": True},
                        {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "lvscare", "hostPath": {"path": LVSCARE_BIN, "type": "File"}},
                {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}},
            ],
        },
    }
    return yaml.safe_dump(pod, sort_keys=False, default_flow_style=False)


SYSTEMD = "systemd"
STATIC_POD = "static-pod"


def mode_found(facts: HostFacts, default: str) -> str:
    """How lvscare is kept running on a node: as found there, else `default`."""
    if facts.lvscare_unit_sha256 is not None:
        return SYSTEMD
    if facts.lvscare_manifest_sha256 is not None:
        return STATIC_POD
    return default


@dataclass(frozen=True)
class Keeper:
    """What keeps lvscare running on a node: the systemd unit or the static pod manifest, for one
    VIP and list of masters. Desired text, whether the node has it, and how to install it."""

    mode: str  # SYSTEMD | STATIC_POD
    vip: str
    masters: tuple[str, ...]
    image: str  # the static pod's image (python3 only; the bundle comes from the host)

    @property
    def path(self) -> str:
        """The file that makes it so on the node."""
        return LVSCARE_UNIT if self.mode == SYSTEMD else LVSCARE_MANIFEST

    def text(self) -> str:
        """The unit or manifest this node should have."""
        if self.mode == SYSTEMD:
            return systemd_unit(self.vip, list(self.masters))
        return static_pod_manifest(self.vip, list(self.masters), self.image)

    def is_current(self, facts: HostFacts) -> bool:
        """The node has exactly this keeper (running, for the unit) and not the other kind."""
        sha = sha256_text(self.text())
        if self.mode == SYSTEMD:
            return (
                facts.lvscare_unit_sha256 == sha
                and facts.lvscare_active
                and facts.lvscare_manifest_sha256 is None
            )
        return facts.lvscare_manifest_sha256 == sha and facts.lvscare_unit_sha256 is None

    async def install(self, ssh: SSHConnection, facts: HostFacts, new_bundle: bool) -> None:
        """Remove the other kind if an earlier run used it; write this one where it differs; the
        unit is (re)started when its text or the bundle changed, started when it is not running.
        A unit's start returns once lvscare has made the VIP rule (Type=notify)."""
        text = self.text()
        changed = (
            facts.lvscare_unit_sha256 if self.mode == SYSTEMD else facts.lvscare_manifest_sha256
        ) != sha256_text(text)
        if self.mode == SYSTEMD:
            if facts.lvscare_manifest_sha256 is not None:
                await ssh.run(f"rm -f {q(LVSCARE_MANIFEST)}")
            if changed:
                await ssh.put_bytes(text.encode(), LVSCARE_UNIT, mode=0o644)
            if changed or new_bundle or not facts.lvscare_active:
                # `restart` starts a stopped unit too.
                await ssh.run(service_command(changed or new_bundle), timeout=120)
            return
        if facts.lvscare_unit_sha256 is not None:
            await ssh.run(
                f"systemctl disable --now {UNIT_NAME}; rm -f {q(LVSCARE_UNIT)}; "
                "systemctl daemon-reload"
            )
        if changed:
            await ssh.put_bytes(text.encode(), LVSCARE_MANIFEST, mode=0o644)
