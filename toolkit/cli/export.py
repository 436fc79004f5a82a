"""`digitkit export`: TFLite and ONNX artifacts, float and int8, C99 for microcontrollers, with their manifest.

The mode flags and their help come from the format table (digitkit.export.formats)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from digitkit.export.formats import FORMATS, MODES, flag_help, modes_of_flag

from .common import DEFAULT_EXPORT_DIR, DEFAULT_TRAIN_DIR, echo, human_size, print_table


def export(
    model: Annotated[
        Path, typer.Option(help="The trained model.keras (default: the last `digitkit train` output).")
    ] = DEFAULT_TRAIN_DIR / "model.keras",
    out: Annotated[
        Path, typer.Option(help="Directory for the artifacts and manifest.json.")
    ] = DEFAULT_EXPORT_DIR,
    int8: Annotated[bool, typer.Option(MODES["int8"].flag, help=flag_help("--int8"))] = False,
    float16: Annotated[bool, typer.Option(MODES["fp16"].flag, help=flag_help("--float16"))] = False,
    dynamic: Annotated[bool, typer.Option(MODES["dynamic"].flag, help=flag_help("--dynamic"))] = False,
    c: Annotated[bool, typer.Option(MODES["int8-c"].flag, help=flag_help("--c"))] = False,
    c_rounding: Annotated[
        str,
        typer.Option(
            help="The C's rounding: litert (equals LiteRT's default x86 path) or tflite-micro (equals TFLite Micro)."
        ),
    ] = "litert",
    formats: Annotated[
        Optional[List[str]],
        typer.Option("--format", help=f"Restrict to a format: {' or '.join(FORMATS)} (repeatable)."),
    ] = None,
    calibration_size: Annotated[
        int, typer.Option(help="Training images used to calibrate int8 models.")
    ] = 500,
    calibration_seed: Annotated[int, typer.Option(help="Seed choosing the calibration images.")] = 0,
    opset: Annotated[int, typer.Option(help="ONNX opset (13 to 18).")] = 17,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Directory with the four MNIST .gz files [env: DIGITKIT_DATA].")
    ] = None,
) -> None:
    """Convert model.keras to TFLite and ONNX; --int8 adds the quantized models."""
    from digitkit.export.calibration import CalibrationSet
    from digitkit.export.formats import select_targets
    from digitkit.export.pipeline import ExportRequest, require_model_file, run_export
    from digitkit.runtime.errors import InputError
    from digitkit.toolkit.data import data_checksums, load_mnist
    from digitkit.toolkit.training import read_record

    flags = {"--float16": float16, "--dynamic": dynamic, "--int8": int8, "--c": c}
    modes = [mode for flag, on in flags.items() if on for mode in modes_of_flag(flag)]
    targets = select_targets([f.lower() for f in formats] if formats else None, modes)
    if not 13 <= opset <= 18:
        raise InputError(
            f"--opset {opset} is outside 13 to 18", "tf2onnx 1.17 writes opsets 13 to 18; use 17"
        )
    if c_rounding not in ("litert", "tflite-micro"):
        raise InputError(f"--c-rounding {c_rounding!r} is unknown", "Use litert or tflite-micro")
    require_model_file(model)
    (x_train, _), (x_test, y_test) = load_mnist(data_dir)
    calibration = CalibrationSet.from_training_set(x_train, size=calibration_size, seed=calibration_seed)
    request = ExportRequest(
        model,
        out,
        targets,
        calibration,
        x_test,
        y_test,
        data_checksums(),
        read_record(model),
        opset,
        c_rounding,
    )
    result = run_export(request)

    fp32_size = {a.target.format: a.size_bytes for a in result.artifacts if a.target.mode == "fp32"}
    rows = []
    for a in result.artifacts:
        ratio = a.size_bytes / fp32_size[a.target.format] if a.target.format in fp32_size else float("nan")
        rows.append(
            [
                a.target.format,
                a.target.mode,
                a.path.name,
                human_size(a.size_bytes),
                f"{ratio:.2f}x" if ratio == ratio else "n/a",
                f"{a.accuracy:.4f}" if a.accuracy == a.accuracy else "n/a",
                f"{a.accuracy - result.source_accuracy:+.4f}" if a.accuracy == a.accuracy else "n/a",
                a.backend,
                f"{a.seconds:.1f}",
            ]
        )
    print_table(
        ["format", "mode", "file", "size", "vs fp32", "accuracy", "vs keras", "backend", "export s"], rows
    )
    echo(f"Keras model: accuracy {result.source_accuracy:.4f}. Manifest: {result.manifest_path}")
    echo("Next:")
    echo(f"  digitkit verify {out}")
    int8_tflite = [
        a.path
        for mode in ("int8-pixels", "int8")
        for a in result.artifacts
        if a.target.format == "tflite" and a.target.mode == mode
    ]
    first = (int8_tflite or [result.artifacts[0].path])[0]
    echo(f"  digitkit info {first}")
    echo(f"  digitkit predict IMAGE.png --model {first}")
