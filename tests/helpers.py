"""Helpers the tests share (importable as `helpers`: pytest puts tests/ on sys.path)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """The real `digitkit` console script in a subprocess, as a user runs it."""
    exe = Path(sys.executable).with_name("digitkit")
    merged = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=merged, cwd=cwd, timeout=timeout)


def mnist_png_dir(directory: Path, images: np.ndarray) -> list[Path]:
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = directory / f"{i:05d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths
