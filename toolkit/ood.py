"""An out-of-distribution test set: MNIST *test* digits as other pens and cameras would give them.

Real handwriting from writers outside MNIST is kept outside the project (so nobody tunes to it); this
set stands in for it, built deterministically from what ships in data/mnist. Every image gets one
condition, in turn, each stronger than the training augmentation's ranges:

- rotated: tilted 18-35 degrees either way;
- resized: drawn small (0.62-0.78) or large (1.2-1.32);
- off-centre: moved 3.5-5 pixels, as a crop that is not centred on the digit's mass;
- thick: strokes grown by 1-2 pixels (a marker);
- thin: strokes eroded (a fine pen), then brightened back;
- warped: a strong elastic distortion (a hurried hand);
- camera: blurred, low contrast, grey background with noise.

Accuracy on it is reported beside MNIST's by ``digitkit verify`` and recorded by ``digitkit train``,
for every recipe; no recipe's defaults are tuned to it (the augmentation's ranges are set apart).
"""

from __future__ import annotations

import numpy as np

from .augment import SIDE, _grow, _inverse_maps, elastic_field, resample

CONDITIONS = ("rotated", "resized", "off-centre", "thick", "thin", "warped", "camera")
SIZE = 3500  # 500 per condition: about ±1.5 points per condition, ±0.6 overall
SEED = 20261203


def _geometric(images: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    n = len(images)
    angles, scales = np.zeros(n), np.ones(n)
    shifts = np.zeros((n, 2))
    field = np.zeros((n, 2, SIDE, SIDE), np.float32)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    if kind == "rotated":
        angles = np.deg2rad(rng.uniform(18, 35, n) * sign)
    elif kind == "resized":
        scales = np.where(sign < 0, rng.uniform(0.62, 0.78, n), rng.uniform(1.2, 1.32, n))
    elif kind == "off-centre":
        direction = rng.uniform(0, 2 * np.pi, n)
        distance = rng.uniform(3.5, 5, n)
        shifts = np.stack([distance * np.sin(direction), distance * np.cos(direction)], -1)
    elif kind == "warped":
        field = elastic_field(rng, n, np.full(n, 2.0), 5)
    return resample(images, _inverse_maps(angles, scales), shifts, field)


def _strokes(images: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    if kind == "thick":
        out = _grow(images, True)
        twice = rng.random(len(images)) < 0.5
        out[twice] = _grow(out[twice], True)
        return out
    thinned = _grow(images, False)
    peak = thinned.reshape(len(images), -1).max(axis=1)
    return thinned / np.maximum(peak, 0.25)[:, None, None]  # what's left of the stroke, full ink


def _camera(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(images)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    kernel = np.array([1.0, 2.0, 1.0]) / 4.0
    blurred = sum(
        kernel[i] * kernel[j] * padded[:, i : i + SIDE, j : j + SIDE] for i in range(3) for j in range(3)
    )
    contrast = rng.uniform(0.45, 0.7, n)[:, None, None]
    background = rng.uniform(0.05, 0.2, n)[:, None, None]
    noise = rng.normal(0.0, 0.06, images.shape)
    return background + contrast * blurred + noise


def ood_set(images: np.ndarray, labels: np.ndarray, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (size, 28, 28) images and their labels, from the first ``size`` test images; a function
    of its inputs alone."""
    size = min(size, len(images))
    rng = np.random.default_rng(SEED)
    x = images[:size].astype(np.float32) / np.float32(255.0)
    out = np.empty_like(x)
    kinds = np.arange(size) % len(CONDITIONS)
    for k, kind in enumerate(CONDITIONS):
        rows = np.nonzero(kinds == k)[0]
        part = x[rows]
        if kind in ("thick", "thin"):
            part = _strokes(part, rng, kind)
        elif kind == "camera":
            part = _camera(part, rng)
        else:
            part = _geometric(part, rng, kind)
        out[rows] = part
    pixels = np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)
    return pixels, np.asarray(labels[:size]).copy()


def condition_of(size: int = SIZE) -> np.ndarray:
    """The condition index of each image of ``ood_set``."""
    return np.arange(size) % len(CONDITIONS)
