"""The README's Python example runs as written and shows what the README says it shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_trajectory_example(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (example,) = [b for b in blocks if "run_trajectory" in b]
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, "README.md", "exec"), {})
    lines = out.getvalue().strip().splitlines()
    assert [re.search(r"sparsity (\S+)%", l).group(1) for l in lines] == ["0.0", "20.0", "36.0"]
    assert all(float(re.search(r"val acc (\S+),", l).group(1)) > 0.5 for l in lines)
    assert len(list((tmp_path / "masks" / "digits").glob("round_*.ltmask"))) == 3
