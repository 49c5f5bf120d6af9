"""benchmarks/init and benchmarks/lab_up, run small as smoke: they must run, print their table and
leave no lab behind, and their figures must be consistent with each other and with this test's own
clock (stand-in time on a critical path, parts that add up, the CLI timed around its process). The
figures are for people to read; no test judges speed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sealos_lab import netns
from sealos_lab.names import owns_namespace

pytestmark = [pytest.mark.root, pytest.mark.lab]

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, lab: str, *args: str) -> subprocess.CompletedProcess:
    """Run a benchmark on a lab called `lab`; it must leave none of that lab's namespaces (other
    labs on this shared machine come and go meanwhile)."""
    if os.geteuid() != 0:
        pytest.skip("the benchmark builds a lab")
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--name", lab, *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    left = [ns for ns in netns.list_netns() if owns_namespace(lab, ns)]
    assert not left, f"the benchmark left namespaces behind: {left}"
    return proc


PHASE_ROW = re.compile(r"^ {4}(\S.*?) +([\d.]+) s  \(stand-ins +([\d.]+) s\)$")
CALL_ROW = re.compile(r"^ {6}stand-in at +([\d.]+) s +([\d.]+) s  (\S+): (.*)$")
CLI_ROW = re.compile(r"^  1\+1 CLI: wall ([\d.]+) s, its own phase times ([\d.]+) s;")


def phase_rows(stdout: str) -> list[tuple[str, float, float, list[tuple[float, float, str]]]]:
    """--verbose's phases: (title, seconds, stand-in seconds, the stand-in calls on its path as
    (start, seconds, command))."""
    phases: list[tuple[str, float, float, list[tuple[float, float, str]]]] = []
    for line in stdout.splitlines():
        if m := PHASE_ROW.match(line):
            phases.append((m.group(1), float(m.group(2)), float(m.group(3)), []))
        elif (m := CALL_ROW.match(line)) and phases:
            phases[-1][3].append((float(m.group(1)), float(m.group(2)), m.group(4)))
    return phases


def test_init_benchmark_prints_wall_time_and_our_overhead():
    started = time.monotonic()
    proc = run("init", "bn-init", "--sizes", "1+1", "--rounds", "1", "--verbose")
    elapsed = time.monotonic() - started
    rows = [line.split() for line in proc.stdout.splitlines()]
    row = next((r for r in rows if r[:1] == ["1+1"] and re.fullmatch(r"[\d.]+", r[1])), None)
    assert row is not None and len(row) == 7, proc.stdout
    wall, standins, ours, cli_wall = (float(x) for x in row[1:5])
    assert row[5:] == ["2/2", "2/2"], proc.stdout  # both clusters Ready, as kubectl lists them
    # `ours` is wall minus stand-ins by definition: judge the parts, not that subtraction.
    # Both runs (in process, CLI) happened inside this test's own clock.
    assert wall > 0 and cli_wall > 0 and wall + cli_wall < elapsed, (elapsed, proc.stdout)
    assert 0 < standins < wall and ours > 0, proc.stdout
    phases = phase_rows(proc.stdout)
    assert len(phases) >= 3, proc.stdout
    # The per-phase decomposition (with the time outside the phases) is the whole run.
    assert abs(sum(s for _, s, _, _ in phases) - wall) <= 0.01 * len(phases), proc.stdout
    assert abs(sum(st for _, _, st, _ in phases) - standins) <= 0.01 * len(phases), proc.stdout
    for title, seconds, standin, calls in phases:
        assert 0 <= standin <= seconds + 0.01, (title, seconds, standin)
        # A critical path is a chain: its stand-in calls follow one another (no two at once),
        # and they are the phase's stand-in time.
        for (a, s, _), (b, _, _) in zip(calls, calls[1:]):
            assert a + s <= b + 0.02, (title, calls)
        assert abs(sum(s for _, s, _ in calls) - standin) <= 0.01 * (len(calls) + 1), (
            title,
            standin,
            calls,
        )
    # Stand-in time is at least kubeadm init on the first master (on every path to the end).
    init = next(p for p in phases if p[0] == "Init the first master")
    assert any("kubeadm init" in cmd for _, _, cmd in init[3]), init
    assert standins >= max(s for _, s, _ in init[3]) - 0.01, proc.stdout
    # The CLI's wall time, from before its process started to after it exited, holds the phase
    # times it printed itself in the same run.
    cli = next((m for line in proc.stdout.splitlines() if (m := CLI_ROW.match(line))), None)
    assert cli is not None, proc.stdout
    assert float(cli.group(1)) == cli_wall and float(cli.group(2)) > 0, proc.stdout
    assert cli_wall >= float(cli.group(2)), proc.stdout


def test_lab_up_benchmark_prints_time_to_ssh():
    started = time.monotonic()
    proc = run("lab_up", "bn-up", "--sizes", "2", "--rounds", "1")
    elapsed = time.monotonic() - started
    rows = [line.split() for line in proc.stdout.splitlines()]
    row = next((r for r in rows if r and r[0] == "2"), None)
    assert row is not None and len(row) == 10, proc.stdout
    up, down, cli_up = float(row[1]), float(row[4]), float(row[6])
    # Every host took an SSH login after the in-process up and after `sealos-lab up`.
    assert row[5] == "2/2" and row[9] == "2/2", proc.stdout
    # Both ups and the down happened inside this test's own clock.
    assert up > 0 and cli_up > 0 and down > 0 and up + down + cli_up < elapsed, proc.stdout
