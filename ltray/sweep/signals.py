"""SIGTERM and SIGINT for the whole of a driver's main: both become `Stopped` (a KeyboardInterrupt,
so every `finally` of the run still releases the lease and stops Ray), and the context records
which signal came, because Ray and Tune may re-raise a plain KeyboardInterrupt in its place.
The exit status follows the signal: 143 for SIGTERM, 130 for Ctrl-C."""

from __future__ import annotations

import os
import signal

__all__ = ["StopSignals", "Stopped", "pause_point"]
SIGNALS = (signal.SIGTERM, signal.SIGINT)
PAUSE_ENV = "LTRAY_PAUSE_AT"  # tests: name a pause_point at which the driver waits for a signal


class Stopped(KeyboardInterrupt):
    """A stop signal arrived: trials stop, the experiment folder stays resumable."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """`with StopSignals() as stop:` turns SIGTERM/SIGINT into `Stopped` inside the block, and
    restores the handlers that were there before on leaving it (re-entrant: the outermost block
    installs and restores, an inner one re-installs on leaving). After the first signal, `hold()` makes later ones only be counted,
    so the one line that reports the stop is not cut short by a second Ctrl-C."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}
        self._depth = 0
        self._holding = False

    def __enter__(self) -> "StopSignals":
        if self._depth == 0:
            self._previous = {s: signal.getsignal(s) for s in SIGNALS}
            self.install()
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            for s, handler in self._previous.items():
                signal.signal(s, handler)
        else:  # an inner block ends (run_sweep's): Ray's start and shutdown replaced SIGTERM's handler
            self.install()

    def install(self) -> None:
        """(Re)install ltray's handlers: `ray.init` replaces SIGTERM's with its own `sys.exit(15)`."""
        for s in SIGNALS:
            signal.signal(s, self._handle)

    def hold(self) -> None:
        self._holding = True

    @property
    def exit_status(self) -> int:
        return 143 if self.received == signal.SIGTERM else 130

    def note(self, e: BaseException) -> None:
        """Record the signal of a `Stopped` raised for a signal another handler caught first
        (Ray's, during `ray.init`)."""
        if self.received is None and isinstance(e, Stopped):
            self.received = e.signum

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum
        if not self._holding:
            raise Stopped(signum)


def pause_point(name: str) -> None:
    """Where a test asks for it (LTRAY_PAUSE_AT=name), say so on stdout and wait for a signal:
    the way to deliver a signal at an exact moment of a run without racing it."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    print(f"paused at {name}", flush=True)
    while True:
        signal.pause()  # a stop signal's handler raises Stopped; any other signal waits on
