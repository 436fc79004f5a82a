"""`digitkit predict`: digits for image files, on the device runtime (no TensorFlow). Plain lines, so
that its start-up stays cheap on a device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .common import DEFAULT_EXPORT_DIR, echo, error_line

BACKEND_HELP = "auto, or a backend: litert, tflite-runtime, onnxruntime, opencv, numpy (numpy-micro: TFLite Micro's rounding)."


def default_model(export_dir: Path = DEFAULT_EXPORT_DIR) -> Path:
    """The int8 TFLite artifact of the last export: the pixels-in one (same answers, no conversions
    in Python), else the int8-in one, else its first TFLite, else its first artifact."""
    from digitkit.runtime.errors import ArtifactError
    from digitkit.runtime.manifest import MANIFEST_NAME, read_manifest

    if not (export_dir / MANIFEST_NAME).is_file():
        raise ArtifactError(
            f"No --model given and no export in {export_dir}",
            "Run `digitkit export --int8` or pass --model PATH",
        )
    manifest = read_manifest(export_dir)
    preference = ("int8-pixels", "int8")
    ranked = sorted(
        manifest.artifacts,
        key=lambda e: (
            e.format != "tflite",
            preference.index(e.mode) if e.mode in preference else len(preference),
        ),
    )
    if not ranked:
        raise ArtifactError(
            f"{manifest.name} lists no artifacts", "Run `digitkit export --int8` or pass --model PATH"
        )
    return manifest.path_of(ranked[0])


def predict(
    images: Annotated[
        List[Path], typer.Argument(help="Image files or directories of them (PNG, JPEG, BMP, PGM/PPM, ...).")
    ],
    model: Annotated[
        Optional[Path],
        typer.Option(help="A .tflite or .onnx artifact (default: the int8 TFLite of the last export)."),
    ] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="Threads the backend may use.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line: file, digit, confidence, probabilities.")
    ] = False,
) -> None:
    """Predict the digit in each image. Bad files are reported one line each; the rest are still predicted."""
    import json

    import numpy as np

    from digitkit.runtime import load
    from digitkit.runtime.errors import ImageError
    from digitkit.runtime.images import expand_image_paths, load_image
    from digitkit.runtime.quiet import quiet_output

    with quiet_output():
        runtime_model = load(model or default_model(), backend=backend, threads=threads)
    failures = 0
    files: list[Path] = []
    for argument in images:
        try:
            files.extend(expand_image_paths([argument]))
        except ImageError as exc:
            failures += 1
            error_line(exc.one_line())
    loaded = []
    for path in files:  # expanded once above; each file read once
        try:
            loaded.append((path, load_image(path)))
        except ImageError as exc:
            failures += 1
            error_line(exc.one_line())
    if loaded:
        probabilities = runtime_model.predict_proba(np.stack([image for _, image in loaded]))
        for (path, _), row in zip(loaded, probabilities):
            order = np.argsort(-row, kind="stable")  # ties resolve as argmax does
            digit, confidence = int(order[0]), float(row[order[0]])
            if as_json:
                echo(
                    json.dumps(
                        {
                            "file": str(path),
                            "digit": digit,
                            "confidence": round(confidence, 6),
                            "probabilities": [round(float(p), 6) for p in row],
                        }
                    )
                )
            else:
                top3 = " ".join(f"{int(d)}:{row[d]:.3f}" for d in order[:3])
                echo(f"{path}  digit {digit}  confidence {confidence:.3f}  top3 {top3}")
    if not loaded and not failures:
        raise ImageError("No images found in the given directories", "Pass PNG, JPEG, BMP or PGM files")
    if failures:
        raise typer.Exit(2)
