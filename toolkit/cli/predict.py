"""`digitkit predict`: digits for image files, on the device runtime (no TensorFlow). Plain lines, so
that its start-up stays cheap on a device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from .common import (
    DEFAULT_EXPORT_DIR,
    JSON_HELP,
    check_threads,
    echo,
    emit_json,
    error_line,
    json_output,
    preferred_artifact,
    resolve_artifact,
    to_stdout,
)

BACKEND_HELP = "auto, or a backend: litert, tflite-runtime, onnxruntime, opencv, numpy (numpy-micro: TFLite Micro's rounding)."
STDIN = "-"


def default_model(export_dir: Path = DEFAULT_EXPORT_DIR) -> Path:
    """The preferred artifact of the last export (see ``preferred_artifact``)."""
    from digitkit.runtime.errors import ArtifactError
    from digitkit.runtime.manifest import MANIFEST_NAME

    if not (export_dir / MANIFEST_NAME).is_file():
        raise ArtifactError(
            f"No --model given and no export in {export_dir}",
            "Run `digitkit export --int8` or pass --model PATH",
        )
    return preferred_artifact(export_dir)


def predict(
    images: Annotated[
        List[Path],
        typer.Argument(
            help="Image files or directories of them (PNG, JPEG, BMP, PGM/PPM, ...); - reads stdin."
        ),
    ],
    model: Annotated[
        Optional[Path],
        typer.Option(
            help="An artifact file or an export directory (its int8 TFLite; default: the last export)."
        ),
    ] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="Threads the backend may use (1 or more).")] = None,
    json_path: Annotated[
        Optional[str],
        typer.Option(
            "--json",
            help=JSON_HELP + " On stdout one object per line: file, digit, confidence, probabilities,"
            " model, backend; {file, error} for a file that failed.",
        ),
    ] = None,
) -> None:
    """Predict the digit in each image. Bad files are reported one line each; the rest are still predicted."""
    import sys

    import numpy as np

    from digitkit.runtime import load
    from digitkit.runtime.errors import ImageError
    from digitkit.runtime.files import json_text
    from digitkit.runtime.images import expand_image_paths, load_image

    check_threads(threads)
    json_target = json_output(json_path)
    as_lines = to_stdout(json_target)
    path = resolve_artifact(model) if model is not None else default_model()
    runtime_model = load(path, backend=backend, threads=threads)
    records: list[dict[str, Any]] = []

    def failed(name: str, exc: ImageError) -> None:
        error_line(exc.one_line())
        records.append({"file": name, "error": exc.one_line()})
        if as_lines:
            echo(json_text(records[-1], indent=None))

    files: list[Path] = []
    for argument in images:
        if str(argument) == STDIN:
            files.append(Path(STDIN))
            continue
        try:
            files.extend(expand_image_paths([argument]))
        except ImageError as exc:
            failed(str(argument), exc)
    loaded = []
    for file in files:  # expanded once above; each file read once
        try:
            image = load_image(sys.stdin.buffer.read()) if str(file) == STDIN else load_image(file)
            loaded.append((str(file), image))
        except ImageError as exc:
            failed(str(file), exc)
    failures = len(records)
    if loaded:
        probabilities = runtime_model.predict_proba(np.stack([image for _, image in loaded]))
        if not as_lines:
            echo(f"Model: {path} ({runtime_model.format} {runtime_model.mode}) on {runtime_model.backend}")
        width = max(len(name) for name, _ in loaded)
        for (name, _), row in zip(loaded, probabilities):
            order = np.argsort(-row, kind="stable")  # ties resolve as argmax does
            digit, confidence = int(order[0]), float(row[order[0]])
            record = {
                "file": name,
                "digit": digit,
                "confidence": round(confidence, 6),
                "probabilities": [round(float(p), 6) for p in row],
                "model": str(path),
                "backend": runtime_model.backend,
            }
            records.append(record)
            if as_lines:
                echo(json_text(record, indent=None))
            else:
                top3 = " ".join(f"{int(d)}:{row[d]:.3f}" for d in order[:3])
                echo(f"{name:<{width}}  digit {digit}  confidence {confidence:.3f}  top3 {top3}")
    if json_target is not None and not as_lines:
        emit_json(json_target, records)
    if not loaded and not failures:
        raise ImageError("No images found in the given directories", "Pass PNG, JPEG, BMP or PGM files")
    if failures:
        raise typer.Exit(2)
