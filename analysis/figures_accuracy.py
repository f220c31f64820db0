"""Figure 1: bespoke test accuracy vs sparsity per technique, one panel per task, and the
weights-remaining axis shared with figure 3."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from . import plotting
from . import tables

# candidate ticks, % of weights remaining
REMAINING_TICKS = [100, 80, 60, 50, 40, 30, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01]
MAX_TICKS = 8


def remaining_ticks(lo: float) -> list[float]:
    """Ticks from 100% down to `lo`, at least a constant ratio apart so at most ~MAX_TICKS show
    and labels never crowd."""
    candidates = [t for t in REMAINING_TICKS if t >= lo * 0.95]
    min_ratio = max(1.2, (100.0 / lo) ** (1.0 / (MAX_TICKS - 1)))
    kept = [candidates[0]]
    for t in candidates[1:]:
        if kept[-1] / t >= min_ratio * 0.999:
            kept.append(t)
    return kept


def remaining_axis(ax, remaining_pct):
    """Log-scale x axis of weights remaining (%), reversed so sparsity grows to the right."""
    lo = max(float(np.nanmin(remaining_pct)), 0.01)
    ax.set_xscale("log")
    ax.set_xlim(105, lo / 1.15)
    ax.xaxis.set_major_locator(FixedLocator(remaining_ticks(lo)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("weights remaining (%, log scale; sparsity grows →)")


def section_accuracy(ctx, sec):
    """Figure 1: one panel per task, one figure page per architecture (6 panels at most)."""
    exp = ctx.exp
    acc = tables.accuracy_vs_sparsity(exp.bespoke)
    if acc.empty:
        sec.note("No bespoke rounds with test accuracy yet.")
        return
    sec.table(acc, "accuracy_vs_sparsity", "bespoke test accuracy per round, over seeds")
    one_seed = acc["n_seeds"].max() < 2
    if one_seed:
        sec.note("One seed only: no spread over seeds (standard deviation) can be shown.")
    colours = plotting.colour_map(acc["technique"])
    for arch, a in acc.groupby("arch", sort=True):

        def draw(ax, task, a=a, arch=arch):
            for tech, t in a[a["task"] == task].groupby("technique", sort=True):
                t = t.sort_values("round")
                x = plotting.pct(1 - t["sparsity_mean"].to_numpy(float))
                y = plotting.pct(t["test_acc_mean"].to_numpy(float))
                sd = plotting.pct(t["test_acc_std"].fillna(0).to_numpy(float))
                ax.plot(x, y, marker="o", ms=3, color=colours[tech], label=tech)
                if not one_seed:
                    ax.fill_between(x, y - sd, y + sd, color=colours[tech], alpha=0.2, lw=0)
            remaining_axis(ax, plotting.pct(1 - a["sparsity_mean"].to_numpy(float)))
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{task} · {arch}")
            ax.grid(alpha=0.3)

        plotting.paged_panels(
            sec, sorted(a["task"].unique()), draw, name=f"accuracy_{arch}",
            title=f"Bespoke tickets: test accuracy vs sparsity, {arch}",
            finish=lambda fig, axes: plotting.legend_below(fig, axes, ncol=4),
            caption=lambda suffix, arch=arch: (f"Test accuracy vs sparsity per pruning technique, {arch}{suffix}: "
                                               + ("one seed, no spread." if one_seed else
                                                  "mean over seeds, band = ±1 std over seeds.")))
