"""Integrity and safety rules, checked on the source and on files: only safe loaders read
anything back, every file is written atomically (through ltray.fileio or a Storage), and checksummed files
refuse tampering without running anything they contain."""

from __future__ import annotations

import ast
import hashlib
import importlib
import io
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "ltray").rglob("*.py"), *(ROOT / "analysis").rglob("*.py")])

# writes that do not go through ltray.fileio, and why that is fine
DIRECT_WRITES = {
    ("ltray/fileio.py", "open"): "the atomic writer itself",
    ("ltray/storage.py", "write_bytes"): "Storage.write_text calls its own atomic write_bytes",
    ("ltray/data/torchvision_sets.py", "open"): "an empty lock file",
    ("ltray/cluster/slurm_node.py", "open"): "the log that `ray start` appends to in a SLURM job's temp dir",
    ("analysis/plotting.py", "savefig"): "report figures, rebuilt by rerunning the analysis",
}
UNSAFE = {("pickle", "load"), ("pickle", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"),
          ("dill", "load"), ("joblib", "load"), ("pd", "read_pickle"), ("pandas", "read_pickle"),
          ("yaml", "unsafe_load"), ("yaml", "full_load"), ("yaml", "load_all"), ("torch", "from_file")}


def calls(path: Path):
    """(owner name or '', function name, keywords, call node) of every call in a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else ""
                yield owner, func.attr, {k.arg: k.value for k in node.keywords}, node
            elif isinstance(func, ast.Name):
                yield "", func.id, {k.arg: k.value for k in node.keywords}, node


def is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def where(path: Path, node) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def test_only_safe_loaders():
    bad = []
    for path in SOURCES:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for owner, name, kw, node in calls(path):
            if (owner, name) in UNSAFE:
                bad.append(f"{where(path, node)}: {owner}.{name}")
            elif (owner, name) == ("torch", "load") and not is_true(kw.get("weights_only")):
                bad.append(f"{where(path, node)}: torch.load without weights_only=True")
            elif name == "load" and owner in ("np", "numpy") and is_true(kw.get("allow_pickle")):
                bad.append(f"{where(path, node)}: np.load with allow_pickle=True")
            elif (owner, name) == ("yaml", "load"):
                loader = kw.get("Loader")
                cls = None
                if isinstance(loader, ast.Name):
                    cls = getattr(importlib.import_module(module.removesuffix(".__init__")), loader.id, None)
                elif isinstance(loader, ast.Attribute) and isinstance(loader.value, ast.Name):
                    cls = getattr(yaml, loader.attr, None) if loader.value.id == "yaml" else None
                if not (isinstance(cls, type) and issubclass(cls, (yaml.SafeLoader, yaml.CSafeLoader))):
                    bad.append(f"{where(path, node)}: yaml.load without a SafeLoader")
    assert not bad, "unsafe loaders:\n" + "\n".join(bad)


def through_storage(node) -> bool:
    """storage.write_text(...), self.storage.write_bytes(...), target.write_bytes(...): a Storage's
    writes are atomic (temporary file + rename locally, one PUT on object stores)."""
    receiver = ast.unparse(node.func.value) if isinstance(node.func, ast.Attribute) else ""
    return receiver.endswith("storage") or receiver == "target"


def test_every_write_is_atomic():
    bad = []
    for path in SOURCES:
        rel = str(path.relative_to(ROOT))
        for owner, name, kw, node in calls(path):
            writes = name in ("write_text", "write_bytes", "savefig") and not through_storage(node)
            if name == "open" and owner in ("", "io", "os"):
                mode = node.args[1] if len(node.args) > 1 else kw.get("mode")
                writes = isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
            if writes and (rel, name) not in DIRECT_WRITES:
                bad.append(f"{where(path, node)}: {name} (write through ltray.fileio.atomic_writer)")
    assert not bad, "non-atomic writes:\n" + "\n".join(bad)


def test_the_scan_sees_what_it_forbids(tmp_path):
    """The checks above would notice a bad call (they are not vacuous)."""
    sample = tmp_path / "sample.py"
    sample.write_text("import torch, yaml\ntorch.load(f)\nyaml.load(t)\nopen(p, 'w')\nx.write_text('a')\n")
    found = {(owner, name) for owner, name, _, _ in calls(sample)}
    assert {("torch", "load"), ("yaml", "load"), ("", "open"), ("x", "write_text")} <= found


class _Payload:
    """A pickle that would create a file when unpickled by an unsafe loader."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_state_refuses_tampering_and_code(tmp_path):
    import torch

    from ltray.errors import ExperimentError
    from ltray.training.state import TrajectoryState

    state = TrajectoryState(next_round=2, mask={"fc.weight": np.ones((3, 4), bool)}, config_key="k")
    path = tmp_path / "state.ltstate"
    state.save(path)
    assert TrajectoryState.load(path).next_round == 2
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ExperimentError, match=f"^{path}: resume state is truncated or corrupt"):
        TrajectoryState.load(path)
    # a malicious pickle with a valid checksum: weights_only refuses it, nothing runs
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"version": 1, "x": _Payload(marker)}, buf)  # torch.load(weights_only=False) would run it
    body = buf.getvalue()
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; what matters is below
        TrajectoryState.load(path)
    assert not marker.exists()


def test_mask_files_refuse_tampering_after_write(tmp_path):
    from ltray.errors import MaskFileError
    from ltray.masks import load_mask, save_mask

    path = tmp_path / "m.ltmask"
    save_mask(path, {"w": np.eye(4, dtype=bool)})
    assert not [p for p in tmp_path.iterdir() if p.name != "m.ltmask"]  # no temporary file left over
    data = bytearray(path.read_bytes())
    data[-33] ^= 0x01  # the last payload byte
    path.write_bytes(bytes(data))
    with pytest.raises(MaskFileError, match="checksum mismatch"):
        load_mask(path)
