"""Acceptance 1 of lvscare: the reconcile logic against the in-memory backend.

The memory backend plays the kernel; tests change it directly to play "someone else"
(kube-proxy deleting rules, an admin adding a real server).
"""

from __future__ import annotations

import logging
import time

import pytest

from lvscare.backends.memory import MemoryBackend, MemoryService
from lvscare.model import Endpoint, HealthPolicy, ProbeResult, VirtualServer
from lvscare.reactor import Reactor
from lvscare.reconcile import Reconciler, Stopper, run

VS = VirtualServer(Endpoint("10.103.97.2", 6443))
A, B, C = (Endpoint(f"192.168.0.{i}", 6443) for i in (2, 3, 4))
UP = ProbeResult(True, "HTTP 200")
DOWN = ProbeResult(False, "connection refused")


def results(**states: ProbeResult) -> dict[Endpoint, ProbeResult]:
    """Probe results by name: a=UP, b=DOWN ..."""
    names = {"a": A, "b": B, "c": C}
    return {names[k]: v for k, v in states.items()}


def all_up() -> dict[Endpoint, ProbeResult]:
    return results(a=UP, b=UP, c=UP)


@pytest.fixture
def kernel() -> MemoryBackend:
    return MemoryBackend()


def make(kernel: MemoryBackend, fall: int = 2, rise: int = 1) -> Reconciler:
    return Reconciler(VS, [A, B, C], kernel, HealthPolicy(fall=fall, rise=rise))


def weights(kernel: MemoryBackend) -> dict[Endpoint, int]:
    return dict(kernel.services[VS.endpoint].weights)


def test_first_tick_creates_the_virtual_server_with_weight_1_each(kernel):
    rec = make(kernel)
    lines = rec.step(all_up())
    assert kernel.services[VS.endpoint].scheduler == "rr"
    assert weights(kernel) == {A: 1, B: 1, C: 1}
    assert lines[0] == "added virtual server 10.103.97.2:6443 (tcp, rr)"
    assert "added 192.168.0.2:6443 to 10.103.97.2:6443 with weight 1 (HTTP 200)" in lines


def test_idle_ticks_write_nothing(kernel):
    rec = make(kernel)
    rec.step(all_up())
    writes = kernel.writes
    for _ in range(5):
        assert rec.step(all_up()) == []
    assert kernel.writes == writes


def test_first_failure_sets_weight_0_then_fall_failures_remove(kernel):
    rec = make(kernel, fall=3)
    rec.step(all_up())
    lines = rec.step(results(a=UP, b=DOWN, c=UP))
    assert weights(kernel) == {A: 1, B: 0, C: 1}
    assert lines == [
        "192.168.0.3:6443 weight 0 in 10.103.97.2:6443: probe failed (connection refused), "
        "removal after 3 consecutive failures"
    ]
    rec.step(results(a=UP, b=DOWN, c=UP))
    assert weights(kernel) == {A: 1, B: 0, C: 1}, "still weight 0 before the third failure"
    lines = rec.step(results(a=UP, b=DOWN, c=UP))
    assert weights(kernel) == {A: 1, C: 1}
    assert lines == [
        "removed 192.168.0.3:6443 from 10.103.97.2:6443: "
        "3 consecutive failed probes (connection refused)"
    ]


def test_fall_1_removes_at_the_first_failure(kernel):
    rec = make(kernel, fall=1)
    rec.step(all_up())
    rec.step(results(a=DOWN, b=UP, c=UP))
    assert weights(kernel) == {B: 1, C: 1}


def test_rise_successes_restore_a_removed_server(kernel):
    rec = make(kernel, fall=2, rise=3)
    rec.step(all_up())
    rec.step(results(a=DOWN, b=UP, c=UP))
    rec.step(results(a=DOWN, b=UP, c=UP))
    assert A not in weights(kernel)
    rec.step(all_up())
    rec.step(all_up())
    assert A not in weights(kernel), "two successes are not yet three"
    lines = rec.step(all_up())
    assert weights(kernel)[A] == 1
    assert lines == [
        "restored 192.168.0.2:6443 in 10.103.97.2:6443 with weight 1: "
        "3 consecutive successful probes (HTTP 200)"
    ]


def test_a_success_in_between_resets_the_failure_count(kernel):
    rec = make(kernel, fall=2, rise=1)
    rec.step(all_up())
    rec.step(results(a=DOWN, b=UP, c=UP))
    rec.step(all_up())
    assert weights(kernel)[A] == 1
    rec.step(results(a=DOWN, b=UP, c=UP))
    assert weights(kernel)[A] == 0, "one failure after a success is weight 0, not removal"


