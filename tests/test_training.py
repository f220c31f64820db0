"""Training core on real digits (bundled mnist_subset, LeNet): learning, the pruning schedule,
bit-identical reruns and resumes, pruned weights held at zero by every optimizer setting, ticket
training, resize per batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ltray.training.loop as loop_module
import ltray.training.measure as ticket_module
from ltray.config import DataConfig, PruneConfig, RotateView, TaskSpec, TicketConfig, TrainConfig, TrajectoryConfig
from ltray.data import clear_caches, resize
from ltray.data.augment import augment
from ltray.errors import ExperimentError, MaskFileError
from ltray.masks import count_kept, load_mask, save_mask, sparsity, total_weights
from ltray.models import build_model, mask_layers, output_layer_name, prunable_weights, shortcut_layers
from ltray.training import TrajectoryState, run_trajectory, train_ticket
from ltray.training.loop import MaskApplier, MaskedSGD, train_round
from ltray.training.setup import prepare, seeded_generator
from ltray.training.ticket import fit_output_layer
from ltray.experiment.layout import round_mask_name as mask_filename

TASK = TaskSpec(dataset="mnist_subset")
SMALL = DataConfig(max_train_samples=200)  # crop and flip on: augmentation is part of what must replay
QUICK = TrainConfig(epochs=2, lr=0.05, momentum=0.9)


class Interrupted(Exception):
    pass


@pytest.fixture(autouse=True)
def one_thread():
    """Bit-identical CPU results need a fixed thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trajectory(rounds=3, train=QUICK, data=SMALL, task=TASK, name="mnist_subset", seed=0,
               technique="global_unstructured", **prune) -> TrajectoryConfig:
    return TrajectoryConfig(task=name, task_spec=task, arch="lenet", seed=seed, rounds=rounds, technique=technique,
                            train=train, data=data, prune=PruneConfig(**prune))


def run(cfg, mask_dir, **kw):
    """run_trajectory on the CPU, also returning the (result, state) pairs its callback saw."""
    seen = []
    results = run_trajectory(cfg, mask_dir, device="cpu", on_round=lambda r, s: seen.append((r, s)), **kw)
    assert [r for r, _ in seen] == results
    return results, [s for _, s in seen]


def metrics(result) -> dict:
    """Everything a rerun must reproduce exactly (not the wall time or where the mask went)."""
    return {k: v for k, v in result.as_dict().items() if k not in ("seconds", "mask_path")}


