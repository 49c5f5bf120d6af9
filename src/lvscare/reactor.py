"""A minimal event loop: socket readiness, timers and generator tasks, on `selectors`.

lvscare needs little of an event loop (parallel probes with a timeout, watching idle
connections, a sleep that a signal or an event cuts short), and asyncio's import alone used to
cost a third of lvscare's start-up CPU, which every node pays at each restart.

A task is a generator that yields what it waits for:
    ("read", sock, timeout)   readable, or `timeout` seconds passed (None: no limit)
    ("write", sock, None)     writable
    ("sleep", None, seconds)
and returns its result. `Task.cancel()` throws `Cancelled` into it, so its `finally` clauses
close what it opened.
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import signal
import time
from collections.abc import Generator
from typing import Any, Callable, Optional

Wait = tuple[str, Any, Optional[float]]
Coroutine = Generator[Wait, None, Any]


class Cancelled(Exception):
    """Thrown into a task that is cancelled (its time is up, or nobody wants its answer)."""


class Timer:
    """A callback at a time; `cancel()` drops it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not call it."""
        self.cancelled = True


class Reactor:
    """Callbacks when sockets are ready or timers are due."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._readers: dict[int, Callable[[], None]] = {}
        self._writers: dict[int, Callable[[], None]] = {}
        self._wakeup: Optional[tuple[int, int]] = None

    def _update(self, fd: int) -> None:
        mask = (selectors.EVENT_READ if fd in self._readers else 0) | (
            selectors.EVENT_WRITE if fd in self._writers else 0
        )
        try:
            key = self.selector.get_key(fd)
        except KeyError:
            if mask:
                self.selector.register(fd, mask)
            return
        if not mask:
            self.selector.unregister(fd)
        elif key.events != mask:
            self.selector.modify(fd, mask)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call `callback` whenever `fd` is readable."""
        self._readers[fd] = callback
        self._update(fd)

    def remove_reader(self, fd: int) -> None:
        """Stop watching `fd` for reading."""
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd: int, callback: Callable[[], None]) -> None:
        """Call `callback` whenever `fd` is writable."""
        self._writers[fd] = callback
        self._update(fd)

    def remove_writer(self, fd: int) -> None:
        """Stop watching `fd` for writing."""
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Call `callback` after `delay` seconds."""
        timer = Timer(time.monotonic() + max(delay, 0.0), callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def run_once(self, timeout: Optional[float]) -> None:
        """Wait up to `timeout` seconds (None: until something happens) and run what is due."""
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        if timers:
            due = max(0.0, timers[0][0] - time.monotonic())
            timeout = due if timeout is None else min(timeout, due)
        for key, mask in self.selector.select(timeout):
            fd = key.fd
            if mask & selectors.EVENT_READ and fd in self._readers:
                self._readers[fd]()
            if mask & selectors.EVENT_WRITE and fd in self._writers:
                self._writers[fd]()
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled:
                timer.callback()

    def run_until(self, done: Callable[[], bool], timeout: Optional[float]) -> bool:
        """Run until `done()` or `timeout` seconds passed; returns `done()`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            self.run_once(remaining)
        return done()

    def wake_on_signals(self, signals: tuple[int, ...], handler: Callable[[str], None]) -> None:
        """Run `handler(name)` on each of `signals`, and cut the current wait short."""
        if self._wakeup is None:
            read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._wakeup = (read_fd, write_fd)
            signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
            self.add_reader(read_fd, lambda: _drain(read_fd))
        for sig in signals:
            signal.signal(sig, lambda signum, _frame: handler(signal.Signals(signum).name))

    def close(self) -> None:
        """Release the selector (and the signal pipe)."""
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)
            for fd in self._wakeup:
                os.close(fd)
            self._wakeup = None
        self.selector.close()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except OSError:
        pass


class Task:
    """Runs a generator (see the module's docstring) on a reactor until it returns."""

    def __init__(self, reactor: Reactor, coroutine: Coroutine, timeout: Optional[float] = None):
        self.reactor = reactor
        self.coroutine = coroutine
        self.done = False
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self._fd: Optional[int] = None
        self._timer: Optional[Timer] = None
        self._deadline: Optional[Timer] = None
        if timeout is not None:
            self._deadline = reactor.call_later(timeout, self.cancel)
        self._step(None)

    def _clear_wait(self) -> None:
        if self._fd is not None:
            self.reactor.remove_reader(self._fd)
            self.reactor.remove_writer(self._fd)
            self._fd = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _resume(self) -> None:
        self._step(None)

    def _step(self, exc: Optional[BaseException]) -> None:
        if self.done:
            return
        self._clear_wait()
        try:
            wait = self.coroutine.send(None) if exc is None else self.coroutine.throw(exc)
        except StopIteration as stop:
            self._finish(stop.value, None)
            return
        except Exception as error:  # the task's own failure is its result
            self._finish(None, error)
            return
        kind, sock, timeout = wait
        if kind == "read":
            self._fd = sock.fileno()
            self.reactor.add_reader(self._fd, self._resume)
        elif kind == "write":
            self._fd = sock.fileno()
            self.reactor.add_writer(self._fd, self._resume)
        if timeout is not None:
            self._timer = self.reactor.call_later(timeout, self._resume)

    def _finish(self, result: Any, error: Optional[BaseException]) -> None:
        self.done = True
        self.result, self.error = result, error
        if self._deadline is not None:
            self._deadline.cancel()

    def cancel(self) -> None:
        """Throw Cancelled into the task (its cleanup runs); it ends with that error."""
        if not self.done:
            self._step(Cancelled())
            if not self.done:  # it swallowed the cancellation: stop it anyway
                self._clear_wait()
                self.coroutine.close()
                self._finish(None, Cancelled())
