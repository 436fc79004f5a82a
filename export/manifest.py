"""Building the manifest (docs/manifest.md) from what an export run produced. Its types, reading and
checking live in the runtime: digitkit.runtime.manifest."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from digitkit.runtime.backends.base import TensorInfo
from digitkit.runtime.hashing import sha256_file
from digitkit.runtime.manifest import (
    ArtifactEntry,
    Calibration,
    CSource,
    Host,
    Manifest,
    Probabilities,
    SourceModel,
    TestSet,
    Tool,
    TrainingSummary,
)
from digitkit.runtime.version import __version__ as digitkit_version

from .formats import ExportTarget

REFERENCE_PROBABILITIES = "reference_probabilities.npy"


@dataclass(frozen=True)
class ConverterInfo:
    """What an exporter reports about the tools that made its file."""

    converter: Tool
    quantizer: Optional[Tool] = None
    opset: Optional[int] = None
    onnx_version: Optional[str] = None
    c: Optional[CSource] = None  # the C target's section, with its companion files
    # The tensors, when the exporter knows them: the C target's, when no C compiler can load it here
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()

    def companion_files(self) -> list[str]:
        return [ref.file for ref in self.c.companion_files()] if self.c else []


@dataclass(frozen=True)
class Reference:
    """The reference model's results on the test set, as the export run computed them."""

    model_path: Path
    predictions: np.ndarray  # (N,) digits
    probabilities_path: Path  # the saved (N, 10) float32 probabilities
    probabilities_shape: tuple[int, ...]
    training: Optional[Mapping[str, Any]] = None  # the training.json record, when there is one


def artifact_entry(
    target: ExportTarget,
    path: Path,
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    info: ConverterInfo,
) -> ArtifactEntry:
    return ArtifactEntry(
        file=path.name,
        format=target.format,
        mode=target.mode,
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        quantization=target.quantization,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        converter=info.converter,
        quantizer=info.quantizer,
        opset=info.opset,
        onnx_version=info.onnx_version,
        c=info.c,
    )


def predictions_string(predictions: np.ndarray) -> str:
    """10,000 digits as one string: compact, diffable, and readable without numpy."""
    return "".join(str(int(d)) for d in predictions)


def build_manifest(
    artifacts: Sequence[ArtifactEntry],
    reference: Reference,
    test_accuracy: float,
    calibration: Calibration,
    data_sha256: Mapping[str, str],
    versions: Mapping[str, str],
) -> Manifest:
    training = TrainingSummary.from_record(reference.training) if reference.training else None
    source = SourceModel(
        file=reference.model_path.name,
        sha256=sha256_file(reference.model_path),
        framework="keras",
        test_accuracy=round(float(test_accuracy), 6),
        test_predictions=predictions_string(reference.predictions),
        test_probabilities=Probabilities(
            reference.probabilities_path.name,
            sha256_file(reference.probabilities_path),
            "float32",
            reference.probabilities_shape,
        ),
        training=training,
    )
    return Manifest(
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        digitkit_version=digitkit_version,
        host=Host(platform.machine(), platform.python_version(), dict(versions)),
        test_set=TestSet("MNIST t10k", len(reference.predictions), dict(data_sha256)),
        source_model=source,
        artifacts=tuple(artifacts),
        calibration=calibration,
    )
