"""Write one MNIST test digit as a person would photograph it: dark ink on light paper, larger,
off centre. `make demo` predicts it, exercising the runtime's MNIST-style preprocessing.

    python examples/make_sample_digit.py runs/sample-digit.png [--index 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from digitkit.toolkit.data import load_mnist_test


def photograph(
    digit: np.ndarray, canvas: int = 160, scale: int = 4, offset=(18, -10), seed: int = 0
) -> Image.Image:
    rng = np.random.default_rng(seed)
    ink = Image.fromarray(255 - digit).resize((28 * scale, 28 * scale), Image.LANCZOS)
    paper = np.clip(rng.normal(225, 6, size=(canvas, canvas)), 0, 255).astype(np.uint8)
    page = Image.fromarray(paper)
    top_left = ((canvas - 28 * scale) // 2 + offset[0], (canvas - 28 * scale) // 2 + offset[1])
    page.paste(
        Image.fromarray(
            np.minimum(
                np.asarray(page.crop((*top_left, top_left[0] + 28 * scale, top_left[1] + 28 * scale))),
                np.asarray(ink),
            )
        ),
        top_left,
    )
    return page.convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--index", type=int, default=0, help="which MNIST test image (label printed)")
    args = parser.parse_args()
    x_test, y_test = load_mnist_test()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    photograph(x_test[args.index]).save(args.out)
    print(
        f"Wrote {args.out}: MNIST test image {args.index}, a {y_test[args.index]}, photographed dark on light"
    )


if __name__ == "__main__":
    main()
