"""Admission to password hashing: at most one argon2 call per core at once, and none that
cannot start in time.

An argon2 call in a worker thread cannot be interrupted once it runs: a caller that gives up
(its command's deadline passes) leaves the thread hashing to the end. So the decision is made
before a call starts. A call whose caller would have stopped waiting before it could finish
is refused at once with 503 ``service_unavailable`` and a ``Retry-After`` (the time the calls
already waiting need), instead of queueing behind a backlog to answer 504 at the deadline and
then hash for nobody. A call admitted to wait for a slot gives up when its latest start
passes, and one whose deadline has already passed is not started at all.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from messages import errors

T = TypeVar("T")

# What a call needs after its hash: a database round trip or two and the reply's way back.
AFTER_HASH_SECONDS = 0.5
# Hashes take longer while the machine is busier than when they were last measured.
COST_MARGIN = 3.0
# Calls waiting for a slot, per slot: enough to keep every slot busy, and far fewer than the
# commands user_svc takes from its queue at once (the RPC prefetch, 64 messages). A waiting
# call holds its message unacknowledged; with the prefetch window full of them, the commands
# behind would wait in the broker until too late to be answered at all (504).
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
    of the calls that ran (so it follows the machine's load). Waiting calls start in arrival
    order; each time a call ends, those that can no longer start in time are refused."""

    def __init__(self, slots: int, cost: float) -> None:
        self.slots = max(1, slots)
        self.cost = cost
        self._free = self.slots
        self._waiting: deque[tuple[asyncio.Future, float | None]] = deque()  # (slot, deadline)
        self._executor = ThreadPoolExecutor(self.slots, thread_name_prefix="argon2")

    def waiting(self) -> int:
        return len(self._waiting)

    def busy(self) -> int:
        """Calls running now (their threads cannot be stopped)."""
        return self.slots - self._free

    def _latest_start(self, deadline: float | None) -> float:
        if deadline is None:
            return math.inf
        return deadline - self.cost * COST_MARGIN - AFTER_HASH_SECONDS

    def _expected_start(self, position: int) -> float:
        """When the call at ``position`` in the waiting line gets a slot: slots come free
        about every cost / slots seconds."""
        return time.time() + (position // self.slots + 1) * self.cost

    async def run(self, fn: Callable[..., T], *args, deadline: float | None,
                  only_if_free: bool = False) -> T:
        """``fn(*args)`` in a worker thread, if it can start while ``deadline`` (Unix time)
        leaves time to finish; else ServiceUnavailable with Retry-After, at once (Timeout
        when the deadline has already passed). None: no deadline (start-up work).
        ``only_if_free``: refuse unless a slot is free right now (work that can wait for
        another time)."""
        self.admit(deadline, only_if_free)
        if self._free > 0 and not self._waiting:
            self._free -= 1
        else:
            await self._wait_for_slot(deadline)
        return await self._start(fn, args)

    def admit(self, deadline: float | None, only_if_free: bool = False) -> None:
        """Raise the refusal ``run`` would give now (a handler asks before its other work)."""
        if deadline is not None and time.time() >= deadline:
            raise errors.Timeout("the caller's deadline passed")
        ahead = len(self._waiting)
        if self._free > 0 and not ahead:
            if time.time() > self._latest_start(deadline):
                raise self._refusal()
        elif (only_if_free or ahead >= self.slots * WAITING_PER_SLOT
              or self._expected_start(ahead) > self._latest_start(deadline)):
            raise self._refusal()

    async def _wait_for_slot(self, deadline: float | None) -> None:
        slot = asyncio.get_running_loop().create_future()
        entry = (slot, deadline)
        self._waiting.append(entry)
        try:
            # Refused earlier by _refuse_late as a call ends; the timeout is a backstop.
            timeout = None if deadline is None else max(deadline - time.time(), 0)
            await asyncio.wait((slot,), timeout=timeout)
        except BaseException:
            if slot.done() and slot.exception() is None:
                self._release()  # handed a slot just as this caller was cancelled
            elif not slot.done():
                self._waiting.remove(entry)
            raise
        if not slot.done():
            self._waiting.remove(entry)
            raise self._refusal()
        slot.result()  # raises the refusal of _refuse_late

    async def _start(self, fn: Callable[..., T], args: tuple) -> T:
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        def finished(_) -> None:  # in the worker thread: the slot is free only now
            loop.call_soon_threadsafe(self._finished, time.monotonic() - started)

        try:
            call = self._executor.submit(fn, *args)
        except BaseException:
            self._release()
            raise
        call.add_done_callback(finished)
        # A cancelled caller does not stop the thread; the slot stays taken until it ends.
        return await asyncio.wrap_future(call)

    def _finished(self, seconds: float) -> None:
        self.cost += (seconds - self.cost) * 0.2
        self._release()
        self._refuse_late()

    def _release(self) -> None:
        while self._waiting:
            slot, deadline = self._waiting.popleft()
            if time.time() <= self._latest_start(deadline):
                slot.set_result(None)  # the slot passes to the next waiter
                return
            slot.set_exception(self._refusal())
        self._free += 1

    def _refuse_late(self) -> None:
        """Refuse, now, the waiting calls that would start too late (the cost went up)."""
        kept: deque[tuple[asyncio.Future, float | None]] = deque()
        for slot, deadline in self._waiting:
            if self._expected_start(len(kept)) > self._latest_start(deadline):
                slot.set_exception(self._refusal())
            else:
                kept.append((slot, deadline))
        self._waiting = kept

    def _refusal(self) -> errors.ServiceUnavailable:
        backlog = (len(self._waiting) + self.busy()) / self.slots * self.cost
        return errors.ServiceUnavailable(
            "too many sign-ins at once; try again shortly",
            retry_after=max(1, math.ceil(backlog)))
