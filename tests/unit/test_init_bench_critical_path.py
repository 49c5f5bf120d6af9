"""benchmarks/init subtracts the stand-in time on each phase's critical path: in a parallel phase
the turn that finished last, the turns it waited for and the phase's `prepare`; not the largest
stand-in time of any host. Phases record each host's turn, which is what makes the path known."""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "init"


@pytest.fixture(scope="module")
def bench():
    loader = importlib.machinery.SourceFileLoader("bench_init", str(BENCH))
    spec = importlib.util.spec_from_loader("bench_init", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


JOIN = "kubeadm join 10.103.97.2:6443 --token x"
OURS = "systemctl enable --now lvscare"


def run_of(phases, host_times, timings, seconds=100.0):
    return {
        "seconds": seconds,
        "started": 0.0,
        "phases": phases,
        "host_times": host_times,
        "timings": timings,
    }


def test_parallel_phase_counts_the_host_that_finished_last_not_the_largest(bench):
    # n1 spends 8 s in kubeadm but finishes at 9 s; n2 spends 3 s in kubeadm and 7 s in our
    # own work, finishing last at 10 s: only n2's 3 s delayed the phase's end.
    run = run_of(
        [["Join the nodes", 0.0, 10.0, True]],
        [["Join the nodes", "n1", 0.0, 9.0], ["Join the nodes", "n2", 0.0, 10.0]],
        {
            "n1": [[0.5, 8.0, JOIN], [8.5, 0.4, OURS]],
            "n2": [[0.1, 3.0, JOIN], [3.2, 6.7, OURS]],
        },
        seconds=10.0,
    )
    _wall, ours, phases = bench.overhead(run)
    seconds, standin, hosts, _calls = phases["Join the nodes"]
    assert (seconds, hosts) == (10.0, ["n2"])
    assert standin == pytest.approx(3.0)
    assert ours == pytest.approx(7.0)


def test_parallel_phase_adds_its_prepare_and_the_turn_a_queued_host_waited_for(bench):
    # prepare: a token on m0 (1 s); concurrency 1: n1's turn (2 s of kubeadm), then n2's (4 s);
    # n3 ran beside them (5 s of kubeadm) but finished before n2. Path: n2 <- n1 <- prepare.
    token = "kubeadm token create --print-join-command"
    run = run_of(
        [["Join the nodes", 0.0, 8.0, True]],
        [
            ["Join the nodes", "n1", 1.0, 2.5],
            ["Join the nodes", "n2", 3.5, 4.5],
            ["Join the nodes", "n3", 1.0, 5.5],
        ],
        {
            "m0": [[0.0, 1.0, token]],
            "n1": [[1.1, 2.0, JOIN]],
            "n2": [[3.6, 4.0, JOIN]],
            "n3": [[1.2, 5.0, JOIN]],
        },
        seconds=8.0,
    )
    _wall, _ours, phases = bench.overhead(run)
    _seconds, standin, hosts, calls = phases["Join the nodes"]
    assert hosts == ["n2", "n1"]
    assert sorted(c[2] for c in calls) == ["m0", "n1", "n2"]
    assert standin == pytest.approx(7.0)


def test_calls_outside_every_phase_count_whole_and_the_parts_add_up(bench):
    get_nodes = "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide"
    run = run_of(
        [["Init the first master", 0.0, 5.0, False]],
        [["Init the first master", "m0", 0.0, 5.0]],
        {"m0": [[0.5, 4.0, "kubeadm init --config /root/kubeadm-config.yaml"],
                [5.5, 1.5, get_nodes]]},
        seconds=7.5,
    )  # fmt: skip
    wall, ours, phases = bench.overhead(run)
    outside = phases[bench.AFTER_PHASES]
    assert outside[0] == pytest.approx(2.5) and outside[1] == pytest.approx(1.5)
    assert sum(p[0] for p in phases.values()) == pytest.approx(wall)
    assert wall - ours == pytest.approx(sum(p[1] for p in phases.values()))
    assert wall - ours == pytest.approx(5.5)


def test_phases_record_each_hosts_turn(tmp_path):
    import io

    from sealos import spec as spec_mod
    from sealos.addresses import parse_hosts
    from sealos.context import ClusterHost, Context
    from sealos.logfile import CommandLog
    from sealos.phases.base import Phase
    from sealos.redaction import Redactor
    from sealos.ssh import SSHConnection
    from sealos.state import StateStore
    from sealos.ui import PlainUI

    spec = spec_mod.ClusterSpec(masters=parse_hosts(["10.0.0.2-10.0.0.4"]), concurrency=2)
    ctx = Context(spec, PlainUI(io.StringIO()), CommandLog(None, Redactor()),
                  StateStore(tmp_path), None)  # fmt: skip
    ctx.nodes = [ClusterHost(a, "master", SSHConnection(a, spec.credentials)) for a in spec.masters]

    class Probe(Phase):
        title = "probe"

        async def run_host(self, ctx, node):
            await asyncio.sleep(0.05 if node.name == "10.0.0.2" else 0.01)
            return ""

    asyncio.run(Probe().run(ctx, ctx.nodes))
    turns = {h: (t0, s) for title, h, t0, s in ctx.host_times if title == "probe"}
    assert sorted(turns) == sorted(n.name for n in ctx.nodes)
    assert turns["10.0.0.2"][1] >= 0.05
    # Two slots: the third host's turn starts after the quicker of the first two ended.
    assert turns["10.0.0.4"][0] >= sum(turns["10.0.0.3"])
