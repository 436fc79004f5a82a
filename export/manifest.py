"""Writing the manifest (docs/manifest.md). Reading it is the runtime's job: digitkit.runtime.manifest."""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Optional

import numpy as np

from digitkit.runtime.backends.base import TensorInfo
from digitkit.runtime.hashing import sha256_file
from digitkit.runtime.version import __version__ as digitkit_version
from digitkit.runtime.manifest import PREPROCESSING, SCHEMA_NAME, SCHEMA_VERSION

from .formats import ExportTarget

REFERENCE_PROBABILITIES = "reference_probabilities.npy"


def artifact_entry(target: ExportTarget, path: Path, inputs: list[TensorInfo], outputs: list[TensorInfo], info: dict) -> dict:
    return {
        "file": path.name,
        "format": target.format,
        "mode": target.mode,
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "quantization": target.quantization,
        "inputs": [t.to_json() for t in inputs],
        "outputs": [t.to_json() for t in outputs],
        **info,
    }


def predictions_string(predictions: np.ndarray) -> str:
    """10,000 digits as one string: compact, diffable, and readable without numpy."""
    return "".join(str(int(d)) for d in predictions)


def build_manifest(
    artifacts: list[dict],
    source_model: Path,
    test_accuracy: float,
    predictions: np.ndarray,
    probabilities_path: Path,
    calibration: dict,
    data_sha256: dict,
    training: Optional[dict],
    versions: dict,
) -> dict:
    source = {
        "file": source_model.name,
        "sha256": sha256_file(source_model),
        "framework": "keras",
        "test_accuracy": round(float(test_accuracy), 6),
        "test_predictions": predictions_string(predictions),
        "test_probabilities": {"file": probabilities_path.name, "sha256": sha256_file(probabilities_path), "dtype": "float32", "shape": [int(d) for d in np.load(probabilities_path, mmap_mode="r").shape]},
    }
    if training:
        source["training"] = {k: training[k] for k in ("config", "epochs", "test_accuracy", "train_seconds") if k in training}
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "digitkit_version": digitkit_version,
        "host": {"machine": platform.machine(), "python": platform.python_version(), **versions},
        "preprocessing": PREPROCESSING,
        "test_set": {"name": "MNIST t10k", "images": len(predictions), "mnist_files_sha256": data_sha256},
        "source_model": source,
        "calibration": calibration,
        "artifacts": artifacts,
    }
