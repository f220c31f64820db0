"""User code named in a sweep file: import paths and entry points resolve behind the registries,
built-in names win, and every broken plugin fails `ltray sweep` before anything is written, with
one line naming the sweep key, the import path and what is wrong (exit 2; its traceback with -v)."""

from __future__ import annotations

import importlib
import itertools
from pathlib import Path

import pytest
import yaml

from ltray.data import get_dataset
from ltray.experiment.ids import GroupId, bespoke_trial_id
from ltray.models import MODELS, get_arch
from ltray.errors import ConfigError
from ltray.plugins import PluginError
from ltray.pruning import get_technique
from ltray.sweep.__main__ import main as sweep_main
from tests.plugin_helpers import make_wheel, pip_install_target, write_plugin

_COUNTER = itertools.count()


@pytest.fixture
def no_ray(monkeypatch):
    """Starting Ray fails the test: every check here must happen before it."""
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for a bad plugin")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Write a plugin module (good, plus `extra` code) under a fresh name; returns that name."""
    def write(extra: str = "") -> str:
        name = f"ltray_test_plugin_{next(_COUNTER)}"
        write_plugin(tmp_path / "plugins", name, extra)
        importlib.invalidate_caches()
        return name

    (tmp_path / "plugins").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    return write


def sweep_doc(tmp_path: Path, module: str, **over) -> dict:
    doc = {
        "name": "plug",
        "storage": str(tmp_path / "store"),
        "tasks": {"mine": {"dataset": f"{module}:ds"}},
        "grid": {"tasks": ["mine"], "archs": [f"{module}:arch"], "techniques": [f"{module}:tech"], "seeds": [0]},
        "rounds": 2,
        "train": {"epochs": 1},
    }
    for key, value in over.items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) and key != "tasks" else value
    return doc


def run(tmp_path: Path, doc: dict, *flags: str) -> tuple[int, Path]:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    return sweep_main([str(path), *flags]), path


def test_import_paths_resolve_to_the_three_contracts(plugin):
    module = plugin()
    arch, ds, tech = get_arch(f"{module}:arch"), get_dataset(f"{module}:ds"), get_technique(f"{module}:tech")
    assert (arch.in_channels, arch.image_size, arch.name) == (1, 8, f"{module}:arch")
    assert (ds.num_classes(), ds.channels, ds.side) == (3, 1, 8)
    assert tech.name == f"{module}:tech" and callable(tech.compute)


def test_a_good_plugin_sweep_passes_the_checks_and_names_the_plugin(tmp_path, plugin, capsys, no_ray):
    module = plugin()
    code, _ = run(tmp_path, sweep_doc(tmp_path, module), "--dry-run")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{module}:arch: 1 trajectories" in out
    assert not (tmp_path / "store").exists()


def test_trial_ids_name_the_plugin_by_its_import_path():
    cfg_free = bespoke_trial_id("mine", "pkg.models:resnet20", "pkg.prune:snip2", 0, _Empty())
    assert cfg_free.startswith("bespoke-mine-pkg.models.resnet20-pkg.prune.snip2-s0-")
    gid = GroupId("pair", "pkg.models:resnet20", 1, "snip", 2)
    assert str(gid) == "pair-pkg.models.resnet20-s1-snip-r2"
    assert GroupId.parse(str(gid)).recipe == gid.recipe


class _Empty:
    def model_dump(self, **kw):
        return {}


