"""``load()``: an artifact on a backend, behind ``predict`` and ``predict_proba``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from numpy.typing import ArrayLike

from .backends import open_session
from .backends.base import Session
from .errors import ArtifactError
from .manifest import ArtifactEntry, Manifest, check_file_hash, find_manifest_for
from .metadata import ArtifactMetadata, read_metadata
from .preprocess import as_batch, input_writer, output_reader
from .validate import CHECKS, detect_format


class DigitModel:
    """A loaded digit classifier. Thread-safe: one instance may serve many threads."""

    def __init__(
        self,
        path: Path,
        session: Session,
        fmt: str,
        manifest: Optional[Manifest] = None,
        metadata: Optional[ArtifactMetadata] = None,
    ) -> None:
        self.path = path
        self.format = fmt
        self.session = session
        self.manifest = manifest
        self.entry: Optional[ArtifactEntry] = manifest.entry_for(path.name) if manifest else None
        self.metadata = metadata  # what the file says about itself, read where no manifest lists it
        self.input_info = session.inputs[0]
        self.output_info = session.outputs[0]
        self._run_batch = session.runner(input_writer(self.input_info))
        self._read = output_reader(self.output_info)

    @property
    def backend(self) -> str:
        return self.session.backend_name

    @property
    def mode(self) -> str:
        if self.entry:
            return self.entry.mode
        if self.metadata:
            return self.metadata.mode
        return "int8" if self.input_info.quantized else "unknown"

    def predict_proba(self, x: ArrayLike) -> np.ndarray:
        """Class probabilities, (N, 10) float32, for uint8 pixels or floats in [0, 1]."""
        probabilities: np.ndarray = self._read(self._run_batch(as_batch(x)))
        return probabilities

    def predict(self, x: ArrayLike) -> np.ndarray:
        """The digit for each image, (N,) int64. Dequantizing keeps the order of a quantized output
        (its scale is positive), so the argmax is taken on the raw output."""
        digits: np.ndarray = self._run_batch(as_batch(x)).argmax(axis=1)
        return digits

    def __repr__(self) -> str:
        return f"DigitModel({self.path.name!r}, format={self.format!r}, mode={self.mode!r}, backend={self.backend!r})"


def read_artifact(
    path: str | Path, verify_hash: bool = True, manifest: Optional[Manifest] = None
) -> tuple[Path, bytes, str, Optional[Manifest]]:
    """The artifact's bytes and format, checked against its manifest (if any) and for structure.

    ``manifest``: one the caller has read already (verify loads many artifacts from one), else the
    one beside the file is read, if any."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist", "Pass the path of a .tflite or .onnx artifact")
    if manifest is None:
        manifest = find_manifest_for(path)
    entry = manifest.entry_for(path.name) if manifest is not None else None
    if manifest is not None and entry is None:
        raise ArtifactError(
            f"{path.name} is not listed in {manifest.name}", "Pass an artifact the manifest lists"
        )
    if entry is not None and verify_hash:
        check_file_hash(path, entry.sha256)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(
            f"{path} cannot be read ({exc.strerror})", "Check the file's permissions"
        ) from exc
    fmt = detect_format(path, data)
    CHECKS[fmt](path, data)
    return path, data, fmt, manifest


def load(
    path: str | Path,
    backend: str = "auto",
    threads: Optional[int] = None,
    verify_hash: bool = True,
    manifest: Optional[Manifest] = None,
) -> DigitModel:
    """Load a .tflite or .onnx digit model.

    ``backend`` is ``auto`` (LiteRT, then tflite-runtime, for TFLite; onnxruntime for ONNX) or a
    name from ``digitkit.runtime.BACKENDS``. When a manifest lies beside the file, the file must
    match its recorded sha256: a changed artifact is refused before a runtime sees it. ``manifest``
    saves re-reading one the caller already holds.
    """
    path, data, fmt, manifest = read_artifact(path, verify_hash=verify_hash, manifest=manifest)
    session = open_session(data, fmt, backend=backend, threads=threads)
    if len(session.inputs) != 1 or len(session.outputs) != 1:
        raise ArtifactError(
            f"{path} has {len(session.inputs)} inputs and {len(session.outputs)} outputs, not one each",
            "Export the digit MLP with `digitkit export`",
        )
    last = session.inputs[0].shape[-1] if session.inputs[0].shape else None
    if last != 784:
        raise ArtifactError(
            f"{path} takes inputs of shape {session.inputs[0].shape}, not (N, 784)",
            "Export the digit MLP with `digitkit export`",
        )
    metadata = None
    if manifest is None:  # the file's own account of itself; a damaged one only costs the mode
        try:
            metadata = read_metadata(data, fmt)
        except ArtifactError:
            metadata = None
    return DigitModel(path, session, fmt, manifest, metadata)
