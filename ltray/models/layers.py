"""Which parameters of a network are prunable (conv and linear weights) and which layer is
the output layer; names are the model's own parameter names, as in its state_dict."""

from __future__ import annotations

from torch import nn

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


def output_layer_name(model: nn.Module) -> str:
    """Module name of the last nn.Linear in registration order (e.g. 'fc', 'classifier.6')."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear output layer")
    return names[-1]


def prunable_weights(model: nn.Module, include_output: bool = True) -> list[str]:
    """Parameter names of conv/linear weights in model order; no biases, no batch-norm."""
    output = output_layer_name(model)
    return [
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, PRUNABLE_TYPES) and (include_output or name != output)
    ]
