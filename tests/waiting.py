"""Waiting in tests for something that happens by itself (a service up, an event applied):
``wait_for`` a truthy answer, or ``eventually`` a check that stops asserting."""

from __future__ import annotations

import asyncio
import time


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = ""):
    """Poll ``predicate`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


async def eventually(check, timeout: float = 10.0, interval: float = 0.05):
    """Retry ``check`` (an async function that asserts) until it passes or time is up; its
    last AssertionError is raised then."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(interval)
