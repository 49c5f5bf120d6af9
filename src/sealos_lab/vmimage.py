"""Disk images and the initramfs that the lab's VMs boot.

- root image: the lab rootfs plus the kernel's modules, an ext4 image made with `mkfs.ext4 -d`
  (no loop device), cached; VMs never write to it (`snapshot=on` or a qcow2 overlay on top).
- initramfs: busybox, the virtio drivers and `vm_init.sh`, cached.
- folder images: a small ext4 image made from any folder (the shared folder of `vm.run`, the
  per-host files of a VM host).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from sealos_lab.kernel import Kernel, cache_lock, ensure_kernel, module_load_order
from sealos_lab.paths import CACHE
from sealos_lab.rootfs import ensure_rootfs

BUSYBOX = Path("/bin/busybox")
HERE = Path(__file__).resolve().parent
# Drivers the initramfs needs before it can see its disks and the command of a `vm.run`.
INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "qemu_fw_cfg", "virtio_rng"]
# systemd units a VM host does without: each costs seconds of emulated CPU at boot, and none of
# them matters to a throwaway lab host (no firmware, no fstab, no binfmt, no fuse, no scrubbing).
MASKED_UNITS = [
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "fstrim.timer",
    "dpkg-db-backup.timer",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "sys-fs-fuse-connections.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "dev-hugepages.mount",
    "kmod-static-nodes.service",
    "modprobe@configfs.service",
    "modprobe@dm_mod.service",
    "modprobe@drm.service",
    "modprobe@efi_pstore.service",
    "modprobe@fuse.service",
    "modprobe@loop.service",
    "systemd-journal-flush.service",
    "systemd-random-seed.service",
    "systemd-remount-fs.service",
    "systemd-sysusers.service",
    "systemd-firstboot.service",
    "systemd-machine-id-commit.service",
    "systemd-pcrphase-sysinit.service",
    "systemd-pcrphase.service",
    "systemd-repart.service",
    "systemd-pstore.service",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    "systemd-networkd-wait-online.service",
    "getty@tty1.service",
]
# Free room in the root image for what hosts install (the image file is sparse).
ROOT_FREE_BYTES = 3 << 30
# Bump when the recipe of an image changes, so cached images are rebuilt.
RECIPE = "1"


def vm_cache() -> Path:
    """Where the VM images live."""
    return CACHE / "vm"


def _tree_size(root: Path) -> tuple[int, int]:
    """Bytes and number of entries under `root` (symlinks not followed)."""
    total, count = 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            count += 1
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total, count


def make_ext4(source: Path, image: Path, free_bytes: int = 32 << 20, label: str = "") -> Path:
    """Write an ext4 image holding a copy of the folder `source` (owners and modes kept)."""
    used, entries = _tree_size(source)
    # Room for every file's blocks and inode plus metadata; the file is sparse, so be generous.
    size = used + used // 4 + entries * 8192 + free_bytes + (16 << 20)
    size = (size + (1 << 20) - 1) // (1 << 20) << 20
    image.unlink(missing_ok=True)
    with image.open("wb") as fh:
        fh.truncate(size)
    argv = ["mkfs.ext4", "-q", "-F", "-d", str(source), "-E", "root_owner=0:0"]
    if label:
        argv += ["-L", label]
    proc = subprocess.run([*argv, str(image)], capture_output=True, text=True)
    if proc.returncode != 0:
        image.unlink(missing_ok=True)
        raise RuntimeError(f"mkfs.ext4 -d {source} failed: {proc.stderr.strip()}")
    return image


def _root_key(kernel: Kernel, layers: list[Path]) -> str:
    stamp = (CACHE / "rootfs.stamp").read_text().strip()
    text = f"{RECIPE} {stamp} {kernel.version}"
    text += "".join(f" {layer.name}" for layer in layers)  # a layer's folder name has its stamp
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _copy_layer(layer: Path, staging: Path) -> None:
    """Put an overlay upper folder over staging: its files replace (never write through) the
    hard-linked ones, its whiteouts (character devices 0:0) delete."""
    subprocess.run(["cp", "-a", "--remove-destination", f"{layer}/.", str(staging)], check=True)
    for dirpath, dirnames, filenames in os.walk(layer):
        for name in dirnames + filenames:
            here = Path(dirpath) / name
            st = os.lstat(here)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                target = staging / here.relative_to(layer)
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)


def ensure_root_image(kernel: Kernel | None = None, layers: list[Path] | None = None) -> Path:
    """The cached root disk image (lab rootfs + `layers` (hostlayers' folders, lowest first) +
    kernel modules); built once per set of layers, about 15 s."""
    kernel = kernel or ensure_kernel()
    rootfs = ensure_rootfs()
    layers = layers or []
    image = vm_cache() / f"root-{_root_key(kernel, layers)}.img"
    if image.exists():
        return image
    with cache_lock("vm-root"):
        if image.exists():
            return image
        vm_cache().mkdir(parents=True, exist_ok=True)
        staging = vm_cache() / "root.staging"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            # Hard links: a copy of 350 MB in a second; nothing in staging is ever rewritten.
            subprocess.run(["cp", "-al", str(rootfs), str(staging)], check=True)
            for layer in layers:
                _copy_layer(layer, staging)
            modules = staging / "usr/lib/modules"
            modules.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["cp", "-al", str(kernel.modules_dir), str(modules / kernel.version)], check=True
            )
            tmp = image.with_suffix(".building")
            make_ext4(staging, tmp, free_bytes=ROOT_FREE_BYTES, label="sealos-lab")
            tmp.rename(image)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return image


def _cpio(folder: Path, out: Path) -> None:
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    with out.open("wb") as fh:
        subprocess.run(
            ["cpio", "--quiet", "-o", "-H", "newc", "--owner=0:0"],
            cwd=folder,
            input="\n".join([".", *names]).encode() + b"\n",
            stdout=fh,
            check=True,
        )


def ensure_initramfs(kernel: Kernel | None = None) -> Path:
    """The cached initramfs (busybox + virtio drivers + vm_init.sh), built in about a second."""
    kernel = kernel or ensure_kernel()
    init = (HERE / "vm_init.sh").read_bytes()
    stage = (HERE / "vm_run_stage.sh").read_bytes()
    digest = hashlib.sha256()
    for part in (RECIPE.encode(), init, stage, kernel.version.encode(), BUSYBOX.read_bytes()):
        digest.update(hashlib.sha256(part).digest())
    digest.update(" ".join(INITRAMFS_MODULES + MASKED_UNITS).encode())
    out = vm_cache() / f"initrd-{digest.hexdigest()[:12]}.cpio"
    if out.exists():
        return out
    with cache_lock("vm-initrd"):
        if out.exists():
            return out
        vm_cache().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=vm_cache(), prefix="initrd.") as tmpdir:
            tree = Path(tmpdir) / "tree"
            for sub in ("bin", "dev", "proc", "sys", "newroot", "lab/ko"):
                (tree / sub).mkdir(parents=True)
            shutil.copy2(BUSYBOX, tree / "bin/busybox")
            (tree / "bin/sh").symlink_to("busybox")
            (tree / "init").write_bytes(init)
            (tree / "init").chmod(0o755)
            (tree / "lab/run-stage").write_bytes(stage)
            names = []
            for ko in module_load_order(kernel, INITRAMFS_MODULES):
                shutil.copy2(ko, tree / "lab/ko" / ko.name)
                names.append(ko.name)
            (tree / "lab/modules").write_text("\n".join(names) + "\n")
            (tree / "lab/masked-units").write_text("\n".join(MASKED_UNITS) + "\n")
            tmp = Path(tmpdir) / "initrd.cpio"
            _cpio(tree, tmp)
            tmp.rename(out)
    return out
