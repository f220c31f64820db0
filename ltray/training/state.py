"""The resume state of a trajectory between rounds: small, checksummed, loaded without pickle.

It holds the next round's index and mask, plus weights only when the rewind target needs them
(late rewinding keeps the epoch-k weights; fine-tuning keeps the last trained weights). The initial
weights are never stored: they are rebuilt from the seed.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ltray.errors import ExperimentError
from ltray.fileio import atomic_write_bytes

STATE_VERSION = 1


@dataclass
class TrajectoryState:
    next_round: int
    mask: dict[str, np.ndarray]
    rewind_weights: dict[str, torch.Tensor] | None = None
    trained_weights: dict[str, torch.Tensor] | None = None
    config_key: str = ""

    def to_bytes(self) -> bytes:
        payload = {
            "version": STATE_VERSION,
            "next_round": self.next_round,
            "config_key": self.config_key,
            "mask_names": list(self.mask),
            "mask": [torch.from_numpy(np.ascontiguousarray(m)) for m in self.mask.values()],
            "rewind_weights": cpu_copy(self.rewind_weights),
            "trained_weights": cpu_copy(self.trained_weights),
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        body = buf.getvalue()
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "state") -> "TrajectoryState":
        body, digest = data[:-32], data[-32:]
        if len(data) < 33 or hashlib.sha256(body).digest() != digest:
            raise ExperimentError(f"{source}: resume state is truncated or corrupt (checksum mismatch)")
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
        if payload.get("version") != STATE_VERSION:
            raise ExperimentError(f"{source}: resume state version {payload.get('version')} unsupported")
        mask = {n: t.numpy().astype(bool) for n, t in zip(payload["mask_names"], payload["mask"])}
        return cls(
            next_round=int(payload["next_round"]),
            mask=mask,
            rewind_weights=payload["rewind_weights"],
            trained_weights=payload["trained_weights"],
            config_key=payload["config_key"],
        )

    def save(self, path: str | Path) -> None:
        atomic_write_bytes(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> "TrajectoryState":
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ExperimentError(f"{path}: cannot read resume state ({e.strerror})") from None
        return cls.from_bytes(data, str(path))


def cpu_copy(weights: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
    """Detached CPU copies of a state dict, independent of the live model's storage."""
    if weights is None:
        return None
    return {k: v.detach().to("cpu").clone() for k, v in weights.items()}
