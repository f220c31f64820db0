"""SNIP and SynFlow: saliency criteria written only against the public technique contract
(weights, masks, fraction, seed, round, dim, context), which proves it carries gradients and data.

SNIP (Lee et al. 2019) scores |g * w|, g the loss gradient summed over SNIP_BATCHES training
batches of the masked network. SynFlow (Tanaka et al. 2020) is data-free and iterative: it scores
|theta * dR/dtheta| with R = 1^T (prod_l |W_l|) 1, the output summed for an all-ones input
through the network with every parameter replaced by its absolute value (float64, eval mode), and
prunes in SYNFLOW_ITERATIONS steps whose kept share shrinks exponentially to 1 - fraction.
Both remove the lowest scores among the survivors pooled over all given layers.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from ltray.pruning.amount import n_to_prune
from ltray.pruning.unstructured import global_lowest

SNIP_BATCHES = 8  # training batches whose gradients are summed (of the trajectory's batch size)
SYNFLOW_ITERATIONS = 100  # the paper's schedule: prune, re-score, 100 times per pruning step


@torch.enable_grad()  # callers may prune under no_grad
def snip_scores(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor], context) -> dict[str, Tensor]:
    """|dL/dw * w| of each given layer, L summed over SNIP_BATCHES batches of the masked network."""
    model = context.model(masks)
    params = dict(model.named_parameters())
    model.zero_grad(set_to_none=True)
    for x, y in context.batches(SNIP_BATCHES):
        context.loss(model(x), y).backward()  # gradients accumulate: the sum over the batches
    out = {}
    for n in weights:
        grad = params[n].grad
        grad = torch.zeros_like(params[n]) if grad is None else grad  # a layer the loss does not reach
        out[n] = (grad.detach() * (weights[n] * masks[n]).to(grad.dtype)).abs()
    return out


def snip(weights, masks, fraction, seed, round, dim, context) -> dict[str, Tensor]:
    alive = sum(int(masks[n].sum()) for n in weights)
    return global_lowest(snip_scores(weights, masks, context), masks, n_to_prune(fraction, alive))


@torch.enable_grad()
def synflow_scores(masks: Mapping[str, Tensor], names, model, ones: Tensor) -> dict[str, Tensor]:
    """|theta * dR/dtheta| of the named weights in `model`, whose parameters are already |theta|."""
    params = dict(model.named_parameters())
    model.zero_grad(set_to_none=True)
    model(ones).sum().backward()
    out = {}
    for n in names:
        grad = params[n].grad
        grad = torch.zeros_like(params[n]) if grad is None else grad
        out[n] = (grad * params[n]).detach().abs()
    return out


def synflow(weights, masks, fraction, seed, round, dim, context) -> dict[str, Tensor]:
    names = list(weights)
    model = context.model(masks).double().eval()  # eval: batch-norm is a fixed affine map
    with torch.no_grad():
        for t in model.state_dict().values():  # parameters and buffers (running statistics)
            if t.is_floating_point():
                t.abs_()
    params = dict(model.named_parameters())
    magnitudes = {n: (weights[n] * masks[n]).abs().to(params[n]) for n in names}
    ones = torch.ones((1, *context.input_shape), dtype=torch.float64, device=params[names[0]].device)
    alive0 = sum(int(masks[n].sum()) for n in names)
    total = n_to_prune(fraction, alive0)
    new = {n: masks[n].clone() for n in names}
    removed = 0
    for i in range(1, SYNFLOW_ITERATIONS + 1):
        goal = total if i == SYNFLOW_ITERATIONS else min(total, alive0 - _kept(alive0, fraction, i))
        if goal <= removed:
            continue
        with torch.no_grad():
            for n in names:
                params[n].copy_(magnitudes[n] * new[n])
        scores = synflow_scores(new, names, model, ones)
        new = global_lowest(scores, new, goal - removed)
        removed = goal
    return new


def _kept(alive: int, fraction: float, i: int) -> int:
    """Survivors after step i of the schedule (a module function: `synflow`'s `round` argument
    shadows the builtin)."""
    return round(alive * (1 - fraction) ** (i / SYNFLOW_ITERATIONS))