def test_all_down_keeps_the_virtual_server_without_real_servers(kernel):
    rec = make(kernel)
    rec.step(all_up())
    everything_down = results(a=DOWN, b=DOWN, c=DOWN)
    rec.step(everything_down)
    assert weights(kernel) == {A: 0, B: 0, C: 0}
    rec.step(everything_down)
    assert VS.endpoint in kernel.services
    assert weights(kernel) == {}
    rec.step(all_up())
    assert weights(kernel) == {A: 1, B: 1, C: 1}


def test_virtual_server_deleted_by_someone_else_is_repaired_next_tick(kernel):
    rec = make(kernel)
    rec.step(all_up())
    del kernel.services[VS.endpoint]  # kube-proxy's cleanup, say
    lines = rec.step(all_up())
    assert weights(kernel) == {A: 1, B: 1, C: 1}
    assert lines[0] == "repaired virtual server 10.103.97.2:6443: it was missing from the kernel"
    assert (
        "repaired 192.168.0.3:6443 in 10.103.97.2:6443: it was missing, added back with weight 1"
        in lines
    )


def test_real_server_deleted_or_reweighted_by_someone_else_is_repaired(kernel):
    rec = make(kernel)
    rec.step(all_up())
    service = kernel.services[VS.endpoint]
    del service.weights[B]
    service.weights[C] = 7
    lines = rec.step(all_up())
    assert weights(kernel) == {A: 1, B: 1, C: 1}
    assert sorted(lines) == [
        "repaired 192.168.0.3:6443 in 10.103.97.2:6443: it was missing, added back with weight 1",
        "repaired 192.168.0.4:6443 in 10.103.97.2:6443: its weight was 7, set back to 1",
    ]


def test_foreign_real_server_is_removed(kernel):
    rec = make(kernel)
    rec.step(all_up())
    stranger = Endpoint("192.168.0.99", 6443)
    kernel.services[VS.endpoint].weights[stranger] = 1
    lines = rec.step(all_up())
    assert stranger not in weights(kernel)
    assert lines == [
        "removed foreign real server 192.168.0.99:6443 from 10.103.97.2:6443: "
        "it is not one of lvscare's --rs"
    ]


def test_down_server_re_added_by_someone_else_is_removed_again(kernel):
    rec = make(kernel)
    rec.step(all_up())
    rec.step(results(a=DOWN, b=UP, c=UP))
    rec.step(results(a=DOWN, b=UP, c=UP))
    kernel.services[VS.endpoint].weights[A] = 1
    lines = rec.step(results(a=DOWN, b=UP, c=UP))
    assert A not in weights(kernel)
    assert lines == [
        "repaired 10.103.97.2:6443: removed 192.168.0.2:6443, "
        "which someone re-added while it is down"
    ]


def test_wrong_scheduler_is_set_back(kernel):
    rec = make(kernel)
    rec.step(all_up())
    kernel.services[VS.endpoint].scheduler = "wlc"
    lines = rec.step(all_up())
    assert kernel.services[VS.endpoint].scheduler == "rr"
    assert lines == ["repaired virtual server 10.103.97.2:6443: scheduler was wlc, set rr"]


def test_other_virtual_servers_are_left_alone(kernel):
    other = Endpoint("10.96.0.1", 443)
    kernel.services[other] = MemoryService("rr", {Endpoint("10.0.0.1", 6443): 1})
    rec = make(kernel)
    rec.step(all_up())
    assert kernel.services[other].weights == {Endpoint("10.0.0.1", 6443): 1}


class FakeProber:
    """Returns scripted results, one set per tick, and stops the loop after the last."""

    def __init__(self, script, stopper_box):
        self.script = list(script)
        self.box = stopper_box
        self.ticks = 0

    def probe_all(self, endpoints):
        self.ticks += 1
        current = self.script.pop(0)
        if not self.script:
            self.box[0].stop("test")
        return current


def test_run_loop_keeps_going_after_a_backend_error(kernel, caplog):
    reactor = Reactor()
    try:
        stopper = Stopper(reactor)
        prober = FakeProber([all_up(), all_up(), all_up()], [stopper])
        kernel.fail_next_apply = True
        rec = make(kernel)
        with caplog.at_level(logging.INFO, logger="lvscare"):
            run(rec, prober, interval=0.01, stopper=stopper)
    finally:
        reactor.close()
    assert prober.ticks == 3
    assert weights(kernel) == {A: 1, B: 1, C: 1}
    messages = [r.getMessage() for r in caplog.records]
    assert any("pretend kernel refused the change; trying again" in m for m in messages)
    assert any("stopping on test; rules stay in place" in m for m in messages)


