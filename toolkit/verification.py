"""Parity of every artifact on every backend against the Keras model, as a gate.

The reference is what the manifest recorded at export (the Keras model's test accuracy, its 10,000
predictions and probabilities), so verification needs no TensorFlow and runs on a device too.
Checks run in a fixed order (load, shape, accuracy, drop, agreement), and each failure is a typed
object, not a string to parse.
"""

from __future__ import annotations

import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from digitkit.runtime import load
from digitkit.runtime.backends import BACKENDS, backends_for, native_backends_for
from digitkit.runtime.errors import BackendUnavailableError, DigitkitError, InputError
from digitkit.runtime.manifest import ArtifactEntry, Manifest
from digitkit.runtime.model import DigitModel
from digitkit.runtime.version import __version__

BATCH = 1000
CHECKS = ("load", "shape", "accuracy", "drop", "agreement")  # the order they run in


class SkippedWarning(UserWarning):
    """An artifact left out on a backend that cannot run it here (a known limit, not a failure); a
    digitkit category, so the CLI shows it through quiet_output."""


@dataclass(frozen=True)
class Gates:
    min_accuracy: float = 0.95
    max_drop_pp: float = 0.5  # percentage points below the Keras model
    min_agreement: float = 0.99  # fraction of test images with the Keras model's top-1

    def check(self) -> None:
        if not 0.0 <= self.min_accuracy <= 1.0:
            raise InputError(
                f"--min-accuracy {self.min_accuracy} is not a fraction", "Pass a value in [0, 1], e.g. 0.95"
            )
        if not 0.0 <= self.min_agreement <= 1.0:
            raise InputError(
                f"--min-agreement {self.min_agreement} is not a fraction", "Pass a value in [0, 1], e.g. 0.99"
            )
        if not self.max_drop_pp >= 0:
            raise InputError(f"--max-drop {self.max_drop_pp} is negative", "Pass percentage points, e.g. 0.5")


@dataclass(frozen=True)
class GateFailure:
    """One failed check. ``kind`` is one of ``CHECKS``."""

    kind: str
    message: str


@dataclass(frozen=True)
class ParityData:
    """The test set and the Keras model's answers on it, read once from the manifest for every artifact."""

    images: np.ndarray  # uint8 (N, 28, 28)
    labels: np.ndarray
    reference_accuracy: float
    reference_predictions: np.ndarray
    reference_probabilities: Optional[np.ndarray]
    ood_images: Optional[np.ndarray] = None  # toolkit/ood.py's set, built from the same test images
    ood_labels: Optional[np.ndarray] = None

    @classmethod
    def of(cls, manifest: Manifest, images: np.ndarray, labels: np.ndarray) -> ParityData:
        predictions = manifest.reference_predictions()
        if len(predictions) != len(labels):
            raise DigitkitError(
                f"The manifest holds {len(predictions)} reference predictions for {len(labels)} test images",
                "Verify against the MNIST test set the artifacts were exported with",
            )
        accuracy = manifest.source_model.test_accuracy
        from .ood import ood_set

        ood_images, ood_labels = ood_set(images, labels)
        return cls(
            images,
            labels,
            accuracy,
            predictions,
            manifest.reference_probabilities(),
            ood_images,
            ood_labels,
        )


@dataclass
class ParityResult:
    file: str
    format: str
    mode: str
    backend: str
    accuracy: float = float("nan")
    reference_accuracy: float = float("nan")
    drop_pp: float = float("nan")
    agreement: float = float("nan")
    max_abs_prob_diff: Optional[float] = None
    per_class_accuracy: list[float] = field(default_factory=list)
    ms_per_image: float = float("nan")
    ood_accuracy: float = float("nan")  # reported, not gated
    failures: list[GateFailure] = field(default_factory=list)
    predictions: Optional[np.ndarray] = field(default=None, repr=False)
    probabilities: Optional[np.ndarray] = field(default=None, repr=False)  # kept for the report

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("predictions")
        data.pop("probabilities")
        data["us_per_image_batch1000"] = round(1000 * self.ms_per_image, 3)  # verify's, not bench's batch 1
        data["passed"] = self.passed
        data["failures"] = [asdict(f) for f in self.failures]
        return data


def backends_to_run(fmt: str, requested: Optional[Iterable[str]]) -> list[str]:
    if not requested:
        return [spec.name for spec in backends_for(fmt)]
    names = []
    for name in requested:
        if name not in BACKENDS:
            raise InputError(f"Unknown backend {name!r}", f"Use one of: {', '.join(BACKENDS)}")
        if fmt in BACKENDS[name].formats:
            names.append(name)
    return names


def without_unrunnable(names: list[str], file: str, fmt: str, mode: Optional[str]) -> list[str]:
    """``names`` less a backend that cannot run this mode here (an OpenCV before 5.1 and the
    dynamic-range ONNX model), with a warning: a known limit, not a failed artifact."""
    if fmt != "onnx" or "opencv" not in names or mode is None:
        return names
    from digitkit.runtime.backends.opencv import skip_reason

    reason = skip_reason(mode)
    if reason is None:
        return names
    warnings.warn(SkippedWarning(f"{file} skipped on opencv: {reason}"), stacklevel=3)
    return [n for n in names if n != "opencv"]


def file_mode(path: Path, fmt: str) -> Optional[str]:
    """An artifact's mode from the metadata inside it (None when it has none or cannot be read)."""
    from digitkit.runtime.metadata import read_metadata

    try:
        metadata = read_metadata(path.read_bytes(), fmt)
    except (OSError, DigitkitError):
        return None
    return metadata.mode if metadata else None


