"""The cached Debian cloud kernel the lab's VMs boot: IPVS as loadable modules, modules.dep made,
and a cached kernel still used when apt cannot say or fetch the current one."""

from __future__ import annotations

import os

import pytest

from sealos_lab import kernel as kmod

pytestmark = [pytest.mark.vm, pytest.mark.root]


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the kernel cache is root's (/var/cache/sealos-lab)")


def test_kernel_has_ipvs_modules_in_load_order() -> None:
    k = kmod.ensure_kernel()
    assert k.vmlinuz.is_file() and k.version.endswith("-cloud-amd64")
    assert "ip_vs.ko" in (k.modules_dir / "modules.dep").read_text()
    order = [p.name for p in kmod.module_load_order(k, ["ip_vs_rr"])]
    assert order[-2:] == ["ip_vs.ko", "ip_vs_rr.ko"]
    assert order.index("nf_conntrack.ko") < order.index("ip_vs.ko")


def test_cached_kernel_used_without_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    current = kmod.ensure_kernel()
    monkeypatch.setattr(kmod, "_resolve_package", lambda: None)
    assert kmod.ensure_kernel(quiet=True) == current


def test_cached_kernel_used_when_a_newer_one_cannot_be_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    current = kmod.ensure_kernel()

    def offline(package: str) -> None:
        raise RuntimeError(f"could not download {package}")

    monkeypatch.setattr(kmod, "_resolve_package", lambda: "linux-image-9.9.9-1-cloud-amd64")
    monkeypatch.setattr(kmod, "_download", offline)
    assert kmod.ensure_kernel(quiet=True) == current
