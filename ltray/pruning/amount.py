"""How many units one pruning step removes, with torch.nn.utils.prune's arithmetic: a float
amount removes round(amount * n) of the n units that still survive (Python's round, i.e.
half to even), so iterative steps compound to (1 - fraction)**r of the start."""

from __future__ import annotations

import numbers

from ltray.errors import ConfigError


def check_fraction(fraction: object) -> float:
    """The fraction as a float, or ConfigError unless it is a real number in (0, 1)."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise ConfigError(f"pruning fraction must be a number in (0, 1), got {fraction!r}")
    value = float(fraction)
    if not 0.0 < value < 1.0:
        raise ConfigError(f"pruning fraction must be in (0, 1), got {value}")
    return value


def n_to_prune(fraction: float, n_alive: int) -> int:
    """Units to remove this step out of `n_alive` survivors (torch's _compute_nparams_toprune)."""
    return round(fraction * int(n_alive))
