"""Figure 6: prêt-à-porter vs bespoke vs random tickets, test accuracy per target task, one
figure per consensus recipe and threshold. Points, not bars, so the axis can zoom in on gaps of a
few points; error bars only where there are several seeds."""

from __future__ import annotations

import numpy as np

from . import plotting
from . import tickets
from .tables import plain_consensus

MARKERS = {tickets.PRET: "o", tickets.PRET_LOO: "D", tickets.BESPOKE_SAME: "s", tickets.BESPOKE_TRAJ: "s",
           tickets.BESPOKE_OTHER: "^", tickets.RANDOM: "v"}


def _target_label(task: str, held_out: bool) -> str:
    return f"{task}\n(held out)" if held_out else task


def _n_sources(consensus) -> dict:
    """(recipe, threshold) -> number of source tasks, for 'k of N' labels."""
    cons = plain_consensus(consensus)
    return {(r, float(k)): int(n) for r, k, n in
            zip(cons["recipe"], cons["threshold"], cons["n_sources"]) if not np.isnan(n)}


def section_followups(ctx, sec):
    exp = ctx.exp
    fu = tickets.followup_summary(exp.followups, exp.plan, exp.bespoke)
    if fu.empty:
        sec.note("No follow-up trials (prêt-à-porter, transfer, random) with results yet.")
        return
    sec.table(fu, "followup_accuracy", "follow-up test accuracy per target and ticket kind")
    if not (fu["category"] == tickets.PRET_LOO).any():
        sec.note("No leave-one-out consensus tickets in this experiment.")
    one_seed = fu["n_seeds"].max() < 2
    if one_seed:
        sec.note("One seed only: no error bars (a spread over seeds needs two seeds or more); "
                 "small dots are the single tickets pooled into a mean (the other sources' "
                 "tickets).")
    if (fu["category"] == tickets.BESPOKE_TRAJ).any():
        sec.note("Targets without a retrained bespoke ticket of their own (held out, but in the "
                 "grid) are compared with the round of their own trajectory closest in sparsity.")
    raw = tickets.label_followups(exp.followups, exp.plan, exp.bespoke)
    n_src = _n_sources(exp.consensus)
    for (arch, recipe, thr), f in fu.groupby(["arch", "recipe", "threshold"], sort=True,
                                             dropna=False):
        pts = raw[(raw["arch"] == arch) & (raw["recipe"] == recipe)
                  & ((raw["threshold"] == thr) | (np.isnan(thr) & raw["threshold"].isna()))]
        _figure(sec, arch, recipe, thr, f, pts, n_src.get((recipe, thr)), one_seed)


def _figure(sec, arch, recipe, thr, f, pts, n_sources, one_seed):
    held = {t: bool(f[f["task"] == t]["held_out"].any()) for t in f["task"].unique()}
    targets = sorted(held, key=lambda t: (held[t], t))  # sources first, held-out last
    cats = [c for c in tickets.CATEGORIES if c in set(f["category"])]
    colours = {c: plotting.plt.get_cmap("tab10")(i) for i, c in enumerate(tickets.CATEGORIES)}
    colours[tickets.BESPOKE_TRAJ] = colours[tickets.BESPOKE_SAME]  # the same kind of ticket: hollow marker
    step = 0.8 / len(cats)
    width = max(6.5, min(14.0, 0.22 * len(targets) * len(cats) + 3.0))
    fig, (ax,) = plotting.panel_grid(1, width=width, height=4.4)
    for i, t in enumerate(targets):
        if held[t]:
            ax.axvspan(i - 0.5, i + 0.5, color="0.93", lw=0, zorder=0)
        if i:
            ax.axvline(i - 0.5, color="0.8", lw=0.8, zorder=0)
    for j, cat in enumerate(cats):
        c = f[f["category"] == cat].set_index("task")
        xs = np.arange(len(targets)) - 0.4 + step * (j + 0.5)
        means = np.array([plotting.pct(c["test_acc_mean"].get(t, np.nan)) for t in targets])
        errs = np.array([plotting.pct(c["test_acc_std"].get(t, np.nan)) for t in targets])
        hollow = cat == tickets.BESPOKE_TRAJ
        ax.errorbar(xs, means, yerr=None if one_seed else np.nan_to_num(errs), fmt=MARKERS[cat],
                    ms=7, capsize=3, color=colours[cat], mfc="white" if hollow else colours[cat],
                    mew=1.5, lw=1.2, ls="none", label=cat, zorder=3)
        p = pts[pts["category"] == cat]
        for x, t in zip(xs, targets):
            vals = plotting.pct(p[p["task"] == t]["test_acc"].to_numpy(float))
            if vals.size > 1:  # a single ticket is the marker itself
                ax.plot(np.full(vals.size, x), vals, ".", color="0.2", ms=4, zorder=4)
    many = len(targets) > 8  # rotate only when labels would collide
    ax.set_xticks(np.arange(len(targets)), [_target_label(t, held[t]) for t in targets],
                  rotation=30 if many else 0, ha="right" if many else "center")
    ax.set_xlim(-0.5, len(targets) - 0.5)
    lo, hi = ax.get_ylim()
    ax.set_ylim(max(lo, 0), min(hi, 100.5))
    ax.set_xlabel("target task (grey: held out, not a consensus source)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    thr_txt = "" if np.isnan(thr) else (f", keep if ≥ {int(thr)} of {n_sources} sources"
                                         if n_sources else f", threshold {int(thr)}")
    sp = f["sparsity_mean"][f["category"] == tickets.PRET].mean()
    sp_txt = "" if np.isnan(sp) else f", {plotting.pct(sp):.1f}% sparse"
    ax.set_title(f"{recipe}{thr_txt}{sp_txt}", fontsize="medium")
    plotting.suptitle(fig, f"Prêt-à-porter vs bespoke vs random tickets, {arch}")
    plotting.legend_below(fig, [ax], ncol=3)
    spread = ("one seed: markers are single runs, no error bars" if one_seed
              else "markers = mean over seeds, error bars = ±1 std over seeds")
    loo = (" Leave-one-out: the consensus of the other sources, without the target's own mask."
           if tickets.PRET_LOO in cats else "")
    name = f"followups_{recipe}_t{'na' if np.isnan(thr) else int(thr)}"
    sec.figure(fig, name, f"Test accuracy per target task, {recipe}{thr_txt}: {spread}; small "
               "dots = single tickets pooled into a mean (other sources' bespoke tickets, at "
               f"the sparsity closest to the consensus').{loo}")
