"""A SNIP variant that prunes each layer separately: |gradient x weight| over two training batches,
the lowest-scoring `fraction` of each layer's survivors removed. Written only against ltray's
public technique contract: the context gives the masked model, the batches and the loss."""

from __future__ import annotations

import torch

from ltray.pruning import Technique

BATCHES = 2


@torch.enable_grad()  # ltray may call a technique under no_grad
def compute(weights, masks, fraction, seed, round, dim, context):
    model = context.model(masks)
    params = dict(model.named_parameters())
    for x, y in context.batches(BATCHES):
        context.loss(model(x), y).backward()
    out = {}
    for name, mask in masks.items():
        grad = params[name].grad if params[name].grad is not None else torch.zeros_like(params[name])
        scores = (grad * weights[name] * mask).abs().reshape(-1)
        alive = mask.reshape(-1).nonzero().squeeze(1)
        k = int(fraction * alive.numel() + 0.5)
        new = mask.clone()
        if k:
            new.view(-1)[alive[torch.topk(scores[alive], k, largest=False).indices]] = False
        out[name] = new
    return out


layer_snip = Technique(name="layer_snip", description="lowest |g x w| per layer", compute=compute)