def masks_equal(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def weights_equal(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def round_masks(mask_dir, rounds) -> list[dict]:
    return [load_mask(mask_dir / mask_filename(r)) for r in range(rounds)]


# ---- a real trajectory -------------------------------------------------------------------------


def test_lenet_trajectory_learns_and_prunes_20_percent_of_survivors_per_round(tmp_path):
    cfg = trajectory(rounds=3, train=TrainConfig(epochs=3, lr=0.05, momentum=0.9),
                     data=DataConfig(max_train_samples=1000, crop=False, flip=False))
    results, states = run(cfg, tmp_path)
    assert [r.round for r in results] == [0, 1, 2]
    for r in results:
        assert r.val_acc > 0.5 and r.test_acc > 0.5, r  # chance is 0.1
    total = total_weights(states[0].mask)
    kept = [total]
    for _ in range(2):
        kept.append(kept[-1] - round(0.2 * kept[-1]))  # torch.nn.utils.prune's arithmetic
    files = round_masks(tmp_path, 3)
    for r, result in enumerate(results):
        assert count_kept(files[r]) == kept[r] and result.sparsity == pytest.approx(1 - kept[r] / total, abs=0)
        assert result.sparsity == pytest.approx([0, 0.2, 0.36][r], abs=1e-4)
        assert result.effective_sparsity >= result.sparsity
        assert result.mask_path == str(tmp_path / mask_filename(r))
    for r in range(2):  # the callback's state holds the next round's mask, as written to its file
        assert states[r].next_round == r + 1 and masks_equal(states[r].mask, files[r + 1])
    assert states[2].next_round == 3 and masks_equal(states[2].mask, files[2])  # no pruning after the last round
    assert set(files[0]) == set(prunable_weights(build_model("lenet", 10, 0)))


def test_identical_runs_are_bit_identical(tmp_path):
    cfg = trajectory(rounds=3, train=QUICK.model_copy(update={"rewind": "none"}))
    first, first_states = run(cfg, tmp_path / "a")
    clear_caches()  # the second run prepares its data from scratch
    second, second_states = run(cfg, tmp_path / "b")
    assert [metrics(r) for r in first] == [metrics(r) for r in second]
    for a, b in zip(round_masks(tmp_path / "a", 3), round_masks(tmp_path / "b", 3)):
        assert masks_equal(a, b)
    for a, b in zip(first_states, second_states):
        assert masks_equal(a.mask, b.mask) and weights_equal(a.trained_weights, b.trained_weights)
    # fine-tuning keeps the trained weights: those the round's mask pruned are exactly zero
    for r, (state, mask) in enumerate(zip(first_states, round_masks(tmp_path / "a", 3))):
        for name, m in mask.items():
            assert torch.all(state.trained_weights[name][torch.from_numpy(~m)] == 0), (r, name)
    assert first[1].train_loss != first[2].train_loss  # the rounds really differ


@pytest.mark.parametrize("rewind", ["init", 1, "none"])
def test_resume_from_a_saved_state_equals_an_uninterrupted_run(tmp_path, rewind):
    cfg = trajectory(rounds=4, train=QUICK.model_copy(update={"rewind": rewind}))
    straight, _ = run(cfg, tmp_path / "straight")

    path = tmp_path / "state.ltstate"

    def crash_after_round_1(result, state):
        if result.round == 1:
            state.save(path)
            raise Interrupted

    with pytest.raises(Interrupted):
        run_trajectory(cfg, tmp_path / "resumed", device="cpu", on_round=crash_after_round_1)
    clear_caches()
    state = TrajectoryState.load(path)
    assert state.next_round == 2 and state.config_key == cfg.key()
    assert (state.rewind_weights is not None) == isinstance(rewind, int)
    assert (state.trained_weights is not None) == (rewind == "none")
    resumed, _ = run(cfg, tmp_path / "resumed", state=state)
    assert [r.round for r in resumed] == [2, 3]
    assert [metrics(r) for r in resumed] == [metrics(r) for r in straight[2:]]
    for r in (2, 3):
        a = load_mask(tmp_path / "straight" / mask_filename(r))
        assert masks_equal(a, load_mask(tmp_path / "resumed" / mask_filename(r)))


def test_late_rewinding_keeps_the_weights_after_epoch_k_of_round_0(tmp_path):
    _, states = run(trajectory(rounds=2, train=QUICK.model_copy(update={"rewind": 1})), tmp_path / "late")
    one_epoch = QUICK.model_copy(update={"epochs": 1, "rewind": "none"})
    _, short = run(trajectory(rounds=1, train=one_epoch), tmp_path / "short")
    # the same round-0 stream: 1 epoch of a 2-epoch round == a whole 1-epoch round
    assert weights_equal(states[0].rewind_weights, short[0].trained_weights)
    assert states[1].rewind_weights is states[0].rewind_weights  # kept, never re-captured


def test_a_state_from_another_config_is_refused(tmp_path):
    _, states = run(trajectory(rounds=2, train=QUICK.model_copy(update={"epochs": 1})), tmp_path / "a")
    with pytest.raises(ValueError, match="resume state belongs to config"):
        run_trajectory(trajectory(rounds=2), tmp_path / "b", device="cpu", state=states[0])


# ---- masks -----------------------------------------------------------------------------------------


def random_mask(model, keep=0.5, seed=0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    return {n: torch.rand(params[n].shape, generator=gen) < keep for n in prunable_weights(model)}


@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.0, 1e-3), (0.9, 1e-3)])
def test_pruned_weights_stay_exactly_zero(tmp_path, momentum, weight_decay):
    setup = prepare("mnist_subset", TASK, "lenet", 0, SMALL, tmp_path, False, torch.device("cpu"))
    model = setup.model
    model.load_state_dict(setup.initial)
    mask = random_mask(model)
    params = dict(model.named_parameters())
    assert all(bool((params[n][~m] != 0).all()) for n, m in mask.items())  # nothing is zero by chance

    def pruned_are_zero(epoch=None):
        for n, m in mask.items():
            assert torch.all(params[n][~m] == 0), (epoch, n)

    train = TrainConfig(epochs=2, lr=0.05, momentum=momentum, weight_decay=weight_decay)
    loss = train_round(model, setup.task, MaskApplier(model, mask), train, SMALL,
                       seeded_generator(torch.device("cpu"), 0), on_epoch_end=pruned_are_zero)
    pruned_are_zero()
    assert np.isfinite(loss)
    model.zero_grad(set_to_none=True)  # the loss does pull on pruned weights: only the mask holds them
    torch.nn.functional.cross_entropy(model(setup.task.train_x[:64]), setup.task.train_y[:64]).backward()
    for n, m in mask.items():
        assert bool((params[n].grad[~m] != 0).any()), n
        assert not torch.equal(params[n][m], setup.initial[n][m]), n  # survivors trained


