"""Builds the lab's offline package: a tar.gz laid out like sealos' kube1.14.1.tar.gz.

    kube/bin/kubeadm kube/bin/kubelet kube/bin/kubectl   stand-ins, one python3 script each
    kube/bin/crictl                                        the release mirror's crictl stand-in
    kube/shell/init.sh                                     prepares a host (see the script)
    kube/conf/kubelet.service kube/conf/10-kubeadm.conf    what init.sh installs for systemd
    kube/conf/net/calico.yaml                              CNI manifest (valid, small)
    kube/conf/heapster/heapster.yaml kube/conf/dashboard/kubernetes-dashboard.yaml
    kube/images/images.tar                                 stands for the image archive
    kube/version  kube/README.md

Each stand-in is the modules of `standin/` (with its packages `kubeadm/` and `apiserver/`) joined
into one script, in the order of STANDIN_MODULES: sibling imports are dropped
(the builder checks that no two modules define the same name), and `embedded.py` is replaced by
constants: the program name, the Kubernetes version and the schemas as JSON. The archive is
reproducible (fixed mtimes and owners), so two builds of one version have the same checksum.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

from .standin.versions import FIRST_SUPPORTED_MINOR, LAST_SUPPORTED_MINOR, parse_kube_version

_HERE = Path(__file__).resolve().parent
STANDIN_DIR = _HERE / "standin"
SCHEMA_DIR = _HERE / "schemas"
FILES_DIR = _HERE / "files"
# Dependency order: a module comes after every module it imports from. Paths below standin/;
# every module there is listed (the build fails on one that is not, see _check_module_list).
STANDIN_MODULES = [
    "versions",
    "decoder",
    "hostenv",
    "hostprobe",
    "pki",
    "apiclient",
    "cliflags",
    "apiserver/settings",
    "apiserver/membership",
    "apiserver/store",
    "apiserver/auth",
    "apiserver/replication",
    "apiserver/pods",
    "apiserver/api",
    "apiserver/server",
    "kubelet_preconditions",
    "pods",
    "kube_proxy",
    "kubelet_cmd",
    "kubeadm/plans",
    "kubeadm/flags",
    "kubeadm/init_config",
    "kubeadm/join_config",
    "kubeadm/common",
    "kubeadm/preflight",
    "kubeadm/certs",
    "kubeadm/control_plane",
    "kubeadm/kubelet_start",
    "kubeadm/token",
    "kubeadm/addons",
    "kubeadm/init",
    "kubeadm/discovery",
    "kubeadm/join_control_plane",
    "kubeadm/join",
    "kubeadm/phases",
    "kubeadm/reset",
    "kubeadm/dispatch",
    "kubectl_cmd",
    "etcdctl_cmd",
    "main",
]
# Not concatenated: package markers (docstrings only), the development entry, and embedded.py,
# which the builder replaces with constants.
_NOT_BUNDLED = {"__init__", "__main__", "embedded"}
PROGRAMS = ("kubeadm", "kubelet", "kubectl", "etcdctl")
_FIXED_MTIME = 1_700_000_000


class BuildError(Exception):
    """The package can't be built; str() says why and what to do."""


def normalize_version(text: str) -> str:
    """ "v1.20.15" for "v1.20.15" / "1.20.15"; BuildError for anything the package can't serve."""
    parsed = parse_kube_version(text)
    if parsed is None or parsed.major != 1:
        raise BuildError(f"{text!r} is not a Kubernetes version; give one like v1.20.15")
    if not FIRST_SUPPORTED_MINOR <= parsed.minor <= LAST_SUPPORTED_MINOR:
        raise BuildError(
            f"{text} is outside what the stand-ins support (v1.{FIRST_SUPPORTED_MINOR}.x to "
            f"v1.{LAST_SUPPORTED_MINOR}.x); pick a version in that range"
        )
    return str(parsed)


