"""Architectures: seeded construction identical across tasks, shapes, names, size limits."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from ltray.errors import ConfigError
from ltray.models import MODELS, build_model, get_arch, mask_layers, output_layer_name, prunable_weights

SMALL_SIZE = {"lenet": 20, "lenet_300_100": 16, "alexnet": 64, "vgg11": 32, "resnet18": 32}
OUTPUT = {"lenet": "fc3", "lenet_300_100": "fc3", "alexnet": "classifier.6", "vgg11": "classifier.6", "resnet18": "fc"}


@functools.lru_cache(maxsize=None)
def cached(arch: str, num_classes: int, seed: int) -> nn.Module:
    """Builds are slow for VGG/AlexNet (seconds); tests only read these models."""
    return build_model(arch, num_classes, seed)


def _forward(model: nn.Module, arch: str, size: int) -> torch.Tensor:
    x = torch.randn(2, get_arch(arch).in_channels, size, size)
    with torch.no_grad():
        return model.eval()(x)


def test_registry_covers_paper_architectures():
    assert set(MODELS) == {"lenet", "lenet_300_100", "alexnet", "vgg11", "resnet18"}
    for name, spec in MODELS.items():
        assert spec.name == name and spec.min_image_size <= spec.image_size


def test_unknown_arch_lists_known_ones():
    with pytest.raises(ConfigError, match="resnet18"):
        get_arch("resnet50")
    with pytest.raises(ConfigError, match="lenet"):
        build_model("nope", 10, 0)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_forward_shape_at_small_size(arch):
    if arch == "vgg11":  # torchvision bodies do not depend on image_size; spare a slow VGG build
        model = cached(arch, 10, 0)
    else:
        model = build_model(arch, 10, 0, image_size=SMALL_SIZE[arch])
    assert _forward(model, arch, SMALL_SIZE[arch]).shape == (2, 10)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_forward_shape_at_default_size(arch):
    model = cached(arch, 10, 0)
    assert _forward(model, arch, get_arch(arch).image_size).shape == (2, 10)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_same_seed_same_body_whatever_the_class_count(arch):
    a, b = cached(arch, 10, 0), build_model(arch, 100, 0)
    out = OUTPUT[arch]
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)  # torchvision's parameter names survive the output swap
    for k in sa:
        if k.startswith(out + "."):
            assert sa[k].shape[0] == 10 and sb[k].shape[0] == 100
        else:
            assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("arch", ["lenet", "resnet18"])
def test_same_seed_same_output_layer_when_class_counts_match(arch):
    a, b = cached(arch, 10, 0), build_model(arch, 10, 0)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


@pytest.mark.parametrize("arch", ["lenet", "lenet_300_100", "resnet18"])
def test_different_seeds_differ_in_body_and_output(arch):
    a, b = cached(arch, 10, 0), cached(arch, 10, 1)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    first = prunable_weights(a)[0]
    out = OUTPUT[arch] + ".weight"
    assert not torch.equal(pa[first], pb[first])
    assert not torch.equal(pa[out], pb[out])


def test_global_rng_untouched():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    build_model("lenet", 10, 5)
    assert torch.equal(torch.get_rng_state(), state)


def test_build_ignores_global_rng_state():
    torch.manual_seed(1)
    a = build_model("lenet", 10, 0)
    torch.manual_seed(2)
    torch.rand(100)
    b = build_model("lenet", 10, 0)
    for va, vb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(va, vb)


def test_vgg_output_layer_uses_vgg_init():
    fc = cached("vgg11", 10, 0).classifier[6]
    assert isinstance(fc, nn.Linear) and fc.weight.shape == (10, 4096)
    assert torch.all(fc.bias == 0)
    assert 0.008 < fc.weight.std().item() < 0.012


def test_default_linear_init_for_resnet_output():
    fc = cached("resnet18", 10, 0).fc
    bound = 1 / fc.in_features**0.5  # nn.Linear default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert fc.weight.abs().max() <= bound and fc.bias.abs().max() <= bound
    assert fc.bias.abs().max() > 0


def test_lenet_shapes_match_the_paper():
    model = cached("lenet", 10, 0)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters() if k.endswith("weight")}
    assert shapes == {
        "conv1.weight": (6, 1, 3, 3),
        "conv2.weight": (16, 6, 3, 3),
        "fc1.weight": (120, 400),
        "fc2.weight": (84, 120),
        "fc3.weight": (10, 84),
    }
    mlp = {k: tuple(v.shape) for k, v in cached("lenet_300_100", 10, 0).named_parameters()}
    assert mlp["fc1.weight"] == (300, 784) and mlp["fc2.weight"] == (100, 300) and mlp["fc3.weight"] == (10, 100)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_output_layer_name(arch):
    assert output_layer_name(cached(arch, 10, 0)) == OUTPUT[arch]


def test_prunable_weights_conv_and_linear_only():
    names = prunable_weights(cached("lenet", 10, 0))
    assert names == ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight"]
    assert prunable_weights(cached("lenet", 10, 0), include_output=False) == names[:-1]
    resnet = cached("resnet18", 10, 0)
    layout = mask_layers(resnet)
    assert len(layout) == 21 and layout[0] == "conv1.weight" and layout[-1] == "fc.weight"
    assert "layer2.0.downsample.0.weight" in layout
    assert not any("bn" in n or n.endswith("bias") for n in layout)
    res = prunable_weights(resnet)  # the paper's rule: the three shortcut convs stay dense
    assert res == [n for n in layout if "downsample" not in n] and len(res) == 18
    assert prunable_weights(resnet, include_shortcuts=True) == layout
    assert prunable_weights(cached("vgg11", 10, 0))[-1] == "classifier.6.weight"


@pytest.mark.parametrize("arch,too_small", [("alexnet", 62), ("vgg11", 31), ("lenet", 9)])
def test_below_min_image_size_is_a_config_error(arch, too_small):
    assert get_arch(arch).min_image_size == too_small + 1
    with pytest.raises(ConfigError, match=str(too_small)):
        build_model(arch, 10, 0, image_size=too_small)


@pytest.mark.parametrize("arch", ["alexnet", "lenet", "resnet18"])  # vgg11: min == SMALL_SIZE
def test_min_image_size_really_runs(arch):
    size = get_arch(arch).min_image_size
    model = build_model(arch, 3, 0, image_size=size)
    assert _forward(model, arch, size).shape == (2, 3)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_skeleton_has_the_built_models_names_and_shapes(arch):
    from ltray.models import build_skeleton

    built, skeleton = cached(arch, 10, 0), build_skeleton(arch, 10)
    shapes = lambda m: [(k, tuple(v.shape)) for k, v in m.state_dict().items()]  # noqa: E731
    assert shapes(skeleton) == shapes(built)
    assert all(p.is_meta for p in skeleton.parameters())
