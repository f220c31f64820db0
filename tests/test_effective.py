"""Effective sparsity: disconnected weights count as pruned, checked by hand on tiny nets, against
a unit-graph reachability oracle on MLPs, and on torchvision ResNet18."""

import numpy as np
import pytest
import torch
from torch import nn

from ltray.masks import sparsity
from ltray.masks.effective import effective_mask, effective_sparsity


def mlp(*widths):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def dense(model):
    """All conv and linear weights kept (what the pruners mask)."""
    return {n: np.ones(p.shape, bool) for n, p in model.named_parameters() if p.ndim > 1}


def oracle(weights):
    """Effective masks of an MLP from boolean unit reachability; weights[l] is [out, in]."""
    forward = [np.ones(weights[0].shape[1], bool)]
    for w in weights:
        forward.append((w & forward[-1][None, :]).any(axis=1))
    backward = [np.ones(weights[-1].shape[0], bool)]
    for w in reversed(weights):
        backward.insert(0, (w & backward[0][:, None]).any(axis=0))
    return [w & backward[l + 1][:, None] & forward[l][None, :] for l, w in enumerate(weights)]


def test_unit_without_inputs_loses_its_outgoing_weights():
    model = mlp(4, 3, 2)
    mask = dense(model)
    mask["0.weight"][1, :] = False  # hidden unit 1 gets no input
    eff = effective_mask(model, mask, (4,))
    np.testing.assert_array_equal(eff["0.weight"], mask["0.weight"])
    expected = np.ones((2, 3), bool)
    expected[:, 1] = False
    np.testing.assert_array_equal(eff["2.weight"], expected)
    assert effective_sparsity(model, mask, (4,)) == pytest.approx(6 / 18)
    assert sparsity(mask) == pytest.approx(4 / 18)


def test_unit_without_outputs_loses_its_incoming_weights():
    model = mlp(4, 3, 2)
    mask = dense(model)
    mask["2.weight"][:, 0] = False  # hidden unit 0 feeds nothing
    eff = effective_mask(model, mask, (4,))
    expected = np.ones((3, 4), bool)
    expected[0, :] = False
    np.testing.assert_array_equal(eff["0.weight"], expected)
    np.testing.assert_array_equal(eff["2.weight"], mask["2.weight"])


def test_dense_mask_has_no_effective_sparsity():
    model = mlp(4, 3, 2)
    assert effective_sparsity(model, dense(model), (4,)) == 0.0
    net = conv_net()
    assert effective_sparsity(net, dense(net), (1, 10, 10)) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_random_masks_match_reachability_oracle(seed):
    rng = np.random.default_rng(seed)
    model = mlp(6, 5, 5, 4, 3)
    keep = [0.2, 0.35, 0.5][seed % 3]
    mask = {n: rng.random(p.shape) < keep for n, p in model.named_parameters() if n.endswith("weight")}
    eff = effective_mask(model, mask, (6,))
    for name, expected in zip(mask, oracle(list(mask.values()))):
        np.testing.assert_array_equal(eff[name], expected, err_msg=name)
        assert not (eff[name] & ~mask[name]).any()
    assert effective_sparsity(model, mask, (6,)) >= sparsity(mask)


def conv_net():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3),  # 10x10 -> 8x8
        nn.BatchNorm2d(2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),  # -> 4x4
        nn.Conv2d(2, 3, 3),  # -> 2x2
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),  # 12 features, channel-major
        nn.Linear(12, 2),
    )
    with torch.no_grad():  # a shifting batch norm must not fake a path
        net[1].bias.fill_(3.0)
        net[1].running_mean.fill_(-1.0)
    return net


def test_conv_channels_disconnect_both_ways():
    net = conv_net()
    mask = dense(net)
    mask["0.weight"][1] = False  # conv0 channel 1 produces nothing
    mask["8.weight"][:, 8:12] = False  # conv4 channel 2 reaches nothing
    eff = effective_mask(net, mask, (1, 10, 10))
    assert not eff["4.weight"][:, 1].any()  # reads the dead channel 1
    assert not eff["4.weight"][2].any()  # writes the unread channel 2
    assert eff["4.weight"][:2, 0].all()
    np.testing.assert_array_equal(eff["0.weight"], mask["0.weight"])
    np.testing.assert_array_equal(eff["8.weight"], mask["8.weight"])


