"""TFLite exporters, one small function per mode, all through TFLiteConverter.from_keras_model.

(from_concrete_functions with a Keras 3 model leaves the weights as variables: NaN outputs.)
"""
from __future__ import annotations

from pathlib import Path

from .context import ExportContext


def _converter(ctx: ExportContext):
    return ctx.tf.lite.TFLiteConverter.from_keras_model(ctx.model)


def _write(converter, path: Path) -> dict:
    path.write_bytes(converter.convert())
    return {"converter": {"name": "tensorflow.lite.TFLiteConverter", "version": _tf_version()}}


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


def export_fp32(ctx: ExportContext, path: Path) -> dict:
    return _write(_converter(ctx), path)


def export_fp16(ctx: ExportContext, path: Path) -> dict:
    converter = _converter(ctx)
    converter.optimizations = [ctx.tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [ctx.tf.float16]
    return _write(converter, path)


def export_dynamic(ctx: ExportContext, path: Path) -> dict:
    """Per-tensor weights for dense layers: FULLY_CONNECTED v9, which tflite-runtime 2.14 still runs
    (the per-channel default writes v12, which it rejects)."""
    converter = _converter(ctx)
    converter.optimizations = [ctx.tf.lite.Optimize.DEFAULT]
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return _write(converter, path)


def export_int8(ctx: ExportContext, path: Path) -> dict:
    """Full integer: int8 weights, activations, input and output, calibrated on training images."""
    tf = ctx.tf
    converter = _converter(ctx)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = ctx.calibration.representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return _write(converter, path)
