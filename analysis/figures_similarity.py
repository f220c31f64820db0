"""Mask-similarity figures: Jaccard distance between techniques vs round (figure 2), and
between tasks, as heatmaps, plus the share of weights bespoke tickets share (figure 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from . import plotting
from . import tables
from .figures_accuracy import remaining_axis
from .loading import ALL_LAYERS
from .measures import shared_summary
from ltray.experiment.schemas import SIMILARITY

MAX_HEATMAPS = 4  # rounds shown per architecture
MAX_PAIR_LINES = 6  # more technique pairs: one panel per technique instead of one crowded panel
MAX_LAYER_LEGEND = 10  # more layers: colour by depth with a colour bar instead of a legend


def pick_rounds(rounds, k: int = MAX_HEATMAPS) -> list[int]:
    """Up to k rounds spread from the first pruned round to the last (round 0 only if alone)."""
    rs = sorted({int(r) for r in rounds})
    pruned = [r for r in rs if r > 0] or rs
    if len(pruned) <= k:
        return pruned
    idx = np.unique(np.round(np.linspace(0, len(pruned) - 1, k)).astype(int))
    return [pruned[i] for i in idx]


def _round_axis(ax):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("pruning round")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("Jaccard distance (0 = same, 1 = disjoint)")
    ax.grid(alpha=0.3)


def section_techniques(ctx, sec):
    """Figure 2: per-layer distance to the reference technique, and whole-network distance of
    every pair of techniques, as functions of the round."""
    sim = ctx.similarity(sec)
    if sim is None or sim.empty:
        sec.note(f"No mask similarities: {SIMILARITY.csv} is absent and no bespoke masks could be read.")
        return
    ref = ctx.opts.reference
    layers = tables.reference_layer_distances(sim, ref)
    if layers.empty:
        known = sorted(set(sim["technique_a"]) | set(sim["technique_b"]))
        sec.note(f"No same-task comparisons with the reference technique {ref!r} "
                 f"(techniques present: {', '.join(known) or 'none'}; choose one with --reference).")
    else:
        sec.table(layers, "distance_to_reference", f"per-layer distance to {ref}")
        _reference_figures(layers, ref, sec, ctx.layer_order)
    pairs = tables.pair_distances(sim)
    if pairs.empty:
        sec.note("No pairs of techniques on the same task.")
        return
    sec.table(pairs, "distance_technique_pairs", "whole-network distance per technique pair")
    if pairs["pair"].nunique() <= MAX_PAIR_LINES:
        _pairs_one_panel(pairs, sec)
    else:
        _pairs_per_technique(pairs, sec)


def _band(ax, rows, colour, label):
    rows = rows.sort_values("round")
    y, sd = rows["distance_mean"].to_numpy(float), rows["distance_std"].fillna(0).to_numpy(float)
    ax.plot(rows["round"], y, marker="o", ms=2.5, color=colour, label=label)
    ax.fill_between(rows["round"], y - sd, y + sd, color=colour, alpha=0.15, lw=0)


def _pairs_one_panel(pairs, sec):
    """Few pairs: one panel per architecture, one line per pair."""
    colours = plotting.colour_map(pairs["pair"])
    archs = sorted(pairs["arch"].unique())
    for page, chunk in enumerate(plotting.chunks(archs), 1):
        fig, axes = plotting.panel_grid(len(chunk), ncols=min(len(chunk), 2), width=5.5, height=4.0)
        for ax, arch in zip(axes, chunk):
            for pair, p in pairs[pairs["arch"] == arch].groupby("pair", sort=True):
                _band(ax, p, colours[pair], pair)
            _round_axis(ax)
            ax.set_title(arch)
        plotting.legend_below(fig, axes, ncol=3)
        plotting.suptitle(fig, "Whole-network distance between techniques")
        sec.figure(fig, f"distance_pairs_p{page}",
                   "Whole-network Jaccard distance between the masks of two techniques on the same "
                   "task and seed vs round: mean over tasks and seeds, band = ±1 std over them.")


def _pairs_per_technique(pairs, sec):
    """Many pairs: per architecture, one panel per technique with a line to each other one
    (every pair appears in two panels, in the colour of the other technique)."""
    a_b = pairs["pair"].str.split(" vs ", n=1, expand=True)
    both = pd.concat([pairs.assign(technique=a_b[0], other=a_b[1]),
                      pairs.assign(technique=a_b[1], other=a_b[0])], ignore_index=True)
    colours = plotting.colour_map(both["technique"])
    for arch, a in both.groupby("arch", sort=True):
        techs = sorted(a["technique"].unique())
        def draw(ax, tech, a=a):
            for other, o in a[a["technique"] == tech].groupby("other", sort=True):
                _band(ax, o, colours[other], other)
            _round_axis(ax)
            ax.set_title(f"distance from {tech}", fontsize="medium")

        plotting.paged_panels(
            sec, techs, draw, name=f"distance_pairs_{arch}",
            title=f"Whole-network distance between techniques, {arch}",
            finish=lambda fig, axes, techs=techs: plotting.legend_below(fig, axes, ncol=4, order=techs),
            caption=lambda suffix, arch=arch: (
                f"Whole-network Jaccard distance from each technique's masks to every other "
                f"technique's on the same task, {arch}{suffix}: mean over tasks and seeds, "
                "band = ±1 std; line colour = the other technique."))


def _reference_figures(layers, ref, sec, layer_order):
    for arch, a in layers.groupby("arch", sort=True):
        order = [l for l in layer_order(arch, a["layer"].unique()) if l != ALL_LAYERS]
        depth = {l: i for i, l in enumerate(order)}
        cmap = plotting.plt.get_cmap("viridis")
        # 0.85: viridis' last yellows are too faint on white
        colour = {l: cmap(0.85 * i / max(len(order) - 1, 1)) for l, i in depth.items()}
        techs = sorted(a["technique"].unique())
        def draw(ax, tech, a=a, order=order, colour=colour):
            t = a[a["technique"] == tech]
            for layer in order:
                l = t[t["layer"] == layer].sort_values("round")
                ax.plot(l["round"], l["distance_mean"], lw=1.2, color=colour[layer],
                        label=layer if len(order) <= MAX_LAYER_LEGEND else None)
            whole = t[t["layer"] == ALL_LAYERS].sort_values("round")
            if not whole.empty:
                ax.plot(whole["round"], whole["distance_mean"], "k--", lw=2, label="whole network")
            _round_axis(ax)
            ax.set_title(f"{tech} vs {ref}", fontsize="medium")

        def finish(fig, axes, order=order, cmap=cmap):
            if len(order) > MAX_LAYER_LEGEND:
                sm = plotting.plt.cm.ScalarMappable(cmap=cmap, norm=plotting.plt.Normalize(0, (len(order) - 1) / 0.85))
                fig.colorbar(sm, ax=axes, label="layer depth (0 = input side)", shrink=0.8)
            plotting.legend_below(fig, axes, ncol=4)

        plotting.paged_panels(
            sec, techs, draw, name=f"distance_to_reference_{arch}", title=f"Per-layer distance to {ref}, {arch}",
            finish=finish,
            caption=lambda suffix, arch=arch: (
                f"Per-layer Jaccard distance between each technique's masks and {ref}'s "
                f"on the same task, {arch}{suffix}: mean over tasks and seeds; dashed: "
                "whole network."))


def section_tasks(ctx, sec):
    """Figure 3: cross-task distance matrices for one technique at a few rounds, and the share
    of weights bespoke tickets of different tasks have in common vs sparsity."""
    sim = ctx.similarity(sec)
    if sim is not None and not sim.empty:
        techs = tables.techniques_with_cross_task(sim)
        tech = ctx.opts.reference if ctx.opts.reference in techs else (techs[0] if techs else None)
        if tech is None:
            sec.note("No pairs of different tasks pruned with the same technique.")
        else:
            if tech != ctx.opts.reference:
                sec.note(f"{ctx.opts.reference} has no cross-task pairs; matrices show {tech}.")
            mats = tables.cross_task_distances(sim, tech)
            sec.table(mats, "distance_tasks", f"whole-network distance between tasks, {tech}")
            for arch, m in mats.groupby("arch", sort=True):
                _heatmaps(m, arch, tech, sec)
    else:
        sec.note("No mask similarities for cross-task matrices.")
    _, shared = ctx.overlap(sec)
    summ = shared_summary(shared)
    if summ.empty:
        sec.note("Shared fractions need bespoke masks of at least two tasks at the same round.")
        return
    sec.table(shared, "shared_fraction_pairs", "shared fraction per ordered pair of tasks")
    sec.table(summ, "shared_fraction", "shared fraction over task pairs vs sparsity", show=False)
    _shared_figure(summ, sec)


def _heatmaps(m, arch, tech, sec):
    rounds = pick_rounds(m["round"].unique())
    tasks = sorted(set(m["task_a"]) | set(m["task_b"]))
    n = len(tasks)
    side = max(3.2, 0.45 * n + 1.6)
    fig, axes = plotting.panel_grid(len(rounds), ncols=min(len(rounds), 2), width=side + 0.6, height=side)
    for ax, rnd in zip(axes, rounds):
        mat = np.full((n, n), np.nan)
        np.fill_diagonal(mat, 0.0)
        sel = m[m["round"] == rnd]
        for _, r in sel.iterrows():
            mat[tasks.index(r["task_a"]), tasks.index(r["task_b"])] = r["distance_mean"]
        im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
        if n <= 8:
            for i in range(n):
                for j in range(n):
                    if not np.isnan(mat[i, j]):
                        ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center",
                                fontsize="x-small", color="w" if mat[i, j] < 0.6 else "k")
        ax.set_xticks(range(n), tasks, rotation=45, ha="right", fontsize="small")
        ax.set_yticks(range(n), tasks, fontsize="small")
        ax.set_title(f"round {rnd}")
    fig.colorbar(im, ax=axes, label="Jaccard distance", shrink=0.8)
    plotting.suptitle(fig, f"Distance between tasks' masks, {tech}, {arch}")
    sec.figure(fig, f"distance_tasks_{arch}",
               f"Whole-network Jaccard distance between the bespoke masks of two tasks ({tech}, "
               f"{arch}), mean over seeds, at round{'s' if len(rounds) > 1 else ''} "
               f"{', '.join(map(str, rounds))}.")


def _shared_figure(summ, sec):
    colours = plotting.colour_map(summ["technique"])
    archs = sorted(summ["arch"].unique())
    for page, chunk in enumerate(plotting.chunks(archs), 1):
        fig, axes = plotting.panel_grid(len(chunk), ncols=min(len(chunk), 2), width=5.2, height=4.0)
        for ax, arch in zip(axes, chunk):
            a = summ[summ["arch"] == arch]
            for tech, t in a.groupby("technique", sort=True):
                t = t.sort_values("round")
                x = plotting.pct(1 - t["sparsity_mean"].to_numpy(float))
                ax.plot(x, plotting.pct(t["shared_mean"]), marker="o", ms=3, color=colours[tech], label=tech)
                ax.fill_between(x, plotting.pct(t["shared_min"]), plotting.pct(t["shared_max"]),
                                color=colours[tech], alpha=0.15, lw=0)
            xs = np.sort(plotting.pct(1 - a["sparsity_mean"].to_numpy(float)))
            ax.plot(xs, xs, ls=":", color="0.4", label="chance (independent masks)")
            remaining_axis(ax, xs)
            ax.set_ylim(0, 105)
            ax.set_ylabel("share of a ticket's weights\nalso kept by another task (%)")
            ax.set_title(arch)
            ax.grid(alpha=0.3)
        plotting.legend_below(fig, axes, ncol=4)
        plotting.suptitle(fig, "Weights shared by bespoke tickets of different tasks")
        sec.figure(fig, f"shared_fraction_p{page}",
                   "|A∩B|/|A| over ordered pairs of tasks (same seed, technique and round) vs "
                   "sparsity: mean, band = min to max; dotted: expected overlap of independent "
                   "masks of the same density.")