BAD = {
    # case: (code appended to the plugin, sweep edits as a function of the module name, key, fragment)
    "no module": ("", lambda m: {"grid": {"archs": ["nosuchpkg_zz.models:arch"]}},
                  "grid.archs.0: nosuchpkg_zz.models:arch: ", "no module named 'nosuchpkg_zz'"),
    "no attribute": ("", lambda m: {"grid": {"techniques": [f"{m}:nothere"]}},
                     "grid.techniques.0: {m}:nothere: ", "has no attribute 'nothere'"),
    "wrong kind": ("arch = _build\n", lambda m: {}, "grid.archs.0: {m}:arch: ",
                   "is a function, not an ltray.models.Architecture"),
    "model does not build": (
        "def _broken(n, s):\n    raise RuntimeError('no such layer')\n"
        "arch = Architecture(build=_broken, in_channels=1, image_size=8)\n",
        lambda m: {}, "grid.archs.0: {m}:arch: build(3, 8) ", "raised RuntimeError: no such layer"),
    "model has the wrong input": (
        "arch = Architecture(build=lambda n, s: nn.Sequential(nn.Flatten(), nn.Linear(5, n)), in_channels=1,"
        " image_size=8)\n",
        lambda m: {}, "grid.archs.0: {m}:arch: build(3, 8): forward", "raised RuntimeError"),
    "dataset with wrong dtypes": (
        "ds = Dataset(load=lambda split: (torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.int64)), classes=3,"
        " channels=1, side=8)\n",
        lambda m: {}, "tasks.mine.dataset: {m}:ds: ", "float32 (8, 1, 8, 8), expected uint8"),
    "dataset labels out of range": (
        "ds = Dataset(load=lambda split: (torch.zeros(8, 1, 8, 8, dtype=torch.uint8), torch.arange(8)), classes=3,"
        " channels=1, side=8)\n",
        lambda m: {}, "tasks.mine.dataset: {m}:ds: ", "labels span 0..7, outside 0..2"),
    "technique grows the mask": (
        "tech = Technique(name='grow', compute=lambda w, m, *rest: {n: torch.ones_like(x) for n, x in m.items()})\n",
        lambda m: {}, "grid.techniques.0: {m}:tech: ", "compute grew the mask of"),
    "technique returns wrong shapes": (
        "tech = Technique(name='flat', compute=lambda w, m, *rest: {n: x.reshape(-1) for n, x in m.items()})\n",
        lambda m: {}, "grid.techniques.0: {m}:tech: ", "expected torch.bool"),
    "technique prunes too much": (
        "tech = Technique(name='all', compute=lambda w, m, *rest: {n: torch.zeros_like(x) for n, x in m.items()})\n",
        lambda m: {}, "grid.techniques.0: {m}:tech: ", "at fraction 0.2"),
    "technique raises": (
        "def _bad(*args):\n    raise KeyError('conv9')\ntech = Technique(name='bad', compute=_bad)\n",
        lambda m: {}, "grid.techniques.0: {m}:tech: ", "compute raised KeyError: 'conv9'"),
    "module fails to import": ("raise ImportError('needs a GPU library')\n",
                               lambda m: {"grid": {"archs": ["lenet_300_100"], "techniques": ["l1_unstructured"]}},
                               "tasks.mine.dataset: {m}:ds: ", "importing '{m}' raised ImportError: needs a GPU"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_broken_plugin_fails_before_anything_is_written(case, tmp_path, plugin, capsys, no_ray):
    extra, edit, key, fragment = BAD[case]
    module = plugin(extra)
    code, path = run(tmp_path, sweep_doc(tmp_path, module, **edit(module)))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}: {key.format(m=module)}"), lines
    assert fragment.format(m=module) in lines[0], lines
    assert not (tmp_path / "store").exists()


def test_verbose_shows_the_traceback_from_inside_the_plugin(tmp_path, plugin, capsys, no_ray):
    module = plugin(BAD["model does not build"][0])
    code, _ = run(tmp_path, sweep_doc(tmp_path, module), "-v")
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" in err and f"{module}.py" in err and "in _broken" in err
    assert err.strip().splitlines()[-1].startswith("error: ")


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install wheels into a temp dir with pip (--no-deps --target) and put it on sys.path."""
    target = tmp_path / "site"
    target.mkdir()

    def install(name: str, files: dict[str, str], entry_points: dict[str, dict[str, str]]) -> None:
        pip_install_target(make_wheel(tmp_path, name, "1.2.3", files, entry_points), target)
        importlib.invalidate_caches()

    monkeypatch.syspath_prepend(str(target))
    return install


def test_entry_points_make_an_installed_packages_names_usable_like_builtins(tmp_path, installed, capsys, no_ray):
    from tests.plugin_helpers import GOOD_PLUGIN

    installed("ltray_tiny_ep", {"ltray_tiny_ep/__init__.py": GOOD_PLUGIN},
              {"ltray.archs": {"tiny_mlp": "ltray_tiny_ep:arch", "lenet": "ltray_tiny_ep:arch"},
               "ltray.datasets": {"tiny_noise": "ltray_tiny_ep:ds"},
               "ltray.techniques": {"tiny_l1": "ltray_tiny_ep:tech"}})
    doc = sweep_doc(tmp_path, "unused", tasks={"mine": {"dataset": "tiny_noise"}},
                    grid={"archs": ["tiny_mlp"], "techniques": ["tiny_l1"]})
    code, _ = run(tmp_path, doc, "--dry-run")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "tiny_mlp: 1 trajectories" in out
    assert get_arch("tiny_mlp").in_channels == 1 and get_technique("tiny_l1").name == "tiny_l1"
    assert get_arch("lenet") is MODELS["lenet"]  # a built-in name wins over an entry point


def test_two_packages_registering_one_name_is_an_error_naming_both(tmp_path, installed, capsys, no_ray):
    from tests.plugin_helpers import GOOD_PLUGIN

    for pkg in ("ltray_clash_a", "ltray_clash_b"):
        installed(pkg, {f"{pkg}/__init__.py": GOOD_PLUGIN}, {"ltray.archs": {"clash_net": f"{pkg}:arch"}})
    code, path = run(tmp_path, sweep_doc(tmp_path, "unused", tasks={"mine": {"dataset": "digits"}},
                                         grid={"archs": ["clash_net"], "techniques": ["global_unstructured"]}))
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: grid.archs.0: "), lines
    assert "'clash_net' is registered by two packages (ltray_clash_a and ltray_clash_b)" in lines[0]
    with pytest.raises(PluginError):
        get_arch("clash_net")
    assert not (tmp_path / "store").exists()


def test_provenance_records_plugins_and_a_resume_notices_changed_code(tmp_path, plugin):
    import json

    from ltray.experiment import layout
    from ltray.orchestration.load import parse_sweep
    from ltray.orchestration.opening import open_experiment
    from ltray.orchestration.plan import build_plan
    from ltray.storage import open_storage

    module = plugin()
    plan = build_plan(parse_sweep(sweep_doc(tmp_path, module), "plug.yaml"))
    storage = open_storage(tmp_path / "store" / "plug")
    assert open_experiment(plan, storage, resume=False) == []
    prov = json.loads(storage.read_text(layout.PROVENANCE))
    source = tmp_path / "plugins" / f"{module}.py"
    import hashlib

    digest = hashlib.sha256(source.name.encode() + b"\0" + source.read_bytes() + b"\0").hexdigest()
    assert prov["plugins"][f"{module}:arch"] == {"kind": "arch", "import_path": f"{module}:arch", "package": None,
                                                 "version": None, "sha256": digest, "files": [str(source)]}
    assert set(prov["plugins"]) == {f"{module}:ds", f"{module}:arch", f"{module}:tech"}
    assert open_experiment(plan, storage, resume=True) == []  # unchanged code: nothing to say

    bespoke = plan.trajectories[0].trial_id
    storage.write_text(f"{layout.trial_dir(bespoke)}/rounds.csv", "x\n")  # a trial that already ran
    source.write_text(source.read_text() + "\n# tuned\n")
    before = storage.read_text(layout.PROVENANCE)
    with pytest.raises(ConfigError, match=f"plugin {module}:ds .* changed since the last run.*--strict-plugins"):
        open_experiment(plan, storage, resume=True, strict_plugins=True)
    assert storage.read_text(layout.PROVENANCE) == before  # refused before anything was written
    notes = open_experiment(plan, storage, resume=True)
    assert len(notes) == 3 and all(n.startswith("warning: plugin ") for n in notes)  # one per plugin of the module
    arch_note = next(n for n in notes if f"{module}:arch (" in n)
    assert f"1 trial(s) already ran with the old code: {bespoke}" in arch_note
    assert json.loads(storage.read_text(layout.PROVENANCE))["resumes"][-1]["plugins"][f"{module}:arch"]["sha256"] \
        != digest


def test_status_reads_a_plugin_experiment_without_importing_the_plugin(tmp_path, plugin, capsys, monkeypatch):
    import sys

    from ltray.orchestration.load import parse_sweep
    from ltray.orchestration.opening import open_experiment
    from ltray.orchestration.plan import build_plan
    from ltray.status import main as status_main
    from ltray.storage import open_storage

    module = plugin()
    plan = build_plan(parse_sweep(sweep_doc(tmp_path, module), "plug.yaml"))
    open_experiment(plan, open_storage(tmp_path / "store" / "plug"), resume=False)
    monkeypatch.delitem(sys.modules, module)
    (tmp_path / "plugins" / f"{module}.py").write_text("raise SystemExit('imported')\n")  # importing it would fail
    assert status_main([str(tmp_path / "store" / "plug")]) == 0
    assert module not in sys.modules
    assert "0/1" in capsys.readouterr().out
