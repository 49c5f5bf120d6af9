"""sealos_lab.testing.wait_for_output: the tests' bounded wait for a process's "ready" line."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from sealos_lab.testing import wait_for_output


def child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE)


def test_returns_once_the_marker_is_written_not_before():
    proc = child("import time; print('starting'); time.sleep(0.5); print('ready'); time.sleep(30)")
    try:
        started = time.monotonic()
        out = wait_for_output(proc, "ready", timeout=20)
        waited = time.monotonic() - started
        assert out.splitlines() == ["starting", "ready"]
        assert 0.4 < waited < 10, waited
    finally:
        proc.kill()
        proc.wait()


def test_gives_up_at_the_timeout_with_what_was_written():
    proc = child("import time; print('starting'); time.sleep(30)")
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no 'ready' within 0\.5 s.*starting"):
            wait_for_output(proc, "ready", timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        proc.kill()
        proc.wait()


def test_a_process_that_exits_first_is_reported_at_once():
    proc = child("import sys; print('bind failed'); sys.exit(3)")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"exited \(rc 3\).*bind failed"):
        wait_for_output(proc, "ready", timeout=20)
    assert time.monotonic() - started < 10