def _module_body(name: str) -> tuple[str, set[str], set[str]]:
    """A module's source without sibling imports and __future__ line; its defined/imported names."""
    path = STANDIN_DIR / f"{name}.py"
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    drop: set[int] = set()
    defined: set[str] = set()
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level and node not in tree.body:
            raise BuildError(f"{path}: relative import inside a function can't be concatenated")
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.level or node.module == "__future__"):
            end = node.end_lineno or node.lineno
            drop.update(range(node.lineno, end + 1))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        defined.add(sub.id)
    lines = [line for number, line in enumerate(source.splitlines(), 1) if number not in drop]
    return "\n".join(lines) + "\n", defined, imported


def _check_module_list() -> None:
    """Every module below standin/ is bundled, once; a new one must be added to STANDIN_MODULES."""
    found = {
        path.relative_to(STANDIN_DIR).with_suffix("").as_posix()
        for path in STANDIN_DIR.rglob("*.py")
        if path.stem not in _NOT_BUNDLED
    }
    listed = set(STANDIN_MODULES)
    if len(listed) != len(STANDIN_MODULES) or found != listed:
        missing, extra = sorted(found - listed), sorted(listed - found)
        raise BuildError(
            f"STANDIN_MODULES does not match standin/: not listed {missing}, no such file {extra}"
            " (or listed twice); list each module once, after the modules it imports from"
        )
    for package in {name.rsplit("/", 1)[0] for name in STANDIN_MODULES if "/" in name}:
        # A package's __init__.py is not bundled, so it may hold nothing else.
        marker = STANDIN_DIR / package / "__init__.py"
        tree = ast.parse(marker.read_text())
        if len(tree.body) != 1 or ast.get_docstring(tree) is None:
            raise BuildError(f"{marker}: a package marker holds its docstring only")


def kubeadm_images(version: str) -> list[str]:
    """What kubeadm lists for `version` (the product's table, a documented seam); none before
    1.24, the versions whose lab packages carry no container runtime."""
    from sealos.kubeversion import KubeVersion
    from sealos.package_versions import MIN_MINOR
    from sealos.package_versions import kubeadm_images as images

    v = KubeVersion.parse(version)
    return images(v) if v.minor >= MIN_MINOR else []


def _embedded_module(program: str, version: str) -> str:
    schemas = {}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        schemas["flags" if path.name == "kubeadm-flags.json" else data["apiVersion"]] = data
    payload = json.dumps(schemas, sort_keys=True, separators=(",", ":"))
    literal = (
        f"r'''{payload}'''"
        if "'''" not in payload and not payload.endswith("\\")
        else repr(payload)
    )
    return (
        "# ---- embedded: constants fixed by sealos_lab.package.builder ----\n"
        "import json\n"
        "from typing import Any\n\n"
        f"PROGRAM = {program!r}\n"
        f"PACKAGE_VERSION = {version!r}\n"
        "BUILT_AS_SCRIPT = True\n"
        f"IMAGES: list[str] = {kubeadm_images(version)!r}\n"
        f"PACKAGE_IMAGES: list[str] = {package_images(version)!r}\n"
        f"_SCHEMAS_JSON = {literal}\n"
        "_SCHEMAS_CACHE: dict[str, Any] = {}\n\n\n"
        "def load_schemas() -> dict[str, Any]:\n"
        '    """Every schema keyed by apiVersion, plus "flags" (kubeadm-flags.json)."""\n'
        "    if not _SCHEMAS_CACHE:\n"
        "        _SCHEMAS_CACHE.update(json.loads(_SCHEMAS_JSON))\n"
        "    return _SCHEMAS_CACHE\n"
    )


def standin_script(program: str, version: str) -> str:
    """The single-file stand-in for one program and Kubernetes version."""
    if program not in PROGRAMS:
        raise BuildError(f"unknown stand-in {program!r}")
    version = normalize_version(version)
    parts = [
        "#!/usr/bin/env python3\n"
        f"# {program} {version} -- sealos-lab STAND-IN, not Kubernetes.\n"
        "# Keeps kubeadm's contract for the lab (flags, strict config APIs, output) and runs no\n"
        "# containers. Built by sealos_lab.package.builder from src/sealos_lab/package/standin/.\n"
        "from __future__ import annotations\n\n",
        _embedded_module(program, version),
    ]
    owners: dict[str, str] = {
        name: "embedded"
        for name in ("PROGRAM", "PACKAGE_VERSION", "BUILT_AS_SCRIPT", "load_schemas")
    }
    all_imported: dict[str, str] = {}
    _check_module_list()
    for module in STANDIN_MODULES:
        body, defined, imported = _module_body(module)
        for name in defined:
            if name in owners:
                raise BuildError(f"standin/{module}.py redefines {name!r} (also in {owners[name]})")
            owners[name] = module
        for name in imported:
            all_imported.setdefault(name, module)
        parts.append(f"\n# ---- standin/{module}.py ----\n{body}")
    clashes = sorted(set(owners) & set(all_imported))
    if clashes:
        raise BuildError(f"names both defined and imported across modules: {clashes}")
    parts.append('\n\nif __name__ == "__main__":\n    sys.exit(standin_main())\n')
    script = "".join(parts)
    compile(script, f"<{program}>", "exec")
    return script


