"""One export run: convert every selected target into a staging directory, describe each with the
runtime that will run it, write the manifest, then publish everything by atomic renames."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from digitkit.runtime.errors import ArtifactError, BackendUnavailableError, DigitkitError, ExportError
from digitkit.runtime.files import (
    ensure_writable_dir,
    new_staging_dir,
    publish,
    uninterrupted,
    write_json_atomic,
)
from digitkit.runtime.hashing import sha256_file
from digitkit.runtime.manifest import MANIFEST_NAME, Manifest, read_manifest
from digitkit.runtime.quiet import quiet_output

from .calibration import CalibrationSet
from .context import ExportContext
from .formats import ExportTarget
from .keras_layers import custom_objects
from .manifest import REFERENCE_PROBABILITIES, ConverterInfo, Reference, artifact_entry, build_manifest
from .metadata import artifact_metadata, embed
from .tf_env import import_tensorflow


@dataclass(frozen=True)
class ExportRequest:
    """Everything one export run needs, gathered by the caller (the CLI or a test)."""

    model_path: Path
    out_dir: Path
    targets: Sequence[ExportTarget]
    calibration: CalibrationSet
    test_images: np.ndarray  # uint8 (N, 28, 28)
    test_labels: np.ndarray
    data_sha256: Mapping[str, str]
    training: Optional[Mapping[str, Any]] = None  # the training.json record beside the model
    onnx_opset: int = 17
    c_rounding: str = "litert"
    on_target: Optional[Callable[[ExportTarget], None]] = None  # progress: called as each target starts


@dataclass(frozen=True)
class ExportedArtifact:
    target: ExportTarget
    path: Path
    size_bytes: int
    accuracy: float
    backend: str
    seconds: float


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    manifest_path: Path
    source_accuracy: float
    artifacts: tuple[ExportedArtifact, ...]
    stale_removed: tuple[str, ...] = ()  # the previous export's files this one no longer lists
    stale_kept: tuple[str, ...] = ()  # ... and those changed since, left where they are


def require_model_file(path: Path) -> Path:
    """Cheap, before MNIST or TensorFlow load: the trained model file exists."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            f"No trained model at {path}", "Run `digitkit train` first, or pass --model PATH/model.keras"
        )
    return path


def load_keras_model(path: Path):
    """The trained model, checked to be the 784 → 10 digit classifier."""
    path = require_model_file(path)
    tf = import_tensorflow()
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, custom_objects=custom_objects())
    except Exception as exc:  # zip, h5 and config errors all land here
        detail = str(exc).strip().splitlines()
        raise ArtifactError(
            f"{path} is not a readable Keras model ({detail[0][:160] if detail else type(exc).__name__})",
            "Re-run `digitkit train`, or pass the model.keras it wrote",
        ) from exc
    input_shape = tuple(model.inputs[0].shape) if model.inputs else None
    output_shape = tuple(model.outputs[0].shape) if model.outputs else None
    if (
        input_shape is None
        or tuple(input_shape[1:]) != (784,)
        or output_shape is None
        or tuple(output_shape[1:]) != (10,)
    ):
        raise ArtifactError(
            f"{path} maps {input_shape} to {output_shape}, not (None, 784) to (None, 10)",
            "Export a model trained by `digitkit train`",
        )
    return tf, model


