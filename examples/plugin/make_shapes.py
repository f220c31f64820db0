"""Write ltray_example/shapes.npz: 8x8 RGB images of four classes, a bright square in quadrant c
over uniform noise, 240 for training and 80 for testing (seed 0, so the file is reproducible)."""

from pathlib import Path

import numpy as np

SIDE, CLASSES = 8, 4


def make(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, CLASSES, n)
    images = rng.integers(0, 96, (n, 3, SIDE, SIDE))
    half = SIDE // 2
    for i, c in enumerate(labels):
        top, left = half * (c // 2), half * (c % 2)
        images[i, :, top : top + half, left : left + half] += 150
    return images.astype(np.uint8), labels.astype(np.int64)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    (tx, ty), (vx, vy) = make(240, rng), make(80, rng)
    out = Path(__file__).parent / "ltray_example" / "shapes.npz"
    np.savez_compressed(out, train_images=tx, train_labels=ty, test_images=vx, test_labels=vy)
    print(f"wrote {out}")