def _unit_files() -> dict[str, str]:
    kubelet_service = (
        "[Unit]\n"
        "Description=kubelet: The Kubernetes Node Agent (sealos-lab stand-in)\n"
        "Documentation=https://kubernetes.io/docs/home/\n"
        "Wants=network-online.target\nAfter=network-online.target\n\n"
        "[Service]\nExecStart=/usr/bin/kubelet\nRestart=always\nStartLimitInterval=0\n"
        "RestartSec=10\n\n[Install]\nWantedBy=multi-user.target\n"
    )
    dropin = (
        "# Note: This dropin only works with kubeadm and kubelet v1.11+\n"
        "[Service]\n"
        'Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/'
        'bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"\n'
        'Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"\n'
        '# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, '
        "populating the KUBELET_KUBEADM_ARGS variable dynamically\n"
        "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n"
        "# This is a file that the user can use for overrides of the kubelet args as a last "
        "resort.\n"
        "EnvironmentFile=-/etc/default/kubelet\n"
        "ExecStart=\n"
        "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
        "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n"
    )
    return {"kube/conf/kubelet.service": kubelet_service, "kube/conf/10-kubeadm.conf": dropin}


# lvscare's image for `--lvscare-mode static-pod` (sealos's default lvscareImage), which sealos
# packages carry beside Kubernetes' images.
LVSCARE_IMAGE = "docker.io/library/python:3.11-slim"


def package_images(version: str) -> list[str]:
    """The images the package's kube/images holds: kubeadm's list (from 1.24; the control plane's
    before) and lvscare's (what the stand-in kubelet takes as loaded on a node without a
    runtime)."""
    version = normalize_version(version)
    minor = int(version.split(".")[1])
    registry = "k8s.gcr.io" if minor < 25 else "registry.k8s.io"
    images = kubeadm_images(version) or [
        f"{registry}/{c}:{version}"
        for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
    ]
    return [*images, LVSCARE_IMAGE]


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = _FIXED_MTIME
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _images_archive(version: str) -> bytes:
    """kube/images/images.tar: a docker-archive (what `ctr -n k8s.io images import` loads) of one
    tiny image tagged with every name kubeadm asks the runtime for (its list from 1.24; the
    control plane's before) and lvscare's. It runs nothing: the stand-ins need no containers."""
    images = package_images(version)
    readme = (
        f"sealos-lab offline package {version}: this image stands for kubeadm's images.\n"
        "It holds this file only; the lab's stand-ins run no containers.\n"
    ).encode()
    layer = _tar_bytes([("README", readme)])
    diff_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        },
        sort_keys=True,
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": images, "Layers": [f"{diff_id}/layer.tar"]}],
        indent=2,
    ).encode()
    return _tar_bytes(
        [("manifest.json", manifest), (config_name, config), (f"{diff_id}/layer.tar", layer)]
    )


def _readme(version: str) -> str:
    return (
        f"# sealos-lab offline package {version}\n\n"
        "Laid out like sealos' kube1.14.1.tar.gz. kube/bin/kubeadm, kubelet and kubectl are the\n"
        "lab's STAND-INS (python3 scripts), not Kubernetes: they keep kubeadm's contract (flags "
        "of\n"
        "this release, strict decoding of the config APIs it accepts, real certificates, join\n"
        "discovery with CA pinning and bootstrap tokens, output formats) and run a small\n"
        "replicated stand-in apiserver instead of containers.\n\n"
        "Prepare a host: `cd kube/shell && sh init.sh`. Then use kubeadm as usual.\n"
        "Test mode (several hosts on one machine): SEALOS_STANDIN_ROOT=/dir prefixes every path "
        "the\n"
        "stand-ins own; SEALOS_STANDIN_NO_SYSTEMD=1 runs services as background processes.\n"
    )


