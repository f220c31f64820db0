"""Shared matplotlib setup: the Agg backend, panel grids with a bounded number of panels per
figure, consistent colours per technique/category, and saving PNGs at a chosen dpi."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

MAX_PANELS = 6  # per figure; more panels go to further figures (page 2, 3 ...)
PANEL_W, PANEL_H = 4.6, 3.4  # inches per panel


def chunks(items: list, size: int = MAX_PANELS) -> list[list]:
    """Split panel keys into figure pages of at most `size` panels."""
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def paged_panels(sec, keys: list, draw, *, name: str, title: str, caption, finish=None,
                 per_page: int = MAX_PANELS) -> None:
    """One figure per page of at most `per_page` panels, one panel per key. `draw(ax, key)` fills a
    panel, `finish(fig, axes)` adds legends; the page goes into `title` and the caption
    (`caption(suffix)`), and the figure is saved as `<name>_p<page>`."""
    pages = chunks(keys, per_page)
    for page, chunk in enumerate(pages, 1):
        fig, axes = panel_grid(len(chunk))
        for ax, key in zip(axes, chunk):
            draw(ax, key)
        if finish is not None:
            finish(fig, axes)
        suffix = f" (page {page}/{len(pages)})" if len(pages) > 1 else ""
        suptitle(fig, title + suffix)
        sec.figure(fig, f"{name}_p{page}", caption(suffix))


def panel_grid(n: int, ncols: int | None = None, width: float = PANEL_W, height: float = PANEL_H,
               sharey: bool = False):
    """A constrained-layout figure with `n` axes (extra grid cells hidden)."""
    n = max(n, 1)
    ncols = ncols or (2 if n == 4 else min(n, 3))  # 4 panels: 2 x 2, not 3 + 1
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False, layout="constrained", sharey=sharey)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def colour_map(keys) -> dict:
    """Stable colours for category keys (techniques, pairs, tasks), in sorted order."""
    keys = sorted(set(keys), key=str)
    cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    return {k: cmap(i % cmap.N) for i, k in enumerate(keys)}


def save(fig, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def pct(x):
    """Fractions in [0, 1] to percent, for axes labelled in %."""
    return 100.0 * x


def _chars_per_line(fig, points: float) -> int:
    """Characters of a `points`-sized font that fit the figure's width (~0.55 em each)."""
    return max(20, int(fig.get_figwidth() * 72 / (0.55 * points)))


def suptitle(fig, text: str, points: float = 12) -> None:
    """A figure title wrapped to the figure's width, so it never runs off the canvas."""
    fig.suptitle("\n".join(textwrap.wrap(text, _chars_per_line(fig, points))), fontsize=points)


def legend_below(fig, axes, ncol: int = 4, order=None, **kw):
    """One legend for the whole figure, under the panels, from the handles of all axes; as
    many columns as fit the figure's width. `order`: labels listed first, in that order."""
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles and not lab.startswith("_"):
                handles[lab] = h
                labels.append(lab)
    if order is not None:
        rank = {lab: i for i, lab in enumerate(order)}
        labels.sort(key=lambda lab: rank.get(lab, len(rank)))
    if labels:
        col_in = (max(map(len, labels)) * 0.55 * 9 + 40) / 72  # fontsize small ~ 9 pt, inches
        ncol = max(1, min(ncol, len(labels), int(fig.get_figwidth() / col_in)))
        fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center",
                   ncol=ncol, fontsize="small", **kw)


def _compact(v: float) -> str:
    """Tick label without exponent notation: 0.05, 20, 5k, 2M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def log_axis(ax, which: str = "x", values=None) -> None:
    """Log scale with plain labels: 1-2-5 steps over short spans, decades over long ones (so
    labels never crowd), and no minor-tick labels."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    subs = (1.0, 2.0, 5.0)
    if values is not None:
        v = [float(x) for x in values if x and x > 0]
        if v and math.log10(max(v) / min(v)) > 2.5:
            subs = (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _compact(v)))
    axis.set_minor_formatter(NullFormatter())
