"""Consensus figures: vote histograms across tasks (figure 4), consensus sparsity vs the
sequential rounds that reach it and per-layer kept fractions (figure 5), and the initial values
of the weights consensus and bespoke tickets keep (figure 7)."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from . import plotting
from .figures_similarity import pick_rounds
from .initweights import initial_weight_distributions
from .measures import consensus_layers
from ltray.experiment.schemas import CONSENSUS

CONSENSUS_CSV = CONSENSUS.csv


def section_votes(ctx, sec):
    """Figure 4: for the lowest seed, how many weights survive on exactly v of N task masks."""
    votes, _ = ctx.overlap(sec)
    if votes.empty:
        sec.note("Vote histograms need bespoke masks of at least two tasks at the same round.")
        return
    sec.table(votes, "vote_histograms", "weights surviving on exactly v of N task masks")
    for arch, a in votes.groupby("arch", sort=True):
        seed = a["seed"].min()
        a = a[a["seed"] == seed]
        techs = sorted(a["technique"].unique())
        rounds = pick_rounds(a["round"].unique())
        cmap = plotting.plt.get_cmap("plasma")
        colour = {r: cmap(0.85 * j / max(len(rounds) - 1, 1)) for j, r in enumerate(rounds)}
        width = 0.8 / len(rounds)

        def draw(ax, tech, a=a, rounds=rounds, colour=colour, width=width):
            t = a[a["technique"] == tech]
            for j, rnd in enumerate(rounds):
                r = t[t["round"] == rnd].sort_values("votes")
                ax.bar(r["votes"] - 0.4 + width * (j + 0.5), plotting.pct(r["fraction"]), width,
                       color=colour[rnd], label=f"round {rnd}")
            plotting.log_axis(ax, "y", plotting.pct(t["fraction"]))
            positive = plotting.pct(t["fraction"][t["fraction"] > 0])
            if len(positive):  # log bars grow from the bottom edge: keep the shortest visible
                ax.set_ylim(positive.min() / 2.5, min(positive.max() * 1.6, 160))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            n = int(t["n_tasks"].max())
            ax.set_xlabel(f"tasks whose mask keeps the weight (of {n})")
            ax.set_ylabel("share of weights (%, log scale)")
            ax.set_title(tech, fontsize="medium")
            ax.grid(axis="y", alpha=0.3)

        plotting.paged_panels(
            sec, techs, draw, name=f"votes_{arch}", title=f"Vote histograms across tasks, {arch}, seed {seed}",
            finish=lambda fig, axes, n=len(rounds): plotting.legend_below(fig, axes, ncol=n),
            caption=lambda suffix, arch=arch, seed=seed: (
                f"How many of the tasks' bespoke masks keep each weight, {arch}, seed {seed}"
                f"{suffix}; the right-most bar is what an all-task consensus keeps; no bar: "
                "no weight has that many votes."))


def section_consensus(ctx, sec):
    """Figure 5: consensus sparsity vs equivalent sequential rounds; kept fraction per layer."""
    cons = ctx.exp.consensus
    if cons.empty:
        sec.note(f"No consensus masks yet ({CONSENSUS_CSV} is absent or empty).")
        return
    sec.table(cons, "consensus", f"consensus masks (from {CONSENSUS_CSV})", show=False)
    _rounds_figure(cons, sec)
    layers = consensus_layers(ctx.exp)
    if layers.empty:
        sec.note("No consensus mask file could be read for per-layer kept fractions.")
        return
    sec.table(layers, "consensus_layers", "kept fraction per layer of each consensus mask")
    archs = sorted(layers["arch"].unique())
    for page, chunk in enumerate(plotting.chunks(archs), 1):
        fig, axes = plotting.panel_grid(len(chunk), ncols=min(len(chunk), 2), width=5.0, height=3.8)
        for ax, arch in zip(axes, chunk):
            a = layers[layers["arch"] == arch]
            thresholds = sorted(a["threshold"].unique())
            for j, thr in enumerate(thresholds):
                t = a[a["threshold"] == thr]
                n = int(t["n_sources"].max())
                ax.scatter(t["size"], plotting.pct(t["kept_fraction"]), s=18, alpha=0.8,
                           color=plotting.plt.get_cmap("tab10")(j % 10), clip_on=False,
                           label=f"keep if ≥ {int(thr)} of {n} votes")
            _label_layers(ax, a)
            plotting.log_axis(ax, "x", layers["size"])
            ax.margins(x=0.15)
            ax.set_xlabel("layer size (weights, log scale)")
            ax.set_ylabel("weights kept (%)")
            ax.set_ylim(0, 105)
            ax.set_title(arch)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small", loc="best")
        plotting.suptitle(fig, "Consensus tickets: weights kept per layer")
        sec.figure(fig, f"consensus_layers_p{page}",
                   "Share of each layer's weights a consensus ticket keeps, vs the layer's size; "
                   "one point per layer, threshold and seed, named next to its points.")


MAX_LAYER_LABELS = 8  # more layers: no names on the points (see consensus_layers.csv)


def _label_layers(ax, a):
    """Name each layer under its lowest point; of two layers of similar size, the second is
    named above its highest point instead, so the names never overlap."""
    pts = a.groupby("layer").agg(size=("size", "first"), low=("kept_fraction", "min"),
                                 high=("kept_fraction", "max"))
    if len(pts) > MAX_LAYER_LABELS:
        return
    prev, above = None, False
    for layer, r in pts.sort_values("size").iterrows():
        above = (not above) if prev is not None and r["size"] / prev < 2.0 else False
        prev = r["size"]
        up = above or r["low"] < 0.08  # a name under a point near 0 would hit the ticks
        y, dy, va = (r["high"], 5, "bottom") if up else (r["low"], -5, "top")
        ax.annotate(layer.removesuffix(".weight"), (r["size"], plotting.pct(y)), xytext=(0, dy),
                    textcoords="offset points", ha="center", va=va, fontsize="x-small",
                    color="0.3")


def _rounds_figure(cons, sec):
    fig, (ax,) = plotting.panel_grid(1, width=6.5, height=4.4)
    colours = plotting.colour_map(cons["arch"])
    ok = cons.dropna(subset=["sparsity", "equivalent_rounds"])
    ok = ok[ok["equivalent_rounds"] > 0]
    if ok.empty:
        plotting.plt.close(fig)
        sec.note(f"{CONSENSUS_CSV} has no sparsity/equivalent_rounds values to plot.")
        return
    # the per-round pruning fraction the table's equivalent_rounds used: s = 1 - (1 - f)^r
    f = 1 - (1 - ok["sparsity"].iloc[0]) ** (1 / ok["equivalent_rounds"].iloc[0])
    r = np.linspace(0, max(ok["equivalent_rounds"].max(), ok["source_round"].max()) + 1, 200)
    ax.plot(r, plotting.pct(1 - (1 - f) ** r), color="0.5", lw=1,
            label=f"sequential pruning, {plotting.pct(f):.0f}% per round")
    for (arch, loo), a in ok.groupby(["arch", ok["leave_out"] != ""], sort=True):
        style = ({"marker": "^", "facecolors": "none", "edgecolors": colours[arch]} if loo
                 else {"marker": "o", "color": colours[arch]})
        ax.scatter(a["equivalent_rounds"], plotting.pct(a["sparsity"]), s=30, **style,
                   label=f"{arch} consensus" + (" (leave-one-out)" if loo else ""), zorder=3)
        if not loo and a["seed"].nunique() == 1 and len(a) <= 8:  # one point per threshold
            for x, y, k, n in zip(a["equivalent_rounds"], a["sparsity"], a["threshold"],
                                  a["n_sources"]):
                ax.annotate(f"≥ {int(k)} of {int(n)}", (x, plotting.pct(y)), xytext=(-8, 6),
                            textcoords="offset points", ha="right", fontsize="x-small")
        src = a["source_round"].dropna().unique()
        ax.scatter(src, plotting.pct(1 - (1 - f) ** src), marker="x", color=colours[arch], s=40,
                   label=f"{arch} source masks (round {', '.join(map(str, map(int, src)))})"
                   if not loo else None, zorder=3)
    ax.set_xlabel("sequential pruning rounds that reach the same sparsity")
    ax.set_ylabel("sparsity (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="lower right")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.set_title("Consensus sparsity vs equivalent sequential rounds")
    sec.figure(fig, "consensus_rounds",
               "Each consensus mask's sparsity placed on the sequential-pruning curve; crosses: "
               "the source masks' rounds. The horizontal gap is the number of rounds saved.")


def section_init(ctx, sec):
    """Figure 7: histograms of the surviving weights' initial values, consensus vs bespoke."""
    if ctx.exp.consensus.empty:
        sec.note("No consensus masks yet, so no initial-weight comparison.")
        return
    hist, summary, notes = initial_weight_distributions(ctx.exp, ctx.opts.init_weights)
    for n in notes:
        sec.note(n)
    if hist.empty:
        return
    sec.table(summary, "initial_weights", "initial |w| / layer std of the kept weights")
    sec.table(hist, "initial_weight_histograms", "histogram densities", show=False)
    archs = sorted(hist["arch"].unique())
    for page, chunk in enumerate(plotting.chunks(archs, 4), 1):
        fig, axes = plotting.panel_grid(len(chunk), ncols=min(len(chunk), 2), width=5.4, height=3.8)
        for ax, arch in zip(axes, chunk):
            a = hist[hist["arch"] == arch]
            for i, (label, s) in enumerate(a.groupby("series", sort=False)):
                centres = (s["bin_left"] + s["bin_right"]) / 2
                if label.startswith("all weights"):
                    ax.fill_between(centres, s["density"], step="mid", color="0.85", label=label)
                else:
                    ax.step(centres, s["density"], where="mid", lw=1.6, label=label,
                            color=plotting.plt.get_cmap("tab10")(i))
            span = a.loc[a["density"] > 0, ["bin_left", "bin_right"]]
            if len(span):
                ax.set_xlim(span["bin_left"].min() - 0.2, span["bin_right"].max() + 0.2)
            ax.set_xlabel("initial weight / its layer's initial std")
            ax.set_ylabel("density (per unit of std)")
            ax.set_title(arch)
            ax.grid(alpha=0.3)
        plotting.legend_below(fig, axes, ncol=1)
        plotting.suptitle(fig, "Initial values of the weights tickets keep")
        sec.figure(fig, f"initial_weights_p{page}",
                   "Distribution of the initial values of surviving weights (pooled over layers, "
                   "each divided by its layer's std): consensus ticket vs the sources' bespoke "
                   "tickets at the closest round; grey: all weights.")