def package_files(version: str) -> dict[str, tuple[bytes, int]]:
    """Every file of the package: archive path -> (content, mode)."""
    version = normalize_version(version)
    files: dict[str, tuple[bytes, int]] = {}
    for program in PROGRAMS:
        files[f"kube/bin/{program}"] = (standin_script(program, version).encode(), 0o755)
    # kubeadm's preflight wants crictl (1.24-1.30, and for any runtime but docker before): the
    # release mirror's stand-in, of the cri-tools minor that goes with this Kubernetes minor.
    from sealos_lab.release_mirror import crictl_standin  # it imports this module

    parsed = parse_kube_version(version)
    assert parsed is not None
    crictl = crictl_standin(f"{parsed.major}.{parsed.minor}.0")
    files["kube/bin/crictl"] = (crictl.encode(), 0o755)
    files["kube/shell/init.sh"] = ((FILES_DIR / "init.sh").read_bytes(), 0o755)
    for name, text in _unit_files().items():
        files[name] = (text.encode(), 0o644)
    files["kube/conf/net/calico.yaml"] = ((FILES_DIR / "calico.yaml").read_bytes(), 0o644)
    files["kube/conf/heapster/heapster.yaml"] = ((FILES_DIR / "heapster.yaml").read_bytes(), 0o644)
    files["kube/conf/dashboard/kubernetes-dashboard.yaml"] = (
        (FILES_DIR / "dashboard.yaml").read_bytes(),
        0o644,
    )
    files["kube/images/images.tar"] = (_images_archive(version), 0o644)
    files["kube/version"] = (f"{version}\n".encode(), 0o644)
    files["kube/README.md"] = (_readme(version).encode(), 0o644)
    return files


def default_package_name(version: str) -> str:
    """kube1.20.15.tar.gz, as sealos names its packages."""
    return f"kube{normalize_version(version)[1:]}.tar.gz"


def build(version: str, out: Optional[Path] = None) -> Path:
    """Write the offline package for a Kubernetes version; returns its path.

    out defaults to ./kube<version>.tar.gz; an existing file is replaced atomically.
    """
    version = normalize_version(version)
    target = Path(out) if out is not None else Path.cwd() / default_package_name(version)
    files = package_files(version)
    directories = sorted({str(Path(p).parent) for p in files} | {"kube"})
    expanded: set[str] = set()
    for directory in directories:
        parts = Path(directory).parts
        expanded.update(str(Path(*parts[: i + 1])) for i in range(len(parts)))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=_FIXED_MTIME, filename="") as zipped,
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as archive,
        ):
            for directory in sorted(expanded):
                info = tarfile.TarInfo(directory)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.mtime = _FIXED_MTIME
                archive.addfile(info)
            for name in sorted(files):
                data, mode = files[name]
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = mode
                info.mtime = _FIXED_MTIME
                archive.addfile(info, io.BytesIO(data))
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def main(argv: Optional[list[str]] = None) -> int:
    """`sealos-lab package --version vX.Y.Z [--out FILE]`: build and print the package path."""
    parser = argparse.ArgumentParser(
        prog="sealos-lab package",
        description="Build the lab's offline package (stand-ins for kubeadm, kubelet, kubectl).",
    )
    parser.add_argument("--version", required=True, help="Kubernetes version, e.g. v1.20.15")
    parser.add_argument("--out", type=Path, help="output file (default ./kube<version>.tar.gz)")
    args = parser.parse_args(argv)
    try:
        path = build(args.version, args.out)
    except BuildError as exc:
        sys.stderr.write(f"sealos-lab package: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(
            f"sealos-lab package: cannot write {args.out or 'the package'}: {exc.strerror}; "
            "choose a writable --out path\n"
        )
        return 1
    print(path)
    return 0
