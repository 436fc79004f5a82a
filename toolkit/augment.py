"""Augmentation for handwriting beyond MNIST: random rotation, scale, shift, stroke thickness and
elastic distortion, in numpy alone, vectorized over the batch and deterministic for a given generator.

Every image gets its own draw: stroke thickening or thinning (a 3×3 grey dilation or erosion blended
in), then one resampling (bilinear, black outside the frame) through an affine map (rotation, scale,
shift about the frame's centre) plus a smooth elastic displacement field (a coarse random grid,
bilinearly upsampled). The same functions, with stronger settings, build the out-of-distribution set
(toolkit/ood.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDE = 28
CHUNK = 4096  # images resampled at once: bounds the coordinate arrays' memory


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random draws. Defaults chosen for real handwriting: people tilt, size and place
    digits more loosely than MNIST's writers, and pens draw thicker or thinner strokes."""

    rotation_degrees: float = 12.0  # uniform in ±
    scale: float = 0.12  # zoom factor uniform in [1 - scale, 1 + scale]
    shift_pixels: float = 2.5  # uniform in ± per axis
    stroke_probability: float = 0.4  # of a thickness change; half thicker, half thinner
    elastic_probability: float = 0.5
    elastic_pixels: float = 1.2  # standard deviation of the coarse grid's displacements
    elastic_grid: int = 4  # coarse grid points per side


def _grow(images: np.ndarray, grow: bool) -> np.ndarray:
    """3×3 grey dilation (grow) or erosion of (N, 28, 28) float images, black outside the frame."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)), constant_values=0.0)
    combine = np.maximum if grow else np.minimum
    out = images.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy == 1 and dx == 1:
                continue
            combine(out, padded[:, dy : dy + SIDE, dx : dx + SIDE], out=out)
    return out


def change_strokes(images: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Thicker strokes where amount > 0, thinner where < 0, blended by |amount| (at most 1 pixel)."""
    out = images.copy()
    for grow in (True, False):
        rows = np.nonzero(amount > 0 if grow else amount < 0)[0]
        if rows.size:
            weight = np.abs(amount[rows])[:, None, None].astype(np.float32)
            changed = _grow(images[rows], grow)
            out[rows] = images[rows] + weight * (changed - images[rows])
    return out


def _upsample_matrix(points: int) -> np.ndarray:
    """(28, points) bilinear interpolation from a coarse grid spanning the frame."""
    positions = np.linspace(0, points - 1, SIDE)
    low = np.minimum(np.floor(positions).astype(int), points - 2)
    frac = positions - low
    matrix = np.zeros((SIDE, points))
    matrix[np.arange(SIDE), low] = 1 - frac
    matrix[np.arange(SIDE), low + 1] += frac
    return matrix


def elastic_field(rng: np.random.Generator, count: int, sigma: np.ndarray, grid: int) -> np.ndarray:
    """(count, 2, 28, 28) smooth displacements: a coarse normal grid per image, upsampled."""
    coarse = rng.normal(size=(count, 2, grid, grid)) * sigma[:, None, None, None]
    up = _upsample_matrix(grid)
    return np.einsum("ij,ncjk,lk->ncil", up, coarse, up).astype(np.float32)


def resample(images: np.ndarray, matrices: np.ndarray, shifts: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Bilinear resampling: output pixel p reads the input at centre + M (p - centre - shift) + field(p).

    matrices (N, 2, 2) are the inverse maps (output to input), shifts (N, 2) in pixels (rows, columns);
    outside the frame reads black."""
    n = len(images)
    centre = np.float32((SIDE - 1) / 2.0)
    axis = np.arange(SIDE, dtype=np.float32) - centre
    m = matrices.astype(np.float32)[:, :, :, None, None]
    rows = axis[None, :, None] - shifts[:, 0, None, None].astype(np.float32)  # (N, 28, 1)
    cols = axis[None, None, :] - shifts[:, 1, None, None].astype(np.float32)  # (N, 1, 28)
    width = SIDE + 2
    # Source coordinates in the padded frame (+1); clipped, so beyond the frame reads the black border.
    r = np.clip(m[:, 0, 0] * rows + m[:, 0, 1] * cols + field[:, 0] + (centre + 1), 0, SIDE + 1)
    c = np.clip(m[:, 1, 0] * rows + m[:, 1, 1] * cols + field[:, 1] + (centre + 1), 0, SIDE + 1)
    r0 = np.minimum(r.astype(np.int32), SIDE)  # non-negative: truncation is floor
    c0 = np.minimum(c.astype(np.int32), SIDE)
    fr, fc = r - r0, c - c0
    flat = np.pad(images, ((0, 0), (1, 1), (1, 1)), constant_values=0.0).reshape(-1)
    idx = (np.arange(n, dtype=np.int64) * (width * width))[:, None, None] + r0 * width + c0
    top = flat[idx]
    top += fc * (flat[idx + 1] - top)
    bottom = flat[idx + width]
    bottom += fc * (flat[idx + width + 1] - bottom)
    top += fr * (bottom - top)
    return top.astype(np.float32, copy=False)


def _inverse_maps(angles: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Output-to-input maps of a rotation by ``angles`` (radians) and a zoom by ``scales``."""
    cos, sin = np.cos(angles) / scales, np.sin(angles) / scales
    return np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)


def distort(
    images: np.ndarray,
    rng: np.random.Generator,
    rotation_degrees: float,
    scale: float,
    shift_pixels: float,
    stroke_probability: float,
    elastic_probability: float,
    elastic_pixels: float,
    elastic_grid: int,
) -> np.ndarray:
    """float32 (N, 28, 28) in [0, 1] -> the same, each image drawn afresh from ``rng``."""
    n = len(images)
    # Every draw is made for every image, in a fixed order, so the stream does not depend on outcomes.
    stroke_pick = rng.random(n)
    stroke_amount = rng.uniform(0.5, 1.0, n) * np.where(rng.random(n) < 0.5, 1.0, -1.0)
    angles = np.deg2rad(rng.uniform(-rotation_degrees, rotation_degrees, n))
    scales = rng.uniform(1.0 - scale, 1.0 + scale, n)
    shifts = rng.uniform(-shift_pixels, shift_pixels, (n, 2))
    elastic_pick = rng.random(n) < elastic_probability
    sigma = np.where(elastic_pick, elastic_pixels, 0.0)
    field = elastic_field(rng, n, sigma, elastic_grid)
    amount = np.where(stroke_pick < stroke_probability, stroke_amount, 0.0)
    stroked = change_strokes(images, amount)
    return np.clip(resample(stroked, _inverse_maps(angles, scales), shifts, field), 0.0, 1.0)


def augment(images: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 784) in [0, 1] (the model's input contract), augmented."""
    out = np.empty((len(images), SIDE * SIDE), np.float32)
    for start in range(0, len(images), CHUNK):
        chunk = images[start : start + CHUNK].astype(np.float32) / np.float32(255.0)
        out[start : start + CHUNK] = distort(
            chunk,
            rng,
            config.rotation_degrees,
            config.scale,
            config.shift_pixels,
            config.stroke_probability,
            config.elastic_probability,
            config.elastic_pixels,
            config.elastic_grid,
        ).reshape(len(chunk), -1)
    return out


def epoch_images(images: np.ndarray, seed: int, epoch: int, config: AugmentConfig) -> np.ndarray:
    """The augmented training set of one epoch: a function of (seed, epoch) alone."""
    return augment(images, np.random.default_rng([seed, epoch, 0xA06]), config)
