"""`vm.run`: one TCG VM with Debian's kernel runs a command that needs real IPVS (issue 3, #3)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sealos_lab import vm

pytestmark = [pytest.mark.vm, pytest.mark.root]


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the VM runner needs root (qemu, mkfs.ext4 with owners)")


def test_ipvs_command_output_and_exit_code(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from the host\n")
    command = (
        "cat data.txt; pwd; id -u; "
        "ipvsadm -A -t 10.0.0.1:80 -s rr && ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m && "
        "ipvsadm -Ln; echo to-stderr >&2; exit 7"
    )
    result = vm.run(tmp_path, command, timeout=240)
    assert not result.timed_out, result.output
    assert result.returncode == 7, result.output
    lines = result.output.splitlines()
    assert lines[:3] == ["from the host", "/mnt/share", "0"], result.output
    assert any(line.split()[:3] == ["TCP", "10.0.0.1:80", "rr"] for line in lines), result.output
    assert any(line.split()[:3] == ["->", "10.0.0.2:80", "Masq"] for line in lines), result.output
    assert "to-stderr" in lines, result.output
    # The guest runs Debian's kernel, not this machine's (which has no IPVS).
    assert "IP Virtual Server version" in result.output


def test_hung_command_is_killed_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    share = tmp_path / "share"
    share.mkdir()
    # vm.run's temporary folder (share image, qemu's snapshot overlay, logs) goes here.
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    result = vm.run(share, "echo started; sleep 600", timeout=40)
    # The VM booted and ran the command, which then hung: not a VM that never came up.
    assert result.output.startswith("started\n"), result.output
    assert result.timed_out
    assert result.returncode == vm.TIMEOUT_RC
    assert "timed out after 40 s" in result.output
    assert list(scratch.iterdir()) == []


def test_cli_prints_output_and_returns_exit_code(tmp_path: Path) -> None:
    """The `sealos-lab vm-run DIR -- CMD` body: output on stdout, the command's exit code."""
    (tmp_path / "x").write_text("42\n")
    code = (
        "import sys; from sealos_lab import vm; "
        "sys.exit(vm.main_vm_run(sys.argv[1], ['cat x && lsmod | grep -c ^ip_vs && exit 3']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    out = proc.stdout.split()
    assert out[0] == "42" and int(out[1]) >= 2, proc.stdout


def test_cli_rejects_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vm.main_vm_run(str(tmp_path / "nope"), ["true"]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "Traceback" not in err
