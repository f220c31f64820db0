"""Waiting on a condition with a deadline, never for a fixed time: a loaded machine only makes
the wait longer, never the test wrong."""

from __future__ import annotations

import time


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 1.0):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
