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


# The int8 model's biases are int32, scaled input_scale × weight_scale (ONNX Runtime's QuantizeBias),
# each added by a Sum after its Gemm rather than as Gemm's C input (`bias_after_gemm`): with C =
# DequantizeLinear(int32) OpenCV 4.x gets every image of a batch but the first wrong and OpenCV 5.x
# cannot load the model. docs/onnx-clients.md has the measurements; False keeps float32 biases in C.
INT32_BIASES = True


def export_int8(ctx: ExportContext, path: Path) -> ConverterInfo:
    """Static QDQ quantization of the Gemm graph: per-channel int8 weights, int8 activations, MinMax
    calibration; biases as ``INT32_BIASES`` says."""
    import onnx
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
    if INT32_BIASES:
        model = onnx.load_model(str(path))
        bias_after_gemm(model)
        onnx.save_model(model, str(path))
    return _converter_info(ctx, quantizer=True)


def bias_after_gemm(model) -> int:
    """Each Gemm(A, B, DequantizeLinear(int32 bias)) becomes Sum(Gemm(A, B), DequantizeLinear(bias)),
    the bias reshaped from [N] to [1, N] (per-channel scales then on axis 1); returns how many.

    The same values in a form every client handles. OpenCV 4.x folds the bias's DequantizeLinear into
    a constant without the 1-D mark an initializer gets (real_ndims_C), so its Gemm takes C as M×N and
    copies M×N values from N: only the first image of a batch gets its bias. A [1, N] operand of an
    elementwise op broadcasts there. OpenCV 5.x cannot load a Gemm whose C is a DequantizeLinear output
    (`bufidx >= 0` in argTensor). ONNX Runtime fuses Gemm + Sum back into one Gemm (GemmSumFusion)
    before its QDQ fusion, so it runs the same QGemm as for its own form, with identical outputs."""
    from onnx import TensorProto, helper

    initializers = {i.name: i for i in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    rewritten = 0
    for gemm in [n for n in model.graph.node if n.op_type == "Gemm" and len(n.input) == 3]:
        if any(a.name == "beta" and a.f != 1.0 for a in gemm.attribute):  # Sum adds C unscaled
            continue
        dequantize = producers.get(gemm.input[2])
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            continue
        bias = initializers.get(dequantize.input[0])
        if bias is None or bias.data_type != TensorProto.INT32 or len(bias.dims) != 1:
            continue
        width = bias.dims[0]
        del bias.dims[:]
        bias.dims.extend([1, width])
        if len(initializers[dequantize.input[1]].dims) == 1:  # per-channel scale
            del dequantize.attribute[:]
            dequantize.attribute.append(helper.make_attribute("axis", 1))
        output = gemm.output[0]
        gemm.output[0] = f"{output}_without_bias"
        bias_sum = helper.make_node(
            "Sum", [gemm.output[0], gemm.input.pop()], [output], name=f"{gemm.name}_bias"
        )
        model.graph.node.insert(list(model.graph.node).index(gemm) + 1, bias_sum)
        rewritten += 1
    return rewritten


def export_dynamic(ctx: ExportContext, path: Path) -> ConverterInfo:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(str(_fp32_file(ctx)), str(path), weight_type=QuantType.QInt8)
    return _converter_info(ctx, quantizer=True)
