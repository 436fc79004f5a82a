"""ONNX exporters: tf2onnx from a tf.function with an input signature (from_keras fails on Keras 3),
then ONNX Runtime's quantizers for the int8 modes."""

from __future__ import annotations

import logging
from pathlib import Path

from digitkit.runtime.manifest import Tool

from .context import ExportContext
from .manifest import ConverterInfo

INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"


def fp32_model(ctx: ExportContext):
    """The float ONNX model, converted once per run and shared by the quantized modes."""
    if "onnx_fp32" not in ctx.cache:
        import tf2onnx

        tf = ctx.tf
        model = ctx.model
        signature = [tf.TensorSpec([None, 784], tf.float32, name=INPUT_NAME)]
        function = tf.function(lambda pixels: model(pixels, training=False), input_signature=signature)
        logging.getLogger("tf2onnx").setLevel(logging.ERROR)
        proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=ctx.onnx_opset)
        _rename_output(proto, OUTPUT_NAME)
        proto.producer_name = "digitkit (tf2onnx)"
        ctx.cache["onnx_fp32"] = proto
    return ctx.cache["onnx_fp32"]


def _rename_output(proto, name: str) -> None:
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        for i, output in enumerate(node.output):
            if output == old:
                node.output[i] = name
    proto.graph.output[0].name = name


def _converter_info(ctx: ExportContext, quantizer: bool = False) -> ConverterInfo:
    import onnx
    import tf2onnx

    used = None
    if quantizer:
        import onnxruntime

        used = Tool("onnxruntime.quantization", onnxruntime.__version__)
    return ConverterInfo(Tool("tf2onnx", tf2onnx.__version__), used, ctx.onnx_opset, onnx.__version__)


def export_fp32(ctx: ExportContext, path: Path) -> ConverterInfo:
    import onnx

    onnx.save_model(fp32_model(ctx), str(path))
    return _converter_info(ctx)


def _fp32_file(ctx: ExportContext) -> Path:
    import onnx

    path = ctx.staging / "source_fp32.onnx.tmp"
    if not path.exists():
        onnx.save_model(fp32_model(ctx), str(path))
    return path


def export_int8(ctx: ExportContext, path: Path) -> ConverterInfo:
    """Static QDQ quantization, per-channel int8 weights, int8 activations, MinMax calibration."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(
        str(_fp32_file(ctx)),
        str(path),
        ctx.calibration.onnx_reader(INPUT_NAME),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    return _converter_info(ctx, quantizer=True)


def export_dynamic(ctx: ExportContext, path: Path) -> ConverterInfo:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(str(_fp32_file(ctx)), str(path), weight_type=QuantType.QInt8)
    return _converter_info(ctx, quantizer=True)
