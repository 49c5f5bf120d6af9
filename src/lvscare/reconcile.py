"""The loop: probe, compute the desired state, read the kernel's actual state, apply the difference.

Level-triggered: the kernel is read every tick, so rules deleted or added by someone else are
repaired within one interval. Between ticks two kinds of events wake the loop for an extra
reconcile at once: a real server whose kept connection died and whose fresh probe failed too
(probe.py), and a change someone made to lvscare's nftables tables or the VIP's route, address or
link (netlink.KernelWatch). One log line per change, with its reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Protocol

from lvscare.backends.base import Backend, BackendError
from lvscare.model import (
    ChangeKind,
    Endpoint,
    Health,
    HealthPolicy,
    History,
    ProbeResult,
    UserError,
    VirtualServer,
    desired_weights,
    plan,
)
from lvscare.reactor import Reactor

log = logging.getLogger("lvscare")


class ProberLike(Protocol):
    """What the loop needs from a prober (probe.Prober, or a test's fake)."""

    def probe_all(self, endpoints: Sequence[Endpoint]) -> dict[Endpoint, ProbeResult]: ...


class WatchLike(Protocol):
    """What the loop needs from netlink.KernelWatch: sockets to watch, and whether a batch of
    notifications on one of them concerns lvscare."""

    sockets: list

    def relevant(self, sock: Any) -> bool: ...


class ReachabilityLike(Protocol):
    """What the loop needs from route.py: keep the VIP reachable, say what was repaired."""

    def ensure(self) -> list[str]: ...


class Reconciler:
    """Holds the health of each real server and makes the backend match it, one tick at a time."""

    def __init__(
        self,
        vs: VirtualServer,
        real_servers: Sequence[Endpoint],
        backend: Backend,
        policy: Optional[HealthPolicy] = None,
    ):
        self.vs = vs
        self.real_servers = list(dict.fromkeys(real_servers))
        self.backend = backend
        self.policy = policy or HealthPolicy()
        self.health = {ep: Health() for ep in self.real_servers}
        # What lvscare last wrote; None before the first successful write.
        self.applied: Optional[dict[Endpoint, int]] = None

    def step(self, results: Mapping[Endpoint, ProbeResult]) -> list[str]:
        """Record probe results, then make the kernel match; returns the log lines it wrote."""
        for ep, result in results.items():
            if ep in self.health:
                self.health[ep].record(result, self.policy)
        desired = desired_weights(self.health)
        observed = self.backend.read(self.vs)
        history = History(self.health, self.applied, self.policy)
        changes = plan(self.vs, desired, observed, history)
        if changes:
            self.backend.apply(self.vs, desired, observed, changes)
        # Logged only once the kernel took the changes: a refused tick says so instead.
        for change in changes:
            log.info("%s", change.reason)
        self.applied = desired
        for change in changes:
            if change.kind is ChangeKind.REMOVE_REAL_SERVER and change.endpoint in self.health:
                self._end_flows(change.endpoint)
        return [change.reason for change in changes]

    def _end_flows(self, rs: Endpoint) -> None:
        """Connections still pinned to a removed real server end now: their clients reconnect
        through the VIP instead of waiting for TCP to give up on a dead master."""
        try:
            clients = self.backend.pinned_clients(self.vs, rs)
            if not clients:
                return
            from lvscare.flows import destroy

            ended = destroy(clients, self.vs.endpoint)
        except OSError as exc:
            log.warning("cannot end the connections still going to %s: %s", rs, exc)
            return
        if ended:
            log.info(
                "ended %d connection%s through %s still going to removed %s (clients reconnect)",
                ended,
                "" if ended == 1 else "s",
                self.vs,
                rs,
            )


class Stopper:
    """A stop flag that SIGTERM/SIGINT set and that wakes the loop's sleep at once; `wake()`
    (an event) also ends a sleep early."""

    def __init__(self, reactor: Reactor):
        self.reactor = reactor
        self.signal: Optional[str] = None
        self._stopped = False
        self._woken = False

    def install(self) -> None:
        """Stop on SIGTERM and SIGINT."""
        import signal

        self.reactor.wake_on_signals((signal.SIGTERM, signal.SIGINT), self.stop)

    def stop(self, name: str = "stop") -> None:
        """Ask the loop to end after the current tick."""
        self.signal = name
        self._stopped = True

    def wake(self) -> None:
        """End the current (or the next) sleep early: an event wants a reconcile now."""
        self._woken = True

    def take_wake(self) -> bool:
        """True when woken since the last call."""
        woken, self._woken = self._woken, False
        return woken

    @property
    def stopped(self) -> bool:
        """True once stop was asked for."""
        return self._stopped

    def sleep(self, seconds: float) -> None:
        """Sleep up to `seconds` (running the reactor), less when stopped or woken."""
        if seconds <= 0 or self._stopped or self._woken:
            return
        self.reactor.run_until(lambda: self._stopped or self._woken, seconds)


# Event-driven reconciles come at most this often: a flush sends a burst of notifications, and
# lvscare's own repair sends some more, which the next reconcile reads back as "no change".
MIN_EVENT_GAP = 0.005


def run(
    reconciler: Reconciler,
    prober: ProberLike,
    interval: float,
    reachability: Optional[ReachabilityLike] = None,
    once: bool = False,
    stopper: Optional[Stopper] = None,
    on_ready: Optional[Callable[[], None]] = None,
    watch: Optional[WatchLike] = None,
) -> None:
    """Tick every `interval` seconds until stopped (or once), and reconcile at once between ticks
    when the prober reports a confirmed failure or `watch` a change to lvscare's rules; errors of
    a tick are logged and the next tick tries again. `on_ready` is called once, after the first
    tick that put the rules in place (and made the VIP reachable)."""
    stopper = stopper or Stopper(getattr(prober, "reactor", None) or Reactor())
    reactor = stopper.reactor
    endpoints = reconciler.real_servers
    take_events = getattr(prober, "take_events", None)
    if take_events is not None:
        prober.on_event = stopper.wake  # type: ignore[attr-defined]
    if watch is not None and not once:
        for sock in watch.sockets:
            reactor.add_reader(sock.fileno(), _notified(watch, sock, stopper))
    next_tick = time.monotonic()
    last_step = float("-inf")
    try:
        while not stopper.stopped:
            now = time.monotonic()
            tick = now >= next_tick
            if not tick and now - last_step < MIN_EVENT_GAP:
                time.sleep(MIN_EVENT_GAP - (now - last_step))
            events = take_events() if take_events is not None else {}
            results = {**events, **prober.probe_all(endpoints)} if tick else events
            try:
                reconciler.step(results)
            except BackendError as exc:
                log.error("%s; trying again in %gs", exc, interval)
            except Exception:
                # A daemon that runs for months must outlive a bug in one tick; the log says where.
                log.exception("unexpected error in this tick; trying again in %gs", interval)
            last_step = time.monotonic()
            reachable = True
            if reachability is not None:
                try:
                    for message in reachability.ensure():
                        log.info("%s", message)
                except (OSError, UserError) as exc:
                    log.error("cannot keep %s reachable: %s; trying again", reconciler.vs, exc)
                    reachable = False
            if on_ready is not None and reconciler.applied is not None and reachable:
                on_ready()
                on_ready = None
            if once:
                return
            if tick:
                next_tick += interval
                if next_tick < last_step:
                    # A slow tick (probe timeouts) pushes the schedule instead of bunching up.
                    next_tick = last_step
            # Woken while reconciling: go round again at once; else wait for a tick or an event.
            if not stopper.take_wake():
                stopper.sleep(next_tick - time.monotonic())
                stopper.take_wake()
    finally:
        if watch is not None and not once:
            for sock in watch.sockets:
                reactor.remove_reader(sock.fileno())
    log.info("stopping on %s; rules stay in place (use --clean to remove them)", stopper.signal)


def _notified(watch: WatchLike, sock: Any, stopper: Stopper) -> Callable[[], None]:
    def readable() -> None:
        if watch.relevant(sock):
            stopper.wake()

    return readable