def evaluate(model: DigitModel, x_test: np.ndarray) -> tuple[np.ndarray, float]:
    """Probabilities for the whole test set in batches, and milliseconds per image."""
    started = time.perf_counter()
    chunks = [model.predict_proba(x_test[i : i + BATCH]) for i in range(0, len(x_test), BATCH)]
    seconds = time.perf_counter() - started
    return np.concatenate(chunks), 1000.0 * seconds / len(x_test)


def run_parity(
    manifest: Manifest, entry: ArtifactEntry, backend: str, data: ParityData, gates: Gates
) -> ParityResult:
    """One artifact on one backend, through every check in order."""
    x_test, y_test = data.images, data.labels
    result = ParityResult(
        entry.file, entry.format, entry.mode, backend, reference_accuracy=data.reference_accuracy
    )
    try:  # hashed once, before any run, by verify_manifest
        model = load(manifest.path_of(entry), backend=backend, verify_hash=False, manifest=manifest)
    except BackendUnavailableError:
        raise
    except DigitkitError as exc:
        result.failures.append(GateFailure("load", exc.one_line()))
        return result
    probabilities, result.ms_per_image = evaluate(model, x_test)
    if probabilities.shape != (len(x_test), 10):
        result.failures.append(
            GateFailure("shape", f"output shape {probabilities.shape}, expected {(len(x_test), 10)}")
        )
        return result
    predictions = probabilities.argmax(axis=1)
    result.predictions, result.probabilities = predictions, probabilities
    result.accuracy = float((predictions == y_test).mean())
    result.drop_pp = 100.0 * (data.reference_accuracy - result.accuracy)
    result.agreement = float((predictions == data.reference_predictions).mean())
    if data.reference_probabilities is not None:
        result.max_abs_prob_diff = float(np.abs(probabilities - data.reference_probabilities).max())
    result.per_class_accuracy = [
        round(float((predictions[y_test == digit] == digit).mean()), 6) for digit in range(10)
    ]
    if data.ood_images is not None:
        ood_predictions = np.concatenate(
            [model.predict(data.ood_images[i : i + BATCH]) for i in range(0, len(data.ood_images), BATCH)]
        )
        result.ood_accuracy = float((ood_predictions == data.ood_labels).mean())
    if not result.accuracy >= gates.min_accuracy:
        result.failures.append(
            GateFailure(
                "accuracy", f"accuracy {result.accuracy:.4f} is below the {gates.min_accuracy:.4f} gate"
            )
        )
    if not result.drop_pp <= gates.max_drop_pp + 1e-9:
        result.failures.append(
            GateFailure(
                "drop",
                f"{result.drop_pp:.2f} pp below Keras, more than the {gates.max_drop_pp:.2f} pp allowed",
            )
        )
    if not result.agreement >= gates.min_agreement:
        result.failures.append(
            GateFailure(
                "agreement",
                f"top-1 agreement {100 * result.agreement:.2f}% is below the {100 * gates.min_agreement:.2f}% gate",
            )
        )
    return result


def plan(
    manifest: Manifest, backends: Optional[Iterable[str]] = None, files: Optional[Iterable[str]] = None
) -> list[tuple[ArtifactEntry, str]]:
    """The (artifact, backend) pairs to run, after checking every artifact's hash: a changed or
    missing file is bad input (exit 2), found before any long run."""
    entries = manifest.select(files)
    if not entries:
        raise DigitkitError(f"{manifest.name} lists no artifacts", "Re-run `digitkit export`")
    for entry in entries:
        manifest.check_artifact(entry)
    requested = list(backends) if backends else None
    pairs: list[tuple[ArtifactEntry, str]] = []
    for entry in entries:
        names = backends_to_run(entry.format, requested)
        if entry.format == "c" and "c" in names:
            from digitkit.runtime.backends.c import unavailable_reason

            manifest.check_companions(entry)
            reason = unavailable_reason()
            if reason is not None:  # a device without a C compiler: the C is for microcontrollers anyway
                warnings.warn(SkippedWarning(f"{entry.file} skipped: {reason}"), stacklevel=2)
                continue
        names = without_unrunnable(names, entry.file, entry.format, entry.mode)
        if not names and not requested:
            extras = " or ".join(f"'digitkit[{s.extra}]'" for s in native_backends_for(entry.format))
            raise BackendUnavailableError(
                f"No runtime for {entry.format} models is installed", f"pip install {extras}"
            )
        pairs.extend((entry, name) for name in names)
    if not pairs:
        raise InputError(
            f"None of the backends {', '.join(requested or [])} runs these artifacts",
            "Drop --backend or pick one that matches the format",
        )
    return pairs


def verify_manifest(
    manifest: Manifest,
    x_test: np.ndarray,
    y_test: np.ndarray,
    gates: Gates = Gates(),
    backends: Optional[Iterable[str]] = None,
    files: Optional[Iterable[str]] = None,
    on_result: Optional[Callable[[ParityResult], None]] = None,
) -> list[ParityResult]:
    """Every artifact in the manifest on every requested (default: installed) backend."""
    gates.check()
    data = ParityData.of(manifest, x_test, y_test)
    results = []
    for entry, backend in plan(manifest, backends, files):
        result = run_parity(manifest, entry, backend, data, gates)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def summary_json(manifest: Manifest, results: list[ParityResult], gates: Gates) -> dict[str, Any]:
    source = manifest.source_model
    return {
        "passed": all(r.passed for r in results),
        "gates": asdict(gates),
        "reference": {
            "framework": source.framework,
            "test_accuracy": source.test_accuracy,
            "sha256": source.sha256,
        },
        "manifest": manifest.name,
        "host": {"machine": platform.machine(), "python": platform.python_version(), "digitkit": __version__},
        "results": [r.to_json() for r in results],
    }
