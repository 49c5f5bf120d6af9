"""benchmarks/failover, run small as smoke: it must run, print its table and clean up.
The figures themselves are judged by a person reading them, never by a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sealos_lab import netns

pytestmark = pytest.mark.root

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "failover"


def test_failover_benchmark_runs_and_prints_its_table():
    if os.geteuid() != 0:
        pytest.skip("the benchmark builds network namespaces")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--trials", "2", "--cpu-seconds", "3", "--backend", "nft"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("killed ") and " 2 " in line for line in lines), proc.stdout
    assert any(line.startswith("black-holed ") for line in lines), proc.stdout
    assert any(line.startswith("CPU (3 real servers, idle): lvscare used ") for line in lines)
    assert any(line.startswith("CPU (50 real servers, idle): lvscare used ") for line in lines)
    assert any(line.startswith("repair after nft flush ruleset: 2 trials") for line in lines)
    assert any(line.startswith("flush storm (5 flushes") for line in lines), proc.stdout
    assert any(line.startswith("kept-alive client on black-holed ") for line in lines)
    figures = json.loads(lines[-1])
    assert len(figures["killed"]) == len(figures["black_holed"]) == 2
    assert len(figures["flush_repair"]) == 2 and figures["flush_storm_attempts"] > 0
    assert not [ns for ns in netns.list_netns() if ns.startswith("lvs-bench-")]
