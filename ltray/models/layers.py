"""Which parameters of a network are masked and which of them are pruned.

The mask of an architecture always covers every conv and linear weight (`mask_layers`), so masks
of one architecture share one layout whatever the pruning options; layers that are not pruned
stay all-True in it. What is pruned follows the paper (Paganini & Forde 2020, Table 1): every
conv and linear weight, the first conv and the output layer included, except the 1x1 projection
convolutions on ResNet shortcuts. Biases and batch-norm parameters are never masked.
"""

from __future__ import annotations

from torch import nn

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)
# torchvision's ResNets name the projection on a residual shortcut `<block>.downsample` (a 1x1
# conv + batch-norm). The paper's Table 1 counts for ResNet18 hold only with these dense.
SHORTCUT_MODULE = "downsample"


def output_layer_name(model: nn.Module) -> str:
    """Module name of the last nn.Linear in registration order (e.g. 'fc', 'classifier.6')."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear output layer")
    return names[-1]


def mask_layers(model: nn.Module) -> list[str]:
    """Parameter names of every conv/linear weight in model order: the layout of a mask."""
    return [f"{name}.weight" for name, module in model.named_modules() if isinstance(module, PRUNABLE_TYPES)]


def shortcut_layers(model: nn.Module) -> list[str]:
    """Weights of the convolutions on residual shortcuts (ResNet's downsample), in model order."""
    return [
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d) and SHORTCUT_MODULE in name.split(".")
    ]


def prunable_weights(model: nn.Module, include_output: bool = True, include_shortcuts: bool = False,
                     dense: tuple[str, ...] = ()) -> list[str]:
    """The mask's layers that pruning may shrink, in model order.

    Default: the paper's rule (output layer pruned, shortcut convolutions dense). `dense` names more
    layers to leave alone (an architecture plugin's `dense_layers`). Every name is also in
    `mask_layers(model)`; the ones left out stay dense.
    """
    excluded = set(dense) if include_shortcuts else set(shortcut_layers(model)) | set(dense)
    if not include_output:
        excluded.add(f"{output_layer_name(model)}.weight")
    return [n for n in mask_layers(model) if n not in excluded]
