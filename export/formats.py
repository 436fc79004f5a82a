"""The one table of export targets. It drives export, the CLI's mode flags, their help and their
validation, and the docs: `python -m digitkit.export.formats` prints the Markdown table, and a test
holds the README's and docs/manifest.md's copies to it. Verification runs what a manifest lists (a
device has no export layer); the tests check that it covers every row of this table."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from digitkit.runtime.errors import InputError

if TYPE_CHECKING:
    from .context import ExportContext
    from .manifest import ConverterInfo

FORMATS = ("tflite", "onnx", "c")


@dataclass(frozen=True)
class Mode:
    name: str
    flag: Optional[str]  # the export flag that adds it; None: always exported
    description: str


MODES = {
    "fp32": Mode("fp32", None, "float32 weights and activations, the reference"),
    "fp16": Mode("fp16", "--float16", "float16 weights, float32 compute and I/O"),
    "dynamic": Mode("dynamic", "--dynamic", "int8 weights, activations quantized at run time, float I/O"),
    "int8": Mode("int8", "--int8", "full integer: int8 weights and activations, calibrated"),
    "int8-pixels": Mode(
        "int8-pixels",
        "--int8",
        "the same full-integer model with uint8 pixels in and float32 out, (de)quantizing inside",
    ),
    "int8-c": Mode(
        "int8-c",
        "--c",
        "the int8 model as dependency-free C99 for microcontrollers, bit-exact (with --int8)",
    ),
}


@dataclass(frozen=True)
class ExportTarget:
    format: str
    mode: str
    filename: str
    exporter: str  # "module:function", imported only when this target is exported
    quantization: str
    io: str
    requires: Optional[tuple[str, str]] = None  # (format, mode) of a target it is made from, same run

    def export_function(self) -> Callable[[ExportContext, Path], ConverterInfo]:
        module, _, name = self.exporter.partition(":")
        function: Callable[[ExportContext, Path], ConverterInfo] = getattr(
            importlib.import_module(module), name
        )
        return function


TARGETS = (
    ExportTarget(
        "tflite",
        "fp32",
        "digit_mlp_fp32.tflite",
        "digitkit.export.tflite:export_fp32",
        "none",
        "float32 in, float32 out",
    ),
    ExportTarget(
        "tflite",
        "fp16",
        "digit_mlp_fp16.tflite",
        "digitkit.export.tflite:export_fp16",
        "float16 weights",
        "float32 in, float32 out",
    ),
    ExportTarget(
        "tflite",
        "dynamic",
        "digit_mlp_dynamic.tflite",
        "digitkit.export.tflite:export_dynamic",
        "int8 weights (per-tensor), dynamic-range activations",
        "float32 in, float32 out",
    ),
    ExportTarget(
        "tflite",
        "int8",
        "digit_mlp_int8.tflite",
        "digitkit.export.tflite:export_int8",
        "int8 weights (per-channel) and activations, calibrated",
        "int8 in, int8 out",
    ),
    ExportTarget(
        "tflite",
        "int8-pixels",
        "digit_mlp_int8_pixels.tflite",
        "digitkit.export.tflite:export_int8_pixels",
        "as int8, plus QUANTIZE (uint8 to int8) and DEQUANTIZE ops at its ends",
        "uint8 pixels in, float32 out",
    ),
    ExportTarget(
        "onnx",
        "fp32",
        "digit_mlp_fp32.onnx",
        "digitkit.export.onnx:export_fp32",
        "none",
        "float32 in, float32 out",
    ),
    ExportTarget(
        "onnx",
        "dynamic",
        "digit_mlp_dynamic.onnx",
        "digitkit.export.onnx:export_dynamic",
        "int8 weights, dynamic activations (DynamicQuantizeLinear)",
        "float32 in, float32 out",
    ),
    ExportTarget(
        "onnx",
        "int8",
        "digit_mlp_int8.onnx",
        "digitkit.export.onnx:export_int8",
        "QDQ Gemm: int8 weights (per-channel) and activations, calibrated; int32 biases",
        "float32 in, float32 out",
    ),
    ExportTarget(
        "c",
        "int8-c",
        "digit_mlp_int8.c",
        "digitkit.export.c_source:export_c",
        "the int8 TFLite model's, integer-only inference in C99; plus .h and a TFLite Micro array",
        "uint8 pixels in, int8 probabilities out",
        requires=("tflite", "int8"),
    ),
)


def formats_with(mode: str) -> list[str]:
    return [t.format for t in TARGETS if t.mode == mode]


def modes_of_flag(flag: str) -> list[str]:
    """The modes one export flag adds (``--int8`` adds int8 and int8-pixels)."""
    return [m.name for m in MODES.values() if m.flag == flag]


def flag_help(flag: str) -> str:
    """Each flag's help comes from this table, so the two cannot disagree."""
    parts = [f"{MODES[m].description} ({', '.join(formats_with(m))})" for m in modes_of_flag(flag)]
    return "Add " + "; and ".join(parts) + "."


def select_targets(formats: Optional[Iterable[str]], modes: Iterable[str]) -> list[ExportTarget]:
    """The targets for the requested formats and modes; an impossible combination is an error."""
    chosen_formats = list(dict.fromkeys(formats or FORMATS))
    for fmt in chosen_formats:
        if fmt not in FORMATS:
            raise InputError(f"Unknown format {fmt!r}", f"Use --format with one of: {', '.join(FORMATS)}")
    chosen_modes = list(dict.fromkeys(["fp32", *modes]))
    for mode in chosen_modes:
        if mode not in MODES:
            raise InputError(f"Unknown mode {mode!r}", f"Use one of: {', '.join(MODES)}")
    for flag in dict.fromkeys(f for m in chosen_modes if (f := MODES[m].flag) is not None):
        available = list(
            dict.fromkeys(f for m in modes_of_flag(flag) if m in chosen_modes for f in formats_with(m))
        )
        if formats and not any(fmt in chosen_formats for fmt in available):
            raise InputError(
                f"{flag} is not available for {', '.join(chosen_formats)}",
                f"{flag} exists for: {', '.join(available)}",
            )
    chosen = [t for t in TARGETS if t.format in chosen_formats and t.mode in chosen_modes]
    for target in chosen:
        if target.requires and not any((t.format, t.mode) == target.requires for t in chosen):
            fmt, mode = target.requires
            flag = MODES[target.mode].flag or target.format
            raise InputError(
                f"{flag} needs the {mode} {fmt} model, which this export does not make",
                f"Add {MODES[mode].flag}"
                + (f" and --format {fmt}" if formats and fmt not in chosen_formats else ""),
            )
    return chosen


def markdown_table() -> str:
    rows = ["| format | mode | flag | file | quantization | I/O |", "| --- | --- | --- | --- | --- | --- |"]
    for t in TARGETS:
        rows.append(
            f"| {t.format} | {t.mode} | {MODES[t.mode].flag or '(always)'} | `{t.filename}` | {t.quantization} | {t.io} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
