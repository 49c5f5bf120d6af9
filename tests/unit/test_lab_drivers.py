"""The lab picks one host driver from the kind its state records; no root needed."""

from __future__ import annotations

import pytest

from sealos_lab import state
from sealos_lab.drivers import NspawnDriver, VMDriver


def _lab(tmp_path, monkeypatch, kind: str) -> state.Lab:
    monkeypatch.setattr(state, "lab_dir", lambda name: tmp_path / name)
    lab = state.Lab(name="d", subnet="10.250.7.0/24", kind=kind)
    host = state.LabHost("h1", hostname="d-h1", ip="10.250.7.11", kind=kind, netns="n", machine="m")
    lab.hosts.append(host)
    lab.save()
    return state.Lab.load("d")


@pytest.mark.parametrize(("kind", "driver", "log"), [
    ("nspawn", NspawnDriver, "hosts/h1/console.log"),
    ("vm", VMDriver, "hosts/h1/vm/console.log"),
])  # fmt: skip
def test_the_recorded_kind_picks_the_driver(tmp_path, monkeypatch, kind, driver, log):
    lab = _lab(tmp_path, monkeypatch, kind)
    assert isinstance(lab.driver, driver)
    assert lab.driver.console_log(lab, lab.hosts[0]) == tmp_path / "d" / log
    assert not lab.is_running("h1")  # no PID recorded


def test_a_damaged_kind_says_how_to_fix(tmp_path, monkeypatch):
    lab = _lab(tmp_path, monkeypatch, "lxc")
    with pytest.raises(state.LabError, match=r"not a kind of lab host.*sealos-lab down"):
        lab.is_running("h1")
