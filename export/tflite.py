"""TFLite exporters, one small function per mode, all through TFLiteConverter.from_keras_model.

(from_concrete_functions with a Keras 3 model leaves the weights as variables: NaN outputs.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from digitkit.runtime.manifest import Tool

from .context import ExportContext
from .manifest import ConverterInfo


def _converter(ctx: ExportContext) -> Any:
    return ctx.tf.lite.TFLiteConverter.from_keras_model(ctx.model)


def _write(ctx: ExportContext, converter: Any, path: Path) -> ConverterInfo:
    path.write_bytes(converter.convert())
    return ConverterInfo(Tool("tensorflow.lite.TFLiteConverter", ctx.tf.__version__))


def export_fp32(ctx: ExportContext, path: Path) -> ConverterInfo:
    return _write(ctx, _converter(ctx), path)


def export_fp16(ctx: ExportContext, path: Path) -> ConverterInfo:
    converter = _converter(ctx)
    converter.optimizations = [ctx.tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [ctx.tf.float16]
    return _write(ctx, converter, path)


def export_dynamic(ctx: ExportContext, path: Path) -> ConverterInfo:
    """Per-tensor weights for dense layers: FULLY_CONNECTED v9, which tflite-runtime 2.14 still runs
    (the per-channel default writes v12, which it rejects)."""
    converter = _converter(ctx)
    converter.optimizations = [ctx.tf.lite.Optimize.DEFAULT]
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return _write(ctx, converter, path)


def _full_integer(ctx: ExportContext, input_type: Any, output_type: Any) -> Any:
    tf = ctx.tf
    converter = _converter(ctx)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = ctx.calibration.representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = input_type
    converter.inference_output_type = output_type
    return converter


def export_int8(ctx: ExportContext, path: Path) -> ConverterInfo:
    """Full integer: int8 weights, activations, input and output, calibrated on training images."""
    return _write(ctx, _full_integer(ctx, ctx.tf.int8, ctx.tf.int8), path)


def export_int8_pixels(ctx: ExportContext, path: Path) -> ConverterInfo:
    """The int8 model with uint8 input (scale 1/255, zero point 0: raw pixels) and float32 output.

    The converter adds a QUANTIZE op (uint8 to int8, an exact shift by 128) and a DEQUANTIZE op, so
    a device hands it camera pixels and reads probabilities: the interpreter does the conversions
    in C++, and the answers equal the int8 model's, dequantized."""
    return _write(ctx, _full_integer(ctx, ctx.tf.uint8, ctx.tf.float32), path)
