"""Accuracy figures: bespoke test accuracy vs sparsity (figure 1) and prêt-à-porter vs bespoke
vs random tickets per target task (figure 6)."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from analysis import plotting as P
from analysis import tables as T

REMAINING_TICKS = [100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1]  # % of weights remaining


def remaining_axis(ax, remaining_pct):
    """Log-scale x axis of weights remaining (%), reversed so sparsity grows to the right."""
    lo = max(float(np.nanmin(remaining_pct)), 0.01)
    ax.set_xscale("log")
    ax.set_xlim(110, lo / 1.3)
    ax.xaxis.set_major_locator(FixedLocator([t for t in REMAINING_TICKS if t >= lo / 1.3]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("weights remaining (%, log scale; sparsity grows →)")


def section_accuracy(ctx, sec):
    """Figure 1: one panel per task, one figure page per architecture (6 panels at most)."""
    exp = ctx.exp
    acc = T.accuracy_vs_sparsity(exp.bespoke)
    if acc.empty:
        sec.note("No bespoke rounds with test accuracy yet.")
        return
    sec.table(acc, "accuracy_vs_sparsity", "bespoke test accuracy per round, over seeds")
    if acc["n_seeds"].max() < 2:
        sec.note("One seed only: no spread over seeds is shown.")
    colours = P.colour_map(acc["technique"])
    for arch, a in acc.groupby("arch", sort=True):
        tasks = sorted(a["dataset"].unique())
        pages = P.chunks(tasks)
        for page, chunk in enumerate(pages, 1):
            fig, axes = P.panel_grid(len(chunk))
            for ax, task in zip(axes, chunk):
                for tech, t in a[a["dataset"] == task].groupby("technique", sort=True):
                    t = t.sort_values("round")
                    x = P.pct(1 - t["sparsity_mean"].to_numpy(float))
                    y = P.pct(t["test_acc_mean"].to_numpy(float))
                    sd = P.pct(t["test_acc_std"].fillna(0).to_numpy(float))
                    ax.plot(x, y, marker="o", ms=3, color=colours[tech], label=tech)
                    ax.fill_between(x, y - sd, y + sd, color=colours[tech], alpha=0.2, lw=0)
                remaining_axis(ax, P.pct(1 - a["sparsity_mean"].to_numpy(float)))
                ax.set_ylabel("test accuracy (%)")
                ax.set_title(f"{task} · {arch}")
                ax.grid(alpha=0.3)
            P.legend_below(fig, axes, ncol=4)
            suffix = f" (page {page}/{len(pages)})" if len(pages) > 1 else ""
            P.suptitle(fig, f"Bespoke tickets: test accuracy vs sparsity, {arch}{suffix}")
            sec.figure(fig, f"accuracy_{arch}_p{page}",
                       f"Test accuracy vs sparsity per pruning technique, {arch}{suffix}: "
                       "mean over seeds, band = ±1 std.")


def _target_label(task: str, held_out: bool) -> str:
    return f"{task}\n(held out)" if held_out else task


def section_followups(ctx, sec):
    """Figure 6: grouped bars per target task, one figure per consensus recipe and threshold."""
    exp = ctx.exp
    fu = T.followup_summary(exp.followups, exp.plan)
    if fu.empty:
        sec.note("No follow-up trials (prêt-à-porter, transfer, random) with results yet.")
        return
    sec.table(fu, "followup_accuracy", "follow-up test accuracy per target and ticket kind")
    if not (fu["category"] == T.PRET_LOO).any():
        sec.note("No leave-one-out consensus tickets in this experiment.")
    if fu["n_seeds"].max() < 2:
        sec.note("One seed only: error bars need at least two seeds.")
    raw = T.label_followups(exp.followups, exp.plan)
    colours = {c: P.plt.get_cmap("tab10")(i) for i, c in enumerate(T.CATEGORIES)}
    for (arch, recipe, thr), f in fu.groupby(["arch", "recipe", "threshold"], sort=True, dropna=False):
        targets = sorted(f["dataset"].unique(), key=lambda t: (bool(f[f["dataset"] == t]["held_out"].any()), t))
        cats = [c for c in T.CATEGORIES if c in set(f["category"])]
        width = 0.8 / len(cats)
        fig, (ax,) = P.panel_grid(1, width=max(6.5, min(14.0, 0.28 * len(targets) * len(cats) + 2.5)),
                                  height=4.2)
        for i, t in enumerate(targets):
            if f[f["dataset"] == t]["held_out"].any():
                ax.axvspan(i - 0.45, i + 0.45, color="0.92", zorder=0)
        for j, cat in enumerate(cats):
            c = f[f["category"] == cat].set_index("dataset")
            xs = np.arange(len(targets)) - 0.4 + width * (j + 0.5)
            means = [P.pct(c["test_acc_mean"].get(t, np.nan)) for t in targets]
            errs = [P.pct(c["test_acc_std"].get(t, np.nan)) for t in targets]
            ax.bar(xs, means, width * 0.9, yerr=np.nan_to_num(errs), capsize=2,
                   color=colours[cat], label=cat, zorder=2)
            pts = raw[(raw["arch"] == arch) & (raw["recipe"] == recipe) & (raw["category"] == cat)
                      & ((raw["threshold"] == thr) | (np.isnan(thr) & raw["threshold"].isna()))]
            for x, t in zip(xs, targets):
                vals = P.pct(pts[pts["dataset"] == t]["test_acc"].to_numpy(float))
                ax.plot(np.full(vals.size, x), vals, "k.", ms=3, zorder=3)
        held = {t: bool(f[f["dataset"] == t]["held_out"].any()) for t in targets}
        many = len(targets) > 8  # rotate only when labels would collide
        ax.set_xticks(np.arange(len(targets)), [_target_label(t, held[t]) for t in targets],
                      rotation=30 if many else 0, ha="right" if many else "center")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("target task (grey background: held out, not a consensus source)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
        thr_txt = "" if np.isnan(thr) else f", threshold {int(thr)}"
        sp = f["sparsity_mean"][f["category"] == T.PRET].mean()
        sp_txt = "" if np.isnan(sp) else f", {P.pct(sp):.1f}% sparse"
        ax.set_title(f"{recipe}{thr_txt}{sp_txt}", fontsize="medium")
        P.suptitle(fig, f"Prêt-à-porter vs bespoke vs random tickets, {arch}")
        P.legend_below(fig, [ax], ncol=3)
        name = f"followups_{recipe}_t{'na' if np.isnan(thr) else int(thr)}"
        sec.figure(fig, name, f"Test accuracy per target task, {recipe}{thr_txt}: bars = mean "
                   "over seeds, error bars = ±1 std, dots = single seeds; bespoke tickets are "
                   "sources' tickets at the matched sparsity (other sources pooled).")