def test_conv_taps_that_only_see_padding_are_disconnected():
    net = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Flatten(), nn.Linear(2, 1))  # on a 1x1 map
    eff = effective_mask(net, dense(net), (2, 1, 1))
    expected = np.zeros((2, 2, 3, 3), bool)
    expected[:, :, 1, 1] = True
    np.testing.assert_array_equal(eff["0.weight"], expected)


def test_model_is_untouched_and_tensors_and_partial_masks_work():
    net = conv_net().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    mask = {"4.weight": torch.zeros(3, 2, 3, 3, dtype=torch.bool)}
    mask["4.weight"][0, 0] = True
    eff = effective_mask(net, mask, (1, 10, 10))
    assert list(eff) == ["4.weight"]  # other layers are dense and not reported
    assert eff["4.weight"].sum() == 9
    assert net.training and isinstance(net[3], nn.MaxPool2d) and isinstance(net[1], nn.BatchNorm2d)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match="'nope.weight'"):
        effective_mask(net, {"nope.weight": np.ones(3, bool)}, (1, 10, 10))
    with pytest.raises(ValueError, match="'1.weight'.*normalisation"):
        effective_mask(net, {"1.weight": np.ones(2, bool)}, (1, 10, 10))
    with pytest.raises(ValueError, match="shape"):
        effective_mask(net, {"4.weight": np.ones(3, bool)}, (1, 10, 10))


def test_resnet18_residual_paths():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(num_classes=10)
    full = {n: np.ones(p.shape, bool) for n, p in model.named_parameters() if p.ndim > 1}
    shape = (3, 64, 64)  # at 32px layer4 sees 1x1 maps, where 8 of 9 taps only see padding
    assert effective_sparsity(model, full, shape) == 0.0

    mask = {n: m.copy() for n, m in full.items()}
    mask["layer1.0.conv1.weight"][:] = False  # the block's conv2 now has no input ...
    rng = np.random.default_rng(0)
    mask["layer3.1.conv2.weight"] = rng.random(mask["layer3.1.conv2.weight"].shape) < 0.05
    eff = effective_mask(model, mask, shape)
    assert not eff["layer1.0.conv2.weight"].any()
    assert eff["conv1.weight"].all() and eff["fc.weight"].all()  # ... but the skip keeps the rest alive
    assert eff["layer2.0.conv1.weight"].all()
    for name in mask:
        assert not (eff[name] & ~mask[name]).any(), name
    assert sparsity(eff) > sparsity(mask)


def test_max_pooling_does_not_hide_parallel_paths():
    # out = [w1*x0, w0*x0 + w1*x1, w0*x1] pooled by one 1x3 window: max pooling would send the
    # gradient to one position only and wrongly disconnect a tap; both taps are connected.
    conv = nn.Conv2d(1, 1, (1, 2), padding=(0, 1))
    net = nn.Sequential(conv, nn.MaxPool2d((1, 3)), nn.Flatten(), nn.Linear(1, 1))
    eff = effective_mask(net, dense(net), (1, 1, 2))
    assert eff["0.weight"].all()


def test_torch_io_round_trip():
    from ltray.masks import check_mask_matches
    from ltray.masks.torch_io import parameter_shapes, to_numpy_mask, to_torch_mask

    net = conv_net()
    rng = np.random.default_rng(0)
    mask = {"4.weight": rng.random((3, 2, 3, 3)) < 0.5, "0.weight": np.ones((2, 1, 3, 3), bool)}
    tensors = to_torch_mask(mask)
    assert list(tensors) == list(mask) and tensors["4.weight"].dtype == torch.bool
    back = to_numpy_mask(tensors)
    np.testing.assert_array_equal(back["4.weight"], mask["4.weight"])
    shapes = parameter_shapes(net, ["0.weight", "4.weight"])
    assert shapes == {"0.weight": (2, 1, 3, 3), "4.weight": (3, 2, 3, 3)}
    check_mask_matches(back, shapes, "x.ltmask")
    assert "8.bias" in parameter_shapes(net)
    with pytest.raises(ValueError, match="'zz'"):
        parameter_shapes(net, ["zz"])
