"""Where the progress lines go: on a terminal, one live tqdm bar with the latest counts and the
event lines printed above it; in a job log or a pipe, plain lines (so `ray job logs` shows the
same thing as a terminal, minus the bar). Quiet keeps only what must be seen; silent prints nothing."""

from __future__ import annotations

import sys


class Console:
    def __init__(self, out=None, quiet: bool = False, silent: bool = False):
        self.out = out or sys.stdout
        self.quiet, self.silent = quiet, silent
        self._bar = None

    def open_bar(self, total: int, done: int) -> None:
        """A live bar, on a terminal only (and not when quiet or silent)."""
        if self.out.isatty() and not self.quiet and not self.silent:
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=self.out, unit="round", dynamic_ncols=True, initial=done)

    @property
    def live(self) -> bool:
        return self._bar is not None

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def show(self, line: str) -> None:
        """The latest counts: the bar's text on a terminal, else one more line."""
        if self._bar is not None:
            self._bar.set_postfix_str(line.split("] ", 1)[1], refresh=False)
            self._bar.refresh()
        elif not self.quiet:
            self.print(line)

    def print(self, text: str) -> None:
        if self.silent:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
