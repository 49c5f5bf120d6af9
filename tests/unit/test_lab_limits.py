"""The kernel limits a lab raises for its hosts and puts back when the last lab is gone (issue 12:
40 nspawn hosts failed on a stock machine, fs.inotify.max_user_instances being 128)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealos_lab import limits
from sealos_lab.bringup import MAX_HOSTS

INSTANCES = "fs.inotify.max_user_instances"
WATCHES = "fs.inotify.max_user_watches"


def fake_proc(tmp_path: Path, instances: int = 128, watches: int = 8192) -> Path:
    root = tmp_path / "proc-sys"
    (root / "fs/inotify").mkdir(parents=True)
    (root / "fs/inotify/max_user_instances").write_text(f"{instances}\n")
    (root / "fs/inotify/max_user_watches").write_text(f"{watches}\n")
    return root


def value(root: Path, key: str) -> int:
    return int((root / key.replace(".", "/")).read_text())


def test_the_host_cap_allows_three_masters_and_fifty_nodes():
    assert MAX_HOSTS >= 53


def test_what_n_hosts_need_grows_with_n_and_exceeds_the_stock_limit_well_before_40():
    assert limits.needed(0)[INSTANCES] == 128
    assert limits.needed(53)[INSTANCES] >= 1024  # 3+37 ran with 1024; 53 need more
    assert limits.needed(40)[INSTANCES] > 128
    assert limits.needed(2)[INSTANCES] < limits.needed(3)[INSTANCES]
    assert limits.needed(53)[WATCHES] > 8192


def test_raise_records_the_old_values_and_restore_puts_them_back(tmp_path: Path):
    proc = fake_proc(tmp_path)
    saved = tmp_path / "state" / "kernel-limits.json"
    changed = limits.raise_for(53, saved, proc)
    assert changed == limits.needed(53)
    assert value(proc, INSTANCES) == limits.needed(53)[INSTANCES]
    assert value(proc, WATCHES) == limits.needed(53)[WATCHES]
    assert json.loads(saved.read_text())[INSTANCES]["old"] == 128
    assert limits.restore(saved, proc) == {INSTANCES: 128, WATCHES: 8192}
    assert value(proc, INSTANCES) == 128 and value(proc, WATCHES) == 8192
    assert not saved.exists()


def test_a_limit_already_high_enough_is_left_alone_and_never_restored(tmp_path: Path):
    proc = fake_proc(tmp_path, instances=4096, watches=1_000_000)
    saved = tmp_path / "kernel-limits.json"
    assert limits.raise_for(53, saved, proc) == {}
    assert not saved.exists()
    assert limits.restore(saved, proc) == {}
    assert value(proc, INSTANCES) == 4096 and value(proc, WATCHES) == 1_000_000


def test_a_second_raise_keeps_the_first_old_value(tmp_path: Path):
    # Two labs: the second raise (more hosts in all) must not record the first raise as "old".
    proc = fake_proc(tmp_path)
    saved = tmp_path / "kernel-limits.json"
    limits.raise_for(3, saved, proc)
    limits.raise_for(13, saved, proc)
    assert value(proc, INSTANCES) == limits.needed(13)[INSTANCES]
    limits.restore(saved, proc)
    assert value(proc, INSTANCES) == 128


def test_a_value_changed_by_someone_else_since_is_not_restored(tmp_path: Path):
    proc = fake_proc(tmp_path)
    saved = tmp_path / "kernel-limits.json"
    limits.raise_for(53, saved, proc)
    (proc / "fs/inotify/max_user_instances").write_text("8192\n")
    assert limits.restore(saved, proc) == {WATCHES: 8192}
    assert value(proc, INSTANCES) == 8192


def test_a_limit_that_cannot_be_read_is_skipped_not_fatal(tmp_path: Path):
    proc = fake_proc(tmp_path)
    (proc / "fs/inotify/max_user_instances").unlink()
    (proc / "fs/inotify/max_user_instances").mkdir()  # reads and writes fail
    lines: list[str] = []
    changed = limits.raise_for(53, tmp_path / "k.json", proc, log=lines.append)
    assert changed == {WATCHES: limits.needed(53)[WATCHES]}


@pytest.fixture
def lab_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A lab state folder and a fake /proc/sys, for `down`'s restore decision."""
    from sealos_lab import paths, state, teardown

    st = tmp_path / "state"
    st.mkdir()
    monkeypatch.setattr(paths, "STATE", st)
    monkeypatch.setattr(state, "STATE", st)
    proc = fake_proc(tmp_path)
    monkeypatch.setattr(limits, "PROC_SYS", proc)
    monkeypatch.setattr(teardown, "require_root", lambda: None)
    monkeypatch.setattr(teardown.netns, "list_netns", lambda: [])
    return st, proc


def test_down_restores_only_when_the_last_lab_is_gone(lab_state: tuple[Path, Path]):
    from sealos_lab import paths, teardown

    st, proc = lab_state
    (st / "one").mkdir()
    (st / "two").mkdir()
    limits.raise_for(53, paths.limits_record(), proc)
    raised = limits.needed(53)[INSTANCES]
    teardown.down("one")
    assert value(proc, INSTANCES) == raised  # lab "two" is still here
    teardown.down("two")
    assert value(proc, INSTANCES) == 128
    assert not paths.limits_record().exists()