@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 1e-3)])
def test_masked_sgd_steps_like_torch_sgd_followed_by_the_mask(momentum, weight_decay):
    torch.manual_seed(0)
    models = [build_model("lenet", 10, 0) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    mask = random_mask(models[0], keep=0.7)
    train = TrainConfig(lr=0.05, momentum=momentum, weight_decay=weight_decay)
    ours = MaskedSGD(models[0], MaskApplier(models[0], mask), train)
    ours.apply_mask()
    reference_mask = MaskApplier(models[1], mask)
    reference_mask()
    reference = torch.optim.SGD(models[1].parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    for _ in range(3):
        for model, zero_grad in ((models[0], ours.zero_grad), (models[1], reference.zero_grad)):
            zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
        ours.step()
        reference.step()
        reference_mask()
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)  # the fused step rounds once less
        if name in mask:
            assert torch.all(a[~mask[name]] == 0), name


def test_the_round_loss_is_the_last_epochs_mean_weighted_by_batch_size(tmp_path, monkeypatch):
    setup = prepare("mnist_subset", TASK, "lenet", 0, SMALL, tmp_path, False, torch.device("cpu"))
    seen = []

    class RecordingLoss(torch.nn.CrossEntropyLoss):
        def forward(self, logits, target):
            loss = super().forward(logits, target)
            seen.append((float(loss.detach()), len(target)))
            return loss

    monkeypatch.setattr(loop_module.nn, "CrossEntropyLoss", RecordingLoss)
    train = TrainConfig(epochs=2, batch_size=64)
    loss = train_round(setup.model, setup.task, MaskApplier(setup.model, {}), train, SMALL,
                       seeded_generator(torch.device("cpu"), 0))
    assert [size for _, size in seen] == [64, 64, 64, 8] * 2  # 200 samples
    last = seen[4:]
    assert loss == pytest.approx(sum(v * size for v, size in last) / 200, rel=1e-6)
    assert loss != pytest.approx(sum(v * size for v, size in seen[:4]) / 200, rel=1e-6)


@pytest.mark.parametrize("technique", ["global_unstructured", "l1_structured"])
def test_masks_only_shrink_and_the_output_layer_can_stay_dense(tmp_path, technique):
    cfg = trajectory(rounds=4, train=QUICK.model_copy(update={"epochs": 1}), technique=technique,
                     prune_output=False)
    results, _ = run(cfg, tmp_path)
    output = f"{output_layer_name(build_model('lenet', 10, 0))}.weight"
    masks = round_masks(tmp_path, 4)
    for before, after in zip(masks, masks[1:]):
        assert count_kept(after) < count_kept(before)
        for name in before:
            assert not np.any(after[name] & ~before[name]), name  # nothing revived
    for m in masks:
        assert output in m and m[output].all()
    assert not masks[-1]["fc1.weight"].all() and results[-1].sparsity > 0


@pytest.mark.parametrize("prune_shortcuts", [False, True])
def test_resnet18_shortcuts_stay_dense_unless_asked(tmp_path, prune_shortcuts):
    """The paper's rule by default: the downsample convs stay in the mask, all True; the option
    prunes them with the rest. Either way the round-1 mask removes round(0.2 * prunable)."""
    cfg = TrajectoryConfig(task="digits", task_spec=TASK, arch="resnet18", seed=0, rounds=2,
                           train=TrainConfig(epochs=1), data=DataConfig(max_train_samples=64, image_size=8),
                           prune=PruneConfig(prune_shortcuts=prune_shortcuts))
    run(cfg, tmp_path)
    model = build_model("resnet18", 10, 0, image_size=8)
    shortcuts = shortcut_layers(model)
    first, pruned = round_masks(tmp_path, 2)
    assert list(first) == list(pruned) == mask_layers(model)  # one layout whatever the option
    assert all(first[n].all() for n in first)
    prunable = sum(first[n].size for n in prunable_weights(model, include_shortcuts=prune_shortcuts))
    assert total_weights(pruned) - count_kept(pruned) == round(0.2 * prunable)
    assert all(pruned[n].all() for n in shortcuts) != prune_shortcuts


def test_random_pruning_draws_the_same_mask_on_every_task(tmp_path):
    rotated = TaskSpec(dataset="mnist_subset", views=(RotateView(rotate=90),))
    train = QUICK.model_copy(update={"epochs": 1})
    plain, _ = run(trajectory(train=train, technique="random_unstructured"), tmp_path / "plain")
    turned, _ = run(trajectory(train=train, task=rotated, name="rot90", technique="random_unstructured"),
                    tmp_path / "rot")
    assert plain[0].train_loss != turned[0].train_loss  # different tasks, different weights
    for a, b in zip(round_masks(tmp_path / "plain", 3), round_masks(tmp_path / "rot", 3)):
        assert masks_equal(a, b)
    run(trajectory(rounds=2, train=train, seed=1, technique="random_unstructured"), tmp_path / "other")
    assert not masks_equal(load_mask(tmp_path / "other" / mask_filename(1)),
                           load_mask(tmp_path / "plain" / mask_filename(1)))


# ---- per-batch resize ----------------------------------------------------------------------------


class Recorder(torch.nn.Module):
    """Wraps a model and keeps the inputs of its forward calls."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.inner(x)


def test_augmentation_runs_at_native_side_then_batches_are_resized(tmp_path):
    data = SMALL.model_copy(update={"image_size": 40})
    setup = prepare("mnist_subset", TASK, "lenet", 0, data, tmp_path, False, torch.device("cpu"))
    assert setup.task.train_x.shape[-1] == 28 and setup.task.image_size == 40
    model = Recorder(setup.model)
    train = TrainConfig(epochs=1, batch_size=64)
    train_round(model, setup.task, MaskApplier(model, {}), train, data, seeded_generator(torch.device("cpu"), 3))
    gen = seeded_generator(torch.device("cpu"), 3)  # replay the draws: batch order, then crop/flip per chunk
    idx = torch.randperm(len(setup.task.train_y), generator=gen)  # 200 samples: one chunk of 4 batches
    native = augment(setup.task.train_x[idx], gen, crop_padding=4, flip=True, fill=setup.task.pad_value)
    for batch, seen in zip(native.split(64), model.seen, strict=True):
        assert torch.equal(seen, resize(batch, 40))  # padding 4 is in native (28 px) pixels
    assert len(model.seen) == 4  # 200 samples in batches of 64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs only exist with a GPU")
def test_a_round_syncs_with_the_host_once_not_per_step(tmp_path):
    import warnings

    data = SMALL.model_copy(update={"image_size": 40})  # crop, flip and resize on every step
    setup = prepare("mnist_subset", TASK, "lenet", 0, data, tmp_path, False, torch.device("cuda"))
    setup.model.load_state_dict(setup.initial)
    apply_mask = MaskApplier(setup.model, random_mask(setup.model))
    gen = seeded_generator(torch.device("cuda"), 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_round(setup.model, setup.task, apply_mask, QUICK, data, gen)  # 2 epochs x 7 steps
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 2, [str(w.message) for w in syncs]  # the final loss read, not one per step


def test_a_trajectory_and_a_ticket_run_at_a_larger_input_side(tmp_path):
    data = SMALL.model_copy(update={"image_size": 36})  # LeNet's fc1 only fits 36 px inputs
    train = QUICK.model_copy(update={"epochs": 1})
    results, states = run(trajectory(rounds=2, train=train, data=data), tmp_path / "traj")
    assert all(0 <= r.val_acc <= 1 for r in results) and states[0].mask["fc1.weight"].shape[1] == 16 * 7 * 7
    cfg = TicketConfig(task="mnist_subset", task_spec=TASK, arch="lenet", seed=0, train=train, data=data,
                       mask_path=tmp_path / "traj" / mask_filename(1))
    assert 0 <= train_ticket(cfg, device="cpu").test_acc <= 1


# ---- tickets ---------------------------------------------------------------------------------------


def ticket(mask_path, train=QUICK, **kw) -> TicketConfig:
    return TicketConfig(task="mnist_subset", task_spec=TASK, arch="lenet", seed=0, train=train, data=SMALL,
                        mask_path=mask_path, **kw)


def lenet_mask(num_classes=10, keep=0.5) -> dict[str, np.ndarray]:
    model = build_model("lenet", num_classes, 0)
    return {n: m.numpy() for n, m in random_mask(model, keep).items()}


def test_a_dense_ticket_is_round_0_of_a_trajectory(tmp_path):
    path = tmp_path / "dense.ltmask"
    save_mask(path, {k: np.ones_like(v) for k, v in lenet_mask().items()})
    got = train_ticket(ticket(path), device="cpu")
    [round0], _ = run(trajectory(rounds=1), tmp_path / "traj")
    assert metrics(got) == metrics(round0) and got.mask_path == str(path)  # initial weights, same recipe


def test_a_ticket_trains_its_mask_and_keeps_pruned_weights_at_zero(tmp_path, monkeypatch):
    mask = lenet_mask()
    path, out = tmp_path / "in.ltmask", tmp_path / "out" / "ticket.ltmask"
    save_mask(path, mask)
    trained = {}
    real = ticket_module.evaluate_task

    def spy(model, task):
        trained.update({n: p.detach().clone() for n, p in model.named_parameters()})
        return real(model, task)

    monkeypatch.setattr(ticket_module, "evaluate_task", spy)
    result = train_ticket(ticket(path), device="cpu", mask_out=out, record_path="masks/t.ltmask")
    assert result.round == 0 and result.sparsity == sparsity(mask) and result.mask_path == "masks/t.ltmask"
    assert masks_equal(load_mask(out), mask) and 0 <= result.val_acc <= 1
    initial = build_model("lenet", 10, 0).state_dict()
    for n, m in mask.items():
        assert torch.all(trained[n][torch.from_numpy(~m)] == 0), n
        assert not torch.equal(trained[n][torch.from_numpy(m)], initial[n][torch.from_numpy(m)]), n


def test_output_rules_for_a_mask_with_another_class_count(tmp_path):
    five = lenet_mask(num_classes=5)  # a source task with 5 classes; the target has 10
    path = tmp_path / "five.ltmask"
    save_mask(path, five)
    train = QUICK.model_copy(update={"epochs": 1})
    with pytest.raises(MaskFileError, match=rf"{path}.*fc3.weight.*\(5, 84\).*\(10, 84\)"):
        train_ticket(ticket(path, train), device="cpu")
    for rule in ("dense", "columns"):
        out = tmp_path / f"{rule}.ltmask"
        train_ticket(ticket(path, train, output_rule=rule), device="cpu", mask_out=out)
        got = load_mask(out)
        assert got["fc3.weight"].shape == (10, 84)
        assert all(np.array_equal(got[n], five[n]) for n in five if n != "fc3.weight")
        if rule == "dense":
            assert got["fc3.weight"].all()
        else:
            assert np.array_equal(got["fc3.weight"], np.tile(five["fc3.weight"].any(axis=0), (10, 1)))


def test_fit_output_layer_rules():
    source = {"body.weight": np.array([[True, False]]),
              "out.weight": np.array([[True, False, False], [False, False, True]])}
    shapes = {"body.weight": (1, 2), "out.weight": (4, 3)}
    assert fit_output_layer(source, {**shapes, "out.weight": (2, 3)}, "out", "error", "m") is source  # fits
    with pytest.raises(MaskFileError, match="m: output layer out.weight.*output_rule"):
        fit_output_layer(source, shapes, "out", "error", "m")
    dense = fit_output_layer(source, shapes, "out", "dense", "m")
    assert dense["out.weight"].shape == (4, 3) and dense["out.weight"].all()
    assert dense["body.weight"] is source["body.weight"] and source["out.weight"].shape == (2, 3)  # not mutated
    columns = fit_output_layer(source, shapes, "out", "columns", "m")["out.weight"]
    assert columns.tolist() == [[True, False, True]] * 4  # a column survives if any source class kept it
    with pytest.raises(MaskFileError, match="out.weight"):  # another input width cannot be adapted
        fit_output_layer(source, {**shapes, "out.weight": (4, 5)}, "out", "dense", "m")


# ---- resume state ------------------------------------------------------------------------------------


def test_state_round_trips_and_corruption_is_an_experiment_error(tmp_path):
    model = build_model("lenet", 10, 0)
    state = TrajectoryState(next_round=3, mask=lenet_mask(), rewind_weights=model.state_dict(),
                            trained_weights=None, config_key="abc")
    path = tmp_path / "s.ltstate"
    state.save(path)
    back = TrajectoryState.load(path)
    assert back.next_round == 3 and back.config_key == "abc" and back.trained_weights is None
    assert masks_equal(back.mask, state.mask) and all(m.dtype == bool for m in back.mask.values())
    assert weights_equal(back.rewind_weights, state.rewind_weights)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ExperimentError, match=rf"{path}.*corrupt"):
        TrajectoryState.load(path)
    path.write_bytes(state.to_bytes()[:100])
    with pytest.raises(ExperimentError, match="corrupt"):
        TrajectoryState.load(path)
    with pytest.raises(ExperimentError, match="cannot read"):
        TrajectoryState.load(tmp_path / "missing.ltstate")
