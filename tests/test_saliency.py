"""SNIP and SynFlow, built on the public technique contract, against scores computed by hand:
SynFlow's closed form on a two-layer linear network, SNIP against autograd's own gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ltray.pruning import TensorContext, prune, saliency
from ltray.pruning.amount import n_to_prune


def linear_net(seed: int = 0, d: int = 6, h: int = 5, o: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, h, bias=False), nn.Linear(h, o, bias=False))


def weights_and_mask(model, keep: float = 1.0, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("weight")}
    mask = {n: torch.rand(w.shape, generator=gen) < keep for n, w in weights.items()}
    return weights, mask


def context(model, mask, n: int = 40, seed: int = 0) -> TensorContext:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 1, 2, 3, generator=gen)  # flattened to the net's 6 inputs
    return TensorContext(model, mask, images, torch.randint(0, 3, (n,), generator=gen), seed=seed, batch_size=8)


def test_synflow_scores_match_the_closed_form_of_a_two_layer_linear_net():
    """R = 1^T |W2| |W1| 1, so dR/d|W1|_ij = sum_k |W2|_ki and dR/d|W2|_ki = sum_j |W1|_ij."""
    model = linear_net()
    weights, mask = weights_and_mask(model, keep=0.8)
    a1 = (weights["1.weight"] * mask["1.weight"]).abs().double()
    a2 = (weights["2.weight"] * mask["2.weight"]).abs().double()
    expected = {"1.weight": a1 * a2.sum(0).unsqueeze(1), "2.weight": a2 * a1.sum(1).unsqueeze(0)}
    net = context(model, mask).model().double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    got = saliency.synflow_scores(mask, list(weights), net, torch.ones(1, 1, 2, 3, dtype=torch.float64))
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-12, atol=1e-12)


def test_synflow_in_one_step_prunes_the_lowest_closed_form_scores(monkeypatch):
    monkeypatch.setattr(saliency, "SYNFLOW_ITERATIONS", 1)
    model = linear_net(1)
    weights, mask = weights_and_mask(model)
    a1, a2 = weights["1.weight"].abs(), weights["2.weight"].abs()
    scores = torch.cat([(a1 * a2.sum(0).unsqueeze(1)).reshape(-1), (a2 * a1.sum(1).unsqueeze(0)).reshape(-1)])
    k = n_to_prune(0.3, scores.numel())
    new = prune("synflow", weights, mask, fraction=0.3, seed=0, round=1, context=context(model, mask))
    pruned = ~torch.cat([new[n].reshape(-1) for n in weights])
    assert set(pruned.nonzero().squeeze(1).tolist()) == set(torch.topk(scores, k, largest=False).indices.tolist())


def test_synflow_rescoring_steps_differ_from_one_shot(monkeypatch):
    """Iterative re-scoring is what separates SynFlow from one-shot pruning on the same scores."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 40, bias=False), nn.Linear(40, 30, bias=False),
                          nn.Linear(30, 3, bias=False))
    weights, mask = weights_and_mask(model)
    ctx = context(model, mask)
    iterative = prune("synflow", weights, mask, fraction=0.9, seed=0, round=1, context=ctx)
    monkeypatch.setattr(saliency, "SYNFLOW_ITERATIONS", 1)
    one_shot = prune("synflow", weights, mask, fraction=0.9, seed=0, round=1, context=ctx)
    assert sum(int(m.sum()) for m in iterative.values()) == sum(int(m.sum()) for m in one_shot.values())
    assert any(not torch.equal(iterative[n], one_shot[n]) for n in weights)


def test_snip_scores_are_autograds_gradient_times_weight():
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    weights, mask = weights_and_mask(model, keep=0.7)
    ctx = context(model, mask)
    got = saliency.snip_scores(weights, mask, ctx)
    # separately: the masked network, the same batches, autograd's gradient of the summed loss
    ref = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    ref.load_state_dict(model.state_dict())
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if n in mask:
                p.mul_(mask[n])
    params = dict(ref.named_parameters())
    loss = sum(nn.functional.cross_entropy(ref(x), y) for x, y in ctx.batches(saliency.SNIP_BATCHES))
    grads = torch.autograd.grad(loss, [params[n] for n in weights])
    for (n, w), g in zip(weights.items(), grads):
        torch.testing.assert_close(got[n], (g * w * mask[n]).abs(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("technique", ["snip", "synflow"])
def test_saliency_masks_shrink_by_the_pooled_fraction_deterministically(technique):
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 20), nn.ReLU(), nn.Linear(20, 3))
    weights, mask = weights_and_mask(model, keep=0.6, seed=3)
    before = {n: m.clone() for n, m in mask.items()}
    w_before = {n: w.clone() for n, w in weights.items()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # the trajectory prunes under no_grad
        new = prune(technique, weights, mask, fraction=0.25, seed=0, round=2, context=context(model, mask))
    again = prune(technique, weights, mask, fraction=0.25, seed=0, round=2, context=context(model, mask))
    alive = sum(int(m.sum()) for m in mask.values())
    assert sum(int(m.sum()) for m in new.values()) == alive - n_to_prune(0.25, alive)
    for n in mask:
        assert new[n].dtype == torch.bool and new[n].shape == mask[n].shape
        assert not (new[n] & ~mask[n]).any()
        assert torch.equal(new[n], again[n])
        assert torch.equal(mask[n], before[n]) and torch.equal(weights[n], w_before[n])
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # the model is untouched


def test_saliency_without_a_context_says_what_is_missing():
    model = linear_net()
    weights, mask = weights_and_mask(model)
    with pytest.raises(ValueError, match="context"):
        prune("snip", weights, mask, fraction=0.2, seed=0, round=1)
