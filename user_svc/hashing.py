"""Admission to password hashing: at most one argon2 call per core at once, and none that
cannot start in time.

An argon2 call in a worker thread cannot be interrupted once it runs: a caller that gives up
(its command's deadline passes) leaves the thread hashing to the end. So the decision is made
before a call starts. A call whose caller would have stopped waiting before it could finish
is refused at once with 503 ``service_unavailable`` and a ``Retry-After`` (the time the calls
already waiting need), instead of queueing behind a backlog to answer 504 at the deadline and
then hash for nobody. Admitted calls wait in the worker threads' own queue, so a thread takes
the next one the moment it is done, without waiting for the event loop (which a storm keeps
busy); as it takes one, the thread checks the call's latest start again and refuses it
instead if that has passed. A call whose deadline has already passed is not started at all.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from messages import errors

T = TypeVar("T")

# What a call needs after its hash: a database round trip or two and the reply's way back.
AFTER_HASH_SECONDS = 0.5
# Hashes take longer while the machine is busier than when they were last measured.
COST_MARGIN = 3.0
# Calls waiting for a thread, per thread: enough to keep every thread busy, and far fewer than
# the commands user_svc takes from its queue at once (the RPC prefetch, 64 messages). A
# waiting call holds its message unacknowledged; with the prefetch window full of them, the
# commands behind would wait in the broker until too late to be answered at all (504).
WAITING_PER_SLOT = 4


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class HashingGate:
    """Runs slow calls (argon2) in ``slots`` worker threads, with admission by deadline.

    ``cost`` is the expected wall time of one call: measured at start, then a moving average
    of the calls that ran (so it follows the machine's load). Calls start in arrival order."""

    def __init__(self, slots: int, cost: float) -> None:
        self.slots = max(1, slots)
        self.cost = cost
        self._lock = threading.Lock()  # the counts below change in the worker threads too
        self._waiting = 0
        self._running = 0
        self._executor = ThreadPoolExecutor(self.slots, thread_name_prefix="argon2")

    def waiting(self) -> int:
        return self._waiting

    def busy(self) -> int:
        """Calls running now (their threads cannot be stopped)."""
        return self._running

    def _latest_start(self, deadline: float | None) -> float:
        if deadline is None:
            return math.inf
        return deadline - self.cost * COST_MARGIN - AFTER_HASH_SECONDS

    def admit(self, deadline: float | None, only_if_free: bool = False) -> None:
        """Raise the refusal ``run`` would give now (a handler asks before its other work).
        ``only_if_free``: refuse unless a thread is free right now."""
        if deadline is not None and time.time() >= deadline:
            raise errors.Timeout("the caller's deadline passed")
        in_line = self._waiting + self._running
        if in_line < self.slots:
            expected_start = time.time()
        elif only_if_free or in_line >= self.slots * (WAITING_PER_SLOT + 1):
            raise self._refusal()
        else:  # threads come free about every cost / slots seconds
            expected_start = time.time() + ((in_line - self.slots) // self.slots + 1) * self.cost
        if expected_start > self._latest_start(deadline):
            raise self._refusal()

    async def run(self, fn: Callable[..., T], *args, deadline: float | None,
                  only_if_free: bool = False) -> T:
        """``fn(*args)`` in a worker thread, if it can start while ``deadline`` (Unix time)
        leaves time to finish; else ServiceUnavailable with Retry-After, at once (Timeout
        when the deadline has already passed). None: no deadline (start-up work)."""
        self.admit(deadline, only_if_free)
        with self._lock:
            self._waiting += 1
        try:
            call = self._executor.submit(self._call, fn, args, deadline)
        except BaseException:
            self._unqueue()
            raise
        # A caller cancelled while its call waits takes it out of the queue (the executor
        # skips a cancelled call); once the call runs, its thread goes on to the end.
        call.add_done_callback(lambda c: self._unqueue() if c.cancelled() else None)
        return await asyncio.wrap_future(call)

    def _call(self, fn: Callable[..., T], args: tuple, deadline: float | None) -> T:
        """In a worker thread, as it takes the call."""
        with self._lock:
            self._waiting -= 1
            late = time.time() > self._latest_start(deadline)
            if not late:
                self._running += 1
        if late:
            raise self._refusal()
        started = time.monotonic()
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._running -= 1
                self.cost += (time.monotonic() - started - self.cost) * 0.2

    def _unqueue(self) -> None:
        with self._lock:
            self._waiting -= 1

    def _refusal(self) -> errors.ServiceUnavailable:
        backlog = (self._waiting + self._running) / self.slots * self.cost
        return errors.ServiceUnavailable(
            "too many sign-ins at once; try again shortly",
            retry_after=max(1, math.ceil(backlog)))
