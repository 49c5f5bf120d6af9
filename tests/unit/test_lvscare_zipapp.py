"""The one-file build: runs with a bare python3 (no site-packages), pyroute2 from inside it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lvscare.zipapp import build


@pytest.fixture(scope="module")
def pyz(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("zipapp") / "lvscare")


def bare_python(*args: str) -> subprocess.CompletedProcess:
    # -S: no site-packages, -E: no PYTHONPATH; what the file needs must be inside it.
    return subprocess.run(
        [sys.executable, "-S", "-E", *args], capture_output=True, text=True, cwd="/"
    )


def test_it_is_one_executable_file_with_a_shebang(pyz):
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert stat.S_IMODE(os.stat(pyz).st_mode) == 0o755
    names = zipfile.ZipFile(pyz).namelist()
    assert "__main__.py" in names and "lvscare/cli.py" in names
    assert "pyroute2/ipvs.py" in names and "pyroute2/ipvs.pyc" in names
    assert "lvscare/demo.py" not in names, "lab-only code stays out of the node's copy"


def test_it_runs_without_site_packages(pyz):
    proc = bare_python(str(pyz), "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("lvscare ")


def test_pyroute2_comes_from_inside_the_file(pyz):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from pyroute2 import IPVS, IPVSDest, IPVSService, IPRoute; "
        "from pyroute2.netlink.exceptions import NetlinkError; "
        "import pyroute2; print(pyroute2.__file__); "
        "print(IPVSDest(addr='10.0.0.1', port=1)['fwd_method'])"
    )
    proc = bare_python("-c", code, str(pyz))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(str(pyz))
    assert lines[1] == "3", "pyroute2's IPVSDest still defaults to direct routing (lvscare sets 0)"


def test_bad_input_from_the_file_is_one_sentence(pyz):
    proc = bare_python(str(pyz), "care", "--vs", "10.103.97.2", "--rs", "192.168.0.2:6443")
    assert proc.returncode == 2
    assert proc.stderr == (
        "lvscare: --vs 10.103.97.2 has no port: write it as IP:PORT, e.g. 192.168.0.2:6443.\n"
    )
