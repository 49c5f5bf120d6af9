"""benchmarks/package_build, run small as smoke: it must run and print its figures (the local
upstream mode needs nothing; --lab needs root for the lab cache and servers). No test judges time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "package_build"


def run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_local_upstream_mode_prints_both_builds() -> None:
    out = run("--scale", "0.01")
    assert re.search(r"^second build: [\d.]+ s, 0 requests, 0 downloads", out, re.M), out
    assert "byte-identical: True" in out, out


@pytest.mark.root
def test_lab_mode_prints_cold_and_warm_builds_bytes_files_and_images() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab's releases need root")
    out = run("--lab")
    assert re.search(r"^cold build: [\d.]+ s, \d+ downloads", out, re.M), out
    assert re.search(r"^warm build: [\d.]+ s, 0 downloads, 0 mirror requests$", out, re.M), out
    assert re.search(r"^package: \d+ bytes .*byte-identical: True$", out, re.M), out
    assert re.search(r"^contents: \d+ files, 10 images$", out, re.M), out


@pytest.mark.root
@pytest.mark.lab
def test_init_mode_prints_both_installs_and_their_ratio() -> None:
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root")
    out = run("--lab", "--init", "1+1")
    assert re.search(r"^init 1\+1, built package: [\d.]+ s$", out, re.M), out
    assert re.search(r"^init 1\+1, old-shape package: [\d.]+ s$", out, re.M), out
    assert re.search(r"^real containerd and images cost [\d.]+x", out, re.M), out
    assert (
        "sl-bench-pkinit"
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    ), "the benchmark left its lab behind"