def test_run_once_does_one_tick(kernel):
    reactor = Reactor()
    try:
        stopper = Stopper(reactor)
        prober = FakeProber([all_up(), all_up()], [stopper])
        run(make(kernel), prober, interval=10, once=True, stopper=stopper)
    finally:
        reactor.close()
    assert prober.ticks == 1
    assert weights(kernel) == {A: 1, B: 1, C: 1}


class Reach:
    def __init__(self):
        self.calls = 0

    def ensure(self):
        self.calls += 1
        return ["added route 10.103.97.2/32 dev eth0 src 192.168.0.9"] if self.calls == 1 else []


def test_run_loop_keeps_the_vip_reachable_every_tick(kernel, caplog):
    reactor = Reactor()
    try:
        stopper = Stopper(reactor)
        reach = Reach()
        prober = FakeProber([all_up()] * 3, [stopper])
        with caplog.at_level(logging.INFO, logger="lvscare"):
            run(make(kernel), prober, 0.01, reachability=reach, stopper=stopper)
    finally:
        reactor.close()
    assert reach.calls == 3
    assert sum("added route" in r.getMessage() for r in caplog.records) == 1


def test_ready_is_told_once_after_the_first_tick_that_put_the_rules_in_place(kernel):
    """`on_ready` (READY=1 to systemd) waits for rules that are really in place: not after a tick
    whose changes the kernel refused, and only once."""
    reactor = Reactor()
    told: list[int] = []
    try:
        stopper = Stopper(reactor)
        prober = FakeProber([all_up()] * 4, [stopper])
        kernel.fail_next_apply = True
        run(
            make(kernel),
            prober,
            0.01,
            stopper=stopper,
            on_ready=lambda: told.append(prober.ticks),
        )
    finally:
        reactor.close()
    assert told == [2]  # tick 1 failed, tick 2 made the rules, ticks 3 and 4 say nothing


def test_ready_waits_until_the_vip_is_reachable(kernel):
    class FailingOnce(Reach):
        def ensure(self):
            self.calls += 1
            if self.calls == 1:
                raise OSError("no route to 192.168.0.2")
            return []

    reactor = Reactor()
    told: list[int] = []
    try:
        stopper = Stopper(reactor)
        prober = FakeProber([all_up()] * 3, [stopper])
        run(
            make(kernel),
            prober,
            0.01,
            reachability=FailingOnce(),
            stopper=stopper,
            on_ready=lambda: told.append(prober.ticks),
        )
    finally:
        reactor.close()
    assert told == [2]


def test_a_confirmed_failure_between_ticks_is_acted_on_at_once(kernel):
    """An event from the prober (a kept connection died and a fresh probe failed) wakes the loop
    for a reconcile long before the next tick."""
    reactor = Reactor()
    try:
        stopper = Stopper(reactor)

        class EventProber(FakeProber):
            def __init__(self, script, box):
                super().__init__(script, box)
                self.events: dict = {}
                self.on_event = None

            def take_events(self):
                events, self.events = self.events, {}
                return events

        prober = EventProber([all_up(), all_up()], [stopper])
        rec = make(kernel)

        def die():
            prober.events = {B: ProbeResult(False, "connection closed, then refused")}
            prober.on_event()

        def check_and_stop():
            seen.append(weights(kernel))
            stopper.stop("test")
            stopper.wake()

        seen: list = []
        reactor.call_later(0.05, die)
        reactor.call_later(0.3, check_and_stop)
        started = time.monotonic()
        run(rec, prober, interval=30, stopper=stopper)
        took = time.monotonic() - started
    finally:
        reactor.close()
    assert prober.ticks == 1, "no second tick: the event alone changed the rules"
    assert seen == [{A: 1, B: 0, C: 1}]
    assert took < 5


def test_removing_a_real_server_ends_the_connections_still_pinned_to_it(kernel, monkeypatch):
    """At removal (not at weight 0) the backend's pinned clients are destroyed, once."""
    import lvscare.flows

    destroyed: list = []
    client = Endpoint("192.168.0.9", 40001)
    monkeypatch.setattr(kernel, "pinned_clients", lambda vs, rs: [client] if rs == B else [])
    monkeypatch.setattr(lvscare.flows, "destroy", lambda clients, vip: destroyed.append(
        (list(clients), vip)) or 1)  # fmt: skip
    rec = make(kernel)
    rec.step(all_up())
    rec.step({**all_up(), B: ProbeResult(False, "timed out")})
    assert destroyed == [], "weight 0 keeps existing connections"
    rec.step({**all_up(), B: ProbeResult(False, "timed out")})
    assert destroyed == [([client], VS.endpoint)]
    rec.step({**all_up(), B: ProbeResult(False, "timed out")})
    assert len(destroyed) == 1
