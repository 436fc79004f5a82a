"""ONNX exporters: tf2onnx from a tf.function with an input signature (from_keras fails on Keras 3),
each MatMul + Add fused into one Gemm by ONNX Runtime's basic graph optimizer, then ONNX Runtime's
quantizers for the int8 modes.

Why Gemm: tf2onnx writes a dense layer as MatMul then Add, and OpenCV 4.x (what a Raspberry Pi gets
from apt) cannot load the int8 model built from that ("findCommonShape" on the BiasAdd). tf2onnx,
onnxoptimizer and onnxslim fuse only when the batch is fixed; ONNX Runtime's basic level (standard
ONNX ops only, no contrib ops) fuses with the batch left dynamic. docs/onnx-clients.md has the
measurements behind each choice.
"""

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
        proto = fuse_gemm(proto, ctx.staging)
        proto.producer_name = "digitkit (tf2onnx, onnxruntime)"
        ctx.cache["onnx_fp32"] = proto
    return ctx.cache["onnx_fp32"]


def fuse_gemm(proto, workdir: Path):
    """The model with each MatMul + bias Add as one Gemm: ONNX Runtime's basic-level optimizer
    (standard-ONNX rewrites only), saved offline. It lists every domain it knows among the opset
    imports; only the ones the graph uses are kept, so other clients see a plain opset-N model."""
    import onnx
    import onnxruntime as ort

    source, fused = workdir / "unfused.onnx.tmp", workdir / "fused.onnx.tmp"
    onnx.save_model(proto, str(source))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(fused)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    model = onnx.load_model(str(fused))
    source.unlink()
    fused.unlink()
    used = {node.domain for node in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return model


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


# Biases stay float32 inside the int8 Gemm graph. With int32 biases (ONNX Runtime's default, scaled
# input_scale × weight_scale) OpenCV 5.x cannot load the model (`bufidx >= 0` in argTensor) and
# OpenCV 4.x computes only the first image of a batch right: both need Gemm's C input constant.
# Measured in docs/onnx-clients.md; True writes the int32 form for clients that want it.
INT32_BIASES = False


def export_int8(ctx: ExportContext, path: Path) -> ConverterInfo:
    """Static QDQ quantization of the Gemm graph: per-channel int8 weights, int8 activations, MinMax
    calibration; biases as ``INT32_BIASES`` says."""
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
        extra_options={"QuantizeBias": INT32_BIASES},
    )
    return _converter_info(ctx, quantizer=True)


def export_dynamic(ctx: ExportContext, path: Path) -> ConverterInfo:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(str(_fp32_file(ctx)), str(path), weight_type=QuantType.QInt8)
    return _converter_info(ctx, quantizer=True)
