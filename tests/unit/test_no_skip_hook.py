"""The SEALOS_NO_SKIP=1 hook of tests/conftest.py, run on a small suite of its own in a pytest
subprocess: every kind of skip passes quietly without it and fails the run with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

SUITE = {
    "test_runs.py": "def test_passes():\n    pass\n",
    "test_skip_in_test.py": (
        "import pytest\n\n\ndef test_steps_aside():\n    pytest.skip('needs root')\n"
    ),
    "test_skip_mark.py": (
        "import pytest\n\n\n@pytest.mark.skip(reason='marked')\ndef test_marked():\n    pass\n"
    ),
    "test_skip_module.py": (
        "import pytest\n\npytest.skip('whole module', allow_module_level=True)\n\n\n"
        "def test_never_collected():\n    pass\n"
    ),
    "test_importorskip.py": (
        "import pytest\n\npytest.importorskip('sealos_no_such_module')\n\n\n"
        "def test_never_collected():\n    pass\n"
    ),
    "test_xfail.py": (
        "import pytest\n\n\n@pytest.mark.xfail(reason='known')\ndef test_known():\n"
        "    assert False\n"
    ),
}


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # its own rootdir, not this project's
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    for name, text in SUITE.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def pytest_in(folder: Path, no_skip: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SEALOS_NO_SKIP"}
    if no_skip:
        env["SEALOS_NO_SKIP"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA",
         "--continue-on-collection-errors", str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def summary(out: str) -> list[str]:
    """The short test summary's lines (`-rA`), e.g. `SKIPPED [1] test_x.py:4: why`."""
    lines = out.split("short test summary info", 1)[-1].splitlines()
    return [line for line in lines if line.split(" ", 1)[0].isupper()]


def test_without_it_skips_are_skips(suite: Path) -> None:
    proc = pytest_in(suite, no_skip=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = summary(proc.stdout)
    for name in ("test_skip_in_test.py", "test_skip_mark.py", "test_skip_module.py",
                 "test_importorskip.py"):  # fmt: skip
        assert any(ln.startswith("SKIPPED") and name in ln for ln in lines), (name, proc.stdout)
    assert not any(ln.startswith(("FAILED", "ERROR")) for ln in lines), proc.stdout
    assert "1 passed, 4 skipped, 1 xfailed" in proc.stdout, proc.stdout


def test_with_it_every_skip_fails_the_run(suite: Path) -> None:
    proc = pytest_in(suite, no_skip=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = summary(proc.stdout)
    assert not any(ln.startswith("SKIPPED") for ln in lines), proc.stdout
    # A skip while a test runs: that test fails (an error when its setup skipped), saying why.
    for test in ("test_skip_in_test.py::test_steps_aside", "test_skip_mark.py::test_marked"):
        assert any(ln.split(" ", 1)[0] in ("FAILED", "ERROR") and ln.split(" ")[1] == test
                   for ln in lines), (test, proc.stdout)  # fmt: skip
    assert "skipped under SEALOS_NO_SKIP=1: Skipped: needs root" in proc.stdout, proc.stdout
    # A skip while a module is collected: a collection error for that module.
    for module in ("test_skip_module.py", "test_importorskip.py"):
        assert any(ln.startswith(f"ERROR {module}") for ln in lines), (module, proc.stdout)
    assert "whole module" in proc.stdout and "sealos_no_such_module" in proc.stdout
    # The rest is untouched: the passing test passes, the expected failure stays expected.
    assert any(ln.startswith("PASSED test_runs.py::test_passes") for ln in lines), proc.stdout
    assert any(ln.startswith("XFAIL test_xfail.py::test_known") for ln in lines), proc.stdout
    assert "1 failed, 1 passed, 1 xfailed, 3 errors" in proc.stdout, proc.stdout
