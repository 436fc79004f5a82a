"""One export run: convert every selected target into a staging directory, describe each with the
runtime that will run it, write the manifest, then publish everything by atomic renames."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from digitkit.runtime.errors import ArtifactError
from digitkit.runtime.manifest import MANIFEST_NAME

from .atomic import ensure_writable_dir, new_staging_dir, publish, write_json_atomic
from .calibration import CalibrationSet
from .context import ExportContext
from .formats import ExportTarget
from .quiet import quiet_output
from .manifest import REFERENCE_PROBABILITIES, artifact_entry, build_manifest
from .tf_env import import_tensorflow


@dataclass
class ExportedArtifact:
    target: ExportTarget
    path: Path
    size_bytes: int
    accuracy: float
    backend: str
    seconds: float


@dataclass
class ExportResult:
    out_dir: Path
    manifest_path: Path
    source_accuracy: float
    artifacts: list = field(default_factory=list)


def require_model_file(path: Path) -> Path:
    """Cheap, before MNIST or TensorFlow load: the trained model file exists."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"No trained model at {path}", "Run `digitkit train` first, or pass --model PATH/model.keras")
    return path


def load_keras_model(path: Path):
    """The trained model, checked to be the 784 → 10 digit classifier."""
    path = require_model_file(path)
    tf = import_tensorflow()
    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # zip, h5 and config errors all land here
        detail = str(exc).strip().splitlines()
        raise ArtifactError(
            f"{path} is not a readable Keras model ({detail[0][:160] if detail else type(exc).__name__})",
            "Re-run `digitkit train`, or pass the model.keras it wrote",
        ) from exc
    input_shape = tuple(model.inputs[0].shape) if model.inputs else None
    output_shape = tuple(model.outputs[0].shape) if model.outputs else None
    if input_shape is None or tuple(input_shape[1:]) != (784,) or output_shape is None or tuple(output_shape[1:]) != (10,):
        raise ArtifactError(
            f"{path} maps {input_shape} to {output_shape}, not (None, 784) to (None, 10)",
            "Export a model trained by `digitkit train`",
        )
    return tf, model


def run_export(
    model_path: Path,
    out_dir: Path,
    targets: list,
    calibration: CalibrationSet,
    x_test: np.ndarray,
    y_test: np.ndarray,
    data_sha256: dict,
    training: Optional[dict] = None,
    onnx_opset: int = 17,
) -> ExportResult:
    model_path = Path(model_path)
    out_dir = ensure_writable_dir(Path(out_dir))
    tf, model = load_keras_model(model_path)
    import keras

    from digitkit.runtime import load

    x_test_flat = x_test.reshape(len(x_test), 784).astype(np.float32) / np.float32(255.0)
    staging = new_staging_dir(out_dir)
    try:
        ctx = ExportContext(model=model, tf=tf, calibration=calibration, staging=staging, onnx_opset=onnx_opset)
        probabilities = np.asarray(model.predict(x_test_flat, batch_size=1000, verbose=0), dtype=np.float32)
        predictions = probabilities.argmax(axis=1)
        source_accuracy = float((predictions == y_test).mean())
        probabilities_path = staging / REFERENCE_PROBABILITIES
        np.save(probabilities_path, probabilities)

        entries, exported = [], []
        for target in targets:
            path = ctx.staged(target.filename)
            started = time.perf_counter()
            with quiet_output():
                info = target.export_function()(ctx, path)
            seconds = time.perf_counter() - started
            with quiet_output():  # LiteRT announces its XNNPACK delegate on fd 2
                runtime_model = load(path, verify_hash=False)
            accuracy = float((runtime_model.predict(x_test) == y_test).mean())
            entries.append(artifact_entry(target, path, runtime_model.session.inputs, runtime_model.session.outputs, info))
            exported.append(ExportedArtifact(target, out_dir / target.filename, path.stat().st_size, accuracy, runtime_model.backend, seconds))

        manifest = build_manifest(
            entries,
            source_model=model_path,
            test_accuracy=source_accuracy,
            predictions=predictions,
            probabilities_path=probabilities_path,
            calibration=calibration.describe(),
            data_sha256=data_sha256,
            training=training,
            versions={"tensorflow": tf.__version__, "keras": keras.__version__},
        )
        write_json_atomic(staging / MANIFEST_NAME, manifest)
        publish([staging / e["file"] for e in entries] + [probabilities_path, staging / MANIFEST_NAME], out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out_dir=out_dir, manifest_path=out_dir / MANIFEST_NAME, source_accuracy=source_accuracy, artifacts=exported)
