"""Effective sparsity (paper appendix C): a weight still in the mask but with no path from the
input to it, or from it to the output, through surviving weights counts as pruned.

Computed generically by one forward/backward pass of a reachability copy of the model; imports
torch, so it is not re-exported by ltray.masks.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ltray.masks.arrays import Mask, as_mask
from ltray.masks.metrics import sparsity

# |value| above this counts as "a path exists". Binarised activations and gradients are >= 1/(pool
# window area) when nonzero, far above float64 round-off, so the tolerance only absorbs GPU noise.
_TOL = 1e-9

_POOLS = {
    nn.MaxPool1d: nn.AvgPool1d,
    nn.MaxPool2d: nn.AvgPool2d,
    nn.MaxPool3d: nn.AvgPool3d,
}
_ADAPTIVE_POOLS = {
    nn.AdaptiveMaxPool1d: nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool2d: nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool3d: nn.AdaptiveAvgPool3d,
}
# Layers that shift or rescale values (a shift breaks "nonzero means a path"): dropped.
_TO_IDENTITY = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.modules.dropout._DropoutNd,
    nn.AlphaDropout,
    nn.Softmax,
    nn.LogSoftmax,
)
# Activations that are nonzero at 0 or can go negative: replaced by ReLU, which keeps zero at zero.
_TO_RELU = (nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.CELU, nn.SELU, nn.LeakyReLU, nn.PReLU,
            nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.ReLU6)


def effective_mask(model: nn.Module, mask: Mapping[str, object], input_shape: tuple[int, ...]) -> Mask:
    """`mask` minus the weights that are disconnected from the input or the output.

    `mask` maps parameter names of `model` to bool arrays or tensors; parameters not in it are
    treated as dense. `input_shape` is one example's shape without the batch dimension, e.g.
    (1, 28, 28). The model itself is not modified. Returns bool arrays in `mask`'s order.

    Method: a float64 eval-mode copy of the model gets weights 1.0 (kept) / 0.0 (pruned), zero
    biases, average instead of max pooling (max pooling backpropagates along one path only) and
    no normalisation or dropout, so every activation is >= 0 and is nonzero exactly when a path
    from the input reaches it. Every leaf module's output is binarised (forward: value != 0,
    backward: gradient != 0) so values neither overflow nor underflow in deep nets. An all-ones
    input is fed, the output summed and backpropagated: a kept weight is effective iff its
    gradient is nonzero (input side reached AND output side reachable).
    """
    masks = as_mask(mask)
    if not masks:
        return {}
    _check_names(masks, dict(model.named_parameters()))
    reach = _reachability_copy(model)
    params = dict(reach.named_parameters())
    for name in masks:
        if name not in params:
            raise ValueError(
                f"mask layer {name!r} belongs to a normalisation/activation layer, which effective sparsity "
                "drops; mask conv and linear weights only"
            )
    with torch.no_grad():
        for name, p in params.items():
            if name.rsplit(".", 1)[-1] == "bias":
                p.zero_()  # a bias feeds a unit whatever the input, so it would fake a path
            elif name in masks:
                p.copy_(torch.from_numpy(np.ascontiguousarray(masks[name])))
            else:
                p.fill_(1.0)  # layers not in the mask are dense
            p.requires_grad_(name in masks)
    device = next(iter(params.values())).device
    x = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    with torch.enable_grad():
        _sum_outputs(reach(x)).backward()
    out: Mask = {}
    for name, m in masks.items():
        grad = params[name].grad
        connected = np.zeros(m.shape, bool) if grad is None else (grad > _TOL).cpu().numpy()  # grads are >= 0
        out[name] = m & connected
    return out


def effective_sparsity(model: nn.Module, mask: Mapping[str, object], input_shape: tuple[int, ...]) -> float:
    """Fraction of the masked layers' weights that are pruned or disconnected."""
    return sparsity(effective_mask(model, mask, input_shape))


def _reachability_copy(model: nn.Module) -> nn.Module:
    """A float64 eval copy with max pooling, norms, dropout and odd activations swapped out."""
    # Fresh float64 parameters instead of copies of the trained values: every value is overwritten.
    memo = {
        id(p): nn.Parameter(torch.empty(p.shape, dtype=torch.float64, device=p.device), requires_grad=False)
        for p in model.parameters()
    }
    reach = copy.deepcopy(model, memo)
    replacements = []
    for parent_name, parent in reach.named_modules():
        for child_name, child in parent.named_children():
            new = _replacement(child, f"{parent_name}.{child_name}".lstrip("."))
            if new is not None:
                replacements.append((parent, child_name, new))
    for parent, child_name, new in replacements:
        setattr(parent, child_name, new)
    for module in reach.modules():
        if hasattr(module, "inplace"):
            module.inplace = False  # in-place ops on binarised outputs would confuse autograd
        if not list(module.children()):
            module.register_forward_hook(_binarise_hook)
    return reach.to(dtype=torch.float64).eval()


def _replacement(module: nn.Module, name: str) -> nn.Module | None:
    kind = type(module)
    if kind in _POOLS:
        if np.any(np.asarray(module.dilation) != 1) or module.return_indices:
            raise ValueError(f"effective sparsity: cannot replace dilated/indexed max pooling {name!r}")
        return _POOLS[kind](module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode)
    if kind in _ADAPTIVE_POOLS:
        if module.return_indices:
            raise ValueError(f"effective sparsity: cannot replace indexed max pooling {name!r}")
        return _ADAPTIVE_POOLS[kind](module.output_size)
    if isinstance(module, _TO_IDENTITY):
        return nn.Identity()
    if isinstance(module, _TO_RELU):
        return nn.ReLU()
    return None


class _Binarise(torch.autograd.Function):
    """Forward: 1 where a value is nonzero; backward: 1 where a gradient is nonzero."""

    @staticmethod
    def forward(ctx, x):
        return (x.abs() > _TOL).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return (grad.abs() > _TOL).to(grad.dtype)


def _binarise_hook(module, inputs, output):
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        return _Binarise.apply(output)
    return None


def _sum_outputs(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output.sum()
    if isinstance(output, (tuple, list)):
        return sum(_sum_outputs(o) for o in output)
    if isinstance(output, Mapping):
        return sum(_sum_outputs(o) for o in output.values())
    raise TypeError(f"effective sparsity: cannot sum a model output of type {type(output).__name__}")


def _check_names(masks: Mask, params: dict[str, torch.Tensor]) -> None:
    for name, m in masks.items():
        if name not in params:
            raise ValueError(f"mask layer {name!r} is not a parameter of the model; known: {', '.join(params)}")
        if tuple(m.shape) != tuple(params[name].shape):
            raise ValueError(f"mask layer {name!r} has shape {m.shape}, parameter has {tuple(params[name].shape)}")
