"""Initial values of the weights a ticket keeps (figure 7): consensus vs bespoke tickets of the
same seed. Initial weights come from ltray.models.build_model (same seed = same init); values are
divided by the std of their layer's initial weights so layers of different scale can be pooled."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from .loading import Experiment, sweep_setting
from .tables import plain_consensus
from ltray.errors import LtrayError

MAX_STD = 4.0  # histograms cover at most +-4 layer stds
N_BINS = 48
InitFn = Callable[[str, int, int, int | None], dict[str, np.ndarray]]


def torch_initial_weights(arch: str, num_classes: int, seed: int,
                          image_size: int | None) -> dict[str, np.ndarray]:
    """Every parameter of the seed's initial model, as numpy arrays keyed like masks."""
    from ltray.models import build_model

    model = build_model(arch, num_classes, seed, image_size=image_size)
    return {n: p.detach().cpu().numpy() for n, p in model.named_parameters()}


def _fits(mask: dict, params: dict) -> bool:
    return all(n in params and params[n].shape == m.shape for n, m in mask.items())


def _initial_for(mask: dict, arch: str, seed: int, image_size, init: InitFn, notes: list[str]):
    """Initial weights matching `mask`'s layers; the class count is read off the mask's last
    (output) layer when the default of 10 does not fit. A plugin architecture is never imported
    here (analysis reads files only), so its figure becomes a note."""
    from ltray.models import MODELS

    if init is torch_initial_weights and arch not in MODELS:
        notes.append(f"{arch}: a plugin architecture; analysis does not import plugins and the run keeps no "
                     "initial weights, so figure 7 is skipped for it.")
        return None
    params = init(arch, 10, seed, image_size)
    if _fits(mask, params):
        return params
    out_layer = list(mask)[-1]
    n_classes = int(mask[out_layer].shape[0])
    params = init(arch, n_classes, seed, image_size)
    if _fits(mask, params):
        notes.append(f"{arch}: class count {n_classes} read off the mask's output layer {out_layer}.")
        return params
    notes.append(f"{arch}: the initial model's weight shapes do not match the masks "
                 f"(image_size {image_size}?); figure 7 skipped for {arch}.")
    return None


def _pooled(mask: dict, params: dict) -> np.ndarray:
    """Surviving initial weights, each divided by its layer's initial std."""
    parts = []
    for name, m in mask.items():
        w = params[name]
        std = float(w.std()) or 1.0
        parts.append(w[m] / std)
    return np.concatenate(parts) if parts else np.empty(0)


def _bins(dense: np.ndarray) -> np.ndarray:
    """Symmetric bins over the initial weights' range (uniform inits end near +-1.7 std),
    capped at MAX_STD, so the histogram's resolution is not spent on empty tails."""
    m = float(np.abs(dense).max()) if dense.size else MAX_STD
    m = min(max(m, 0.5), MAX_STD) * 1.001
    return np.linspace(-m, m, N_BINS + 1)


def _choose_consensus(cons: pd.DataFrame) -> pd.Series | None:
    """The intersection-like consensus (highest threshold) of the first recipe, lowest seed."""
    if cons.empty:
        return None
    cons = cons.sort_values(["recipe", "threshold", "seed"], ascending=[True, False, True])
    return cons.iloc[0]


def initial_weight_distributions(exp: Experiment, init: InitFn | None = None):
    """Per architecture: histogram (density per bin of w/std) and summary of the initial weights
    kept by a consensus ticket, by bespoke tickets of its source tasks at the closest round, and
    of all weights. Returns (histograms, summary, notes)."""
    from ltray.consensus import closest_round
    from ltray.masks import sparsity

    init = init or torch_initial_weights
    image_size = sweep_setting(exp, "data", "image_size")
    notes, hists, summary = [], [], []
    cons_all = plain_consensus(exp.consensus)
    for arch in sorted(cons_all["arch"].unique()):
        row = _choose_consensus(cons_all[cons_all["arch"] == arch])
        cmask = exp.mask(row["mask_path"]) if row["mask_path"] else None
        if cmask is None:
            notes.append(f"{arch}: consensus mask {row['mask_path']} unavailable; figure 7 skipped.")
            continue
        seed = int(row["seed"])
        try:
            params = _initial_for(cmask, arch, seed, image_size, init, notes)
        except (LtrayError, ImportError, RuntimeError, ValueError) as exc:  # unknown arch, no torch
            notes.append(f"{arch}: initial weights unavailable ({type(exc).__name__}: {exc}); "
                         "figure 7 skipped.")
            continue
        if params is None:
            continue
        target = sparsity(cmask)
        sources = [s for s in str(row["sources"]).split(";") if s]
        b = exp.bespoke
        b = b[(b["arch"] == arch) & (b["seed"] == seed) & (b["technique"] == row["technique"])]
        bespoke_parts, used = [], []
        for task in sorted(sources or b["task"].unique()):
            traj = b[b["task"] == task]
            if traj.empty:
                continue
            rnd = closest_round(dict(zip(traj["round"].astype(int), traj["sparsity"])), target)
            bmask = exp.mask(exp.mask_file(traj[traj["round"] == rnd].iloc[0]))
            if bmask is not None and _fits(bmask, params):
                bespoke_parts.append(_pooled(bmask, params))
                used.append(f"{task} r{rnd}")
        dense = {n: np.ones(m.shape, bool) for n, m in cmask.items()}
        k, n = int(row["threshold"]), int(row["n_sources"])
        series = {"all weights (dense)": _pooled(dense, params),
                  f"consensus (≥ {k} of {n} votes)": _pooled(cmask, params)}
        if bespoke_parts:
            series["bespoke (" + ", ".join(used) + ")"] = np.concatenate(bespoke_parts)
        else:
            notes.append(f"{arch}: no bespoke masks of seed {seed} to compare with.")
        bins = _bins(series["all weights (dense)"])
        for label, values in series.items():
            density, _ = np.histogram(values, bins=bins, density=True)
            hists.append(pd.DataFrame({"arch": arch, "series": label, "bin_left": bins[:-1],
                                       "bin_right": bins[1:], "density": density}))
            summary.append({"arch": arch, "group": row["group"], "seed": seed, "series": label,
                            "n_weights": int(values.size),
                            "mean_abs": float(np.abs(values).mean()) if values.size else np.nan,
                            "median_abs": float(np.median(np.abs(values))) if values.size else np.nan})
    hist = pd.concat(hists, ignore_index=True) if hists else pd.DataFrame()
    return hist, pd.DataFrame(summary), notes