def run_export(request: ExportRequest) -> ExportResult:
    out_dir = ensure_writable_dir(Path(request.out_dir))
    tf, model = load_keras_model(Path(request.model_path))
    import keras

    from digitkit.runtime import load

    x_test, y_test = request.test_images, request.test_labels
    x_test_flat = x_test.reshape(len(x_test), 784).astype(np.float32) / np.float32(255.0)
    previous = _previous_manifest(out_dir)
    staging = new_staging_dir(out_dir)
    try:
        ctx = ExportContext(
            model=model,
            tf=tf,
            calibration=request.calibration,
            staging=staging,
            onnx_opset=request.onnx_opset,
            c_rounding=request.c_rounding,
        )
        probabilities = np.asarray(model.predict(x_test_flat, batch_size=1000, verbose=0), dtype=np.float32)
        predictions = probabilities.argmax(axis=1)
        source_accuracy = float((predictions == y_test).mean())
        probabilities_path = staging / REFERENCE_PROBABILITIES
        np.save(probabilities_path, probabilities)
        reference = Reference(
            Path(request.model_path), predictions, probabilities_path, probabilities.shape, request.training
        )

        entries, exported = [], []
        companions: list[Path] = []
        source_sha256 = sha256_file(Path(request.model_path))
        for target in request.targets:
            path = ctx.staged(target.filename)
            if request.on_target is not None:
                request.on_target(target)
            started = time.perf_counter()
            info = _convert(target, ctx, path)
            if target.format in ("tflite", "onnx"):  # before anything hashes or reads the file
                with quiet_output():
                    inputs = load(path, verify_hash=False).session.inputs
                embed(path, artifact_metadata(target, inputs, source_sha256, request.training))
            seconds = time.perf_counter() - started
            try:
                with quiet_output():  # LiteRT announces its XNNPACK delegate on fd 2
                    runtime_model = load(path, verify_hash=False)
            except BackendUnavailableError:
                if not info.inputs:  # only a C export without a C compiler here may go unmeasured
                    raise
                accuracy, backend = float("nan"), "none here"
                inputs, outputs = info.inputs, info.outputs
            else:
                accuracy = float((runtime_model.predict(x_test) == y_test).mean())
                backend = runtime_model.backend
                inputs, outputs = tuple(runtime_model.session.inputs), tuple(runtime_model.session.outputs)
            entries.append(artifact_entry(target, path, inputs, outputs, info))
            companions.extend(staging / name for name in info.companion_files())
            exported.append(
                ExportedArtifact(
                    target, out_dir / target.filename, path.stat().st_size, accuracy, backend, seconds
                )
            )

        versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
        manifest = build_manifest(
            entries, reference, source_accuracy, request.calibration.describe(), request.data_sha256, versions
        )
        write_json_atomic(staging / MANIFEST_NAME, manifest.to_json())
        published = [staging / e.file for e in entries] + companions
        with uninterrupted():  # the new manifest and the old files' removal, both or neither
            publish(published + [probabilities_path, staging / MANIFEST_NAME], out_dir)
            removed, kept = _remove_stale(previous, {p.name for p in published})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        out_dir, out_dir / MANIFEST_NAME, source_accuracy, tuple(exported), tuple(removed), tuple(kept)
    )


def _previous_manifest(out_dir: Path) -> Optional[Manifest]:
    if not (out_dir / MANIFEST_NAME).is_file():
        return None
    try:
        return read_manifest(out_dir)
    except DigitkitError:
        return None  # unreadable: nothing of it is removed


def _remove_stale(previous: Optional[Manifest], current: set[str]) -> tuple[list[str], list[str]]:
    """Files the previous export wrote and this one does not list: removed when they are still
    byte-identical to what it wrote (digitkit's own), kept and named otherwise."""
    removed: list[str] = []
    kept: list[str] = []
    if previous is None:
        return removed, kept
    for entry in previous.artifacts:
        refs: list[Any] = [entry, *entry.companion_files()]  # both have .file and .sha256
        for ref in refs:
            path = previous.directory / ref.file
            if ref.file in current or not path.is_file():
                continue
            if sha256_file(path) == ref.sha256:
                path.unlink()
                removed.append(ref.file)
            else:
                kept.append(ref.file)
    return removed, kept


def _convert(target: ExportTarget, ctx: ExportContext, path: Path) -> ConverterInfo:
    """Run one exporter quietly; a crash becomes an ExportError naming the target and quoting the
    converter's last lines (what Ultralytics' try_export shows)."""
    with quiet_output() as captured:
        try:
            return target.export_function()(ctx, path)
        except DigitkitError:
            raise
        except Exception as exc:
            failure = exc
    said = captured.tail(3)
    detail = (
        f"{type(failure).__name__}: {str(failure).strip().splitlines()[0] if str(failure).strip() else ''}"
    )
    quoted = f"; the converter said: {' | '.join(said)}" if said else ""
    raise ExportError(
        f"Export to {target.format} {target.mode} ({target.filename}) failed: {detail}{quoted}",
        "Rerun with --debug for the traceback; other targets can be exported alone with --format",
    ) from failure
