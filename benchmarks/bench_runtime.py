"""Inference: digitkit's runtime against the bare backend it wraps, and against what a user would run instead.

Part A (no TensorFlow in the process, as on a device), for every artifact in the export's manifest:
  * digitkit: ``digitkit.runtime.load(path, threads=1).predict_proba(x)`` fed the natural device input
    (uint8 28x28 images) and, separately, float32 [0, 1] pixels (N, 784);
  * bare: the backend called directly with input ALREADY in the model's dtype (pre-quantized int8 for
    the int8 TFLite model, float32 otherwise): LiteRT ``Interpreter(num_threads=1)`` with
    set_tensor / invoke / get_tensor, or an onnxruntime ``InferenceSession`` (intra_op_num_threads=1)
    with ``sess.run``.
  Batch 1: in each of several fresh processes (default 7), the median latency over every call, calls
  timed one by one in alternating blocks (default 10 blocks of 500 calls per variant); the ratio is the
  median over processes of each process's digitkit / bare, with its range. Fresh processes because a
  ratio of a few microseconds moves by 10% or more from one process to the next (where the allocator
  and the loader put buffers and code), which one process cannot show. Batch 1000: median time per
  call, alternating blocks, as images/s. The ratio digitkit / bare is the runtime's overhead (1.00x =
  none). Goals: <= 1.15x at batch 1, <= 1.05x at batch 1000 (reported, not asserted).

Part B (TensorFlow imported afterwards, intra/inter-op threads set to 1): TensorFlow's own
``tf.lite.Interpreter(num_threads=1)`` on each .tflite file and Keras ``model(x, training=False)`` /
``model.predict`` on the fp32 model.keras, each interleaved with digitkit's runtime (uint8 input) so
their ratios come from side-by-side measurements.

    python benchmarks/bench_runtime.py [--export-dir DIR] [--keras model.keras] [--quick] [--json out.json]

Without --export-dir a 1-epoch model is trained and exported into a temp dir first.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

import benchlib
from benchlib import Table, fmt_ms, fmt_rate, fmt_ratio, fmt_us, goal, summarize_all, time_interleaved

GOAL_BATCH1 = 1.15
GOAL_BATCH1000 = 1.05
THREADS = 1


@dataclass
class Config:
    b1_processes: int = 7
    b1_blocks: int = 10
    b1_calls: int = 500
    big_blocks: int = 20
    big_calls: int = 3
    big_batch: int = 1000
    keras_b1_blocks: int = 20
    keras_b1_calls: int = 25
    keras_big_blocks: int = 8
    keras_big_calls: int = 2

    @classmethod
    def quick(cls) -> "Config":
        return cls(b1_processes=3, b1_blocks=4, b1_calls=200, big_blocks=4, big_calls=2, keras_b1_blocks=4, keras_b1_calls=10, keras_big_blocks=2, keras_big_calls=1)


def test_images(count: int) -> np.ndarray:
    from digitkit.toolkit.data import load_mnist_test

    x_test, _ = load_mnist_test()
    return np.ascontiguousarray(x_test[np.arange(count) % len(x_test)])


def to_model_input(images: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    """uint8 (N, 28, 28) -> (N, 784) in the model's own input type (done once, outside the timing)."""
    x = images.reshape(len(images), 784).astype(np.float32) / np.float32(255.0)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.ascontiguousarray(x.astype(dtype))
    limits = np.iinfo(dtype)
    return np.clip(np.rint(x / np.float32(scale)) + zero_point, limits.min, limits.max).astype(dtype)


# ----------------------------------------------------------------------------- bare backends

def bare_litert(path: Path, batch: int, interpreter_class=None) -> tuple[Callable, dict]:
    """A set_tensor / invoke / get_tensor loop on an interpreter allocated for ``batch``."""
    if interpreter_class is None:
        from ai_edge_litert.interpreter import Interpreter as interpreter_class
    interpreter = interpreter_class(model_path=str(path), num_threads=THREADS)
    detail = interpreter.get_input_details()[0]
    in_index, out_index = detail["index"], interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(in_index, [batch, 784], strict=False)
    interpreter.allocate_tensors()

    def call(x):
        interpreter.set_tensor(in_index, x)
        interpreter.invoke()
        return interpreter.get_tensor(out_index)

    scale, zero_point = detail.get("quantization", (0.0, 0))
    out = interpreter.get_output_details()[0]
    out_scale, out_zero_point = out.get("quantization", (0.0, 0))
    return call, {"dtype": np.dtype(detail["dtype"]), "scale": scale, "zero_point": zero_point,
                  "out_dtype": np.dtype(out["dtype"]), "out_scale": out_scale, "out_zero_point": out_zero_point}


def bare_onnxruntime(path: Path) -> tuple[Callable, dict]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    in_name, out_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    types = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}
    in_type = types[session.get_inputs()[0].type]
    outputs = [out_name]

    def call(x):
        return session.run(outputs, {in_name: x})[0]

    return call, {"dtype": np.dtype(in_type), "scale": 0.0, "zero_point": 0, "out_dtype": np.dtype(np.float32), "out_scale": 0.0, "out_zero_point": 0}


def bare_with_conversions(bare: Callable, info: dict) -> Callable:
    """The bare call plus the conversions a user of the bare backend must write to go from one uint8
    (28, 28) image to float32 probabilities, in the fastest numpy we know (the same operations
    digitkit uses): digitkit / this is the cost of digitkit's layer alone, conversions aside."""
    dtype, out_dtype = info["dtype"], info["out_dtype"]
    if dtype == np.float32:
        scale = np.float32(1 / 255)

        def convert_in(image):
            x = image.reshape(1, 784).astype(np.float32)
            x *= scale
            return x
    elif dtype == np.int8 and info["zero_point"] == -128:
        def convert_in(image):
            return np.bitwise_xor(image.reshape(1, 784), np.uint8(0x80)).view(np.int8)
    elif dtype == np.uint8 and info["zero_point"] == 0:
        def convert_in(image):
            return image.reshape(1, 784)
    else:
        raise ValueError(f"no conversion for input {dtype} zero point {info['zero_point']}")
    if out_dtype == np.float32:
        return lambda image: bare(convert_in(image))
    codes = np.arange(256, dtype=np.uint8).view(out_dtype).astype(np.float32)
    table = (codes - np.float32(info["out_zero_point"])) * np.float32(info["out_scale"])
    return lambda image: table.take(bare(convert_in(image)))


# ----------------------------------------------------------------------------- part A

def open_bare(path: Path, batch: int) -> tuple[Callable, dict]:
    return bare_litert(path, batch) if path.suffix == ".tflite" else bare_onnxruntime(path)


def batch1_worker(path: Path, blocks: int, calls: int) -> dict:
    """One process's batch-1 medians for digitkit (uint8 and float32 input) and the bare backend."""
    from digitkit.runtime import load

    model = load(path, threads=THREADS)
    bare1, info = open_bare(path, 1)
    images1 = test_images(1)
    typed1 = to_model_input(images1, info["dtype"], info["scale"], info["zero_point"])
    float1 = images1.reshape(1, 784).astype(np.float32) / np.float32(255.0)
    natural1 = images1[0]  # one uint8 (28, 28) image, as a camera or file loader gives it
    converting = bare_with_conversions(bare1, info)
    assert np.allclose(converting(natural1), model.predict_proba(natural1), atol=1e-6)
    return summarize_all(time_interleaved(
        {
            "digitkit_uint8": (model.predict_proba, natural1), "digitkit_float32": (model.predict_proba, float1),
            "bare": (bare1, typed1), "bare_converting": (converting, natural1),
        },
        blocks, calls,
    ))


def batch1_across_processes(path: Path, cfg: Config, log) -> dict:
    """batch1_worker in ``cfg.b1_processes`` fresh processes: per variant the median of the process
    medians, and per digitkit variant the median, min and max over processes of digitkit / bare."""
    import subprocess

    runs = []
    for _ in range(cfg.b1_processes):
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--batch1-worker", str(path), "--blocks", str(cfg.b1_blocks), "--calls", str(cfg.b1_calls)],
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"batch-1 worker failed on {path.name}: {done.stderr.strip()[-400:]}")
        runs.append(benchlib.last_json_line(done.stdout))
    out = {}
    for name in runs[0]:
        out[name] = {key: float(np.median([r[name][key] for r in runs])) for key in runs[0][name] if key != "n"}
        out[name]["n"] = int(sum(r[name]["n"] for r in runs))
        out[name]["process_medians"] = [r[name]["median"] for r in runs]
    out["digitkit_uint8"]["ratio_to_bare_converting"] = float(np.median([r["digitkit_uint8"]["median"] / r["bare_converting"]["median"] for r in runs]))
    for name in ("digitkit_uint8", "digitkit_float32"):
        ratios = [r[name]["median"] / r["bare"]["median"] for r in runs]
        cpu_ratios = [r[name]["cpu_median"] / r["bare"]["cpu_median"] for r in runs]
        out[name]["ratio_per_process"] = ratios
        out[name]["ratio"] = float(np.median(ratios))
        out[name]["cpu_ratio"] = float(np.median(cpu_ratios))
    return out


def bench_artifact(path: Path, entry: dict, cfg: Config, images1: np.ndarray, images_big: np.ndarray, log) -> dict:
    from digitkit.runtime import load

    model = load(path, threads=THREADS)
    bare_big, info = open_bare(path, len(images_big))
    typed_big = to_model_input(images_big, info["dtype"], info["scale"], info["zero_point"])
    float_big = images_big.reshape(len(images_big), 784).astype(np.float32) / np.float32(255.0)
    natural_big = images_big  # uint8 (N, 28, 28)

    # Same answers, or the comparison is meaningless.
    agree = float(np.mean(model.predict_proba(natural_big).argmax(1) == np.asarray(bare_big(typed_big)).argmax(1)))

    log(f"[runtime] {path.name}: batch 1 ({cfg.b1_processes} processes x {cfg.b1_blocks} blocks x {cfg.b1_calls} calls per variant)")
    b1s = batch1_across_processes(path, cfg, log)
    log(f"[runtime] {path.name}: batch {len(images_big)} ({cfg.big_blocks} blocks x {cfg.big_calls} calls per variant)")
    big = time_interleaved(
        {
            "digitkit_uint8": (model.predict_proba, natural_big),
            "digitkit_float32": (model.predict_proba, float_big),
            "bare": (bare_big, typed_big),
        },
        cfg.big_blocks, cfg.big_calls, warmup=3, cpu_per_call=True,
    )
    bigs = summarize_all(big)
    for s in bigs.values():
        s["images_per_s"] = len(images_big) / s["median"]
        s["images_per_cpu_s"] = len(images_big) / s["cpu_median"]
    result = {
        "file": path.name, "format": entry["format"], "mode": entry["mode"], "backend": model.backend,
        "model_input_dtype": info["dtype"].name, "bare_input": f"{info['dtype'].name} (N, 784), prepared before timing",
        "top1_agreement_digitkit_vs_bare": agree,
        "batch1_seconds": b1s, f"batch{len(images_big)}_seconds": bigs,
        "batch1_processes": cfg.b1_processes,
        "batch1_ratio_uint8": b1s["digitkit_uint8"]["ratio"],
        "batch1_ratio_float32": b1s["digitkit_float32"]["ratio"],
        "batch1_ratio_range_uint8": [min(b1s["digitkit_uint8"]["ratio_per_process"]), max(b1s["digitkit_uint8"]["ratio_per_process"])],
        "batch1_ratio_range_float32": [min(b1s["digitkit_float32"]["ratio_per_process"]), max(b1s["digitkit_float32"]["ratio_per_process"])],
        "batch1_overhead_us_uint8": (b1s["digitkit_uint8"]["median"] - b1s["bare"]["median"]) * 1e6,
        "batch1_ratio_uint8_to_bare_converting": b1s["digitkit_uint8"]["ratio_to_bare_converting"],
        "batch1_overhead_us_float32": (b1s["digitkit_float32"]["median"] - b1s["bare"]["median"]) * 1e6,
        "batch1_cpu_ratio_uint8": b1s["digitkit_uint8"]["cpu_ratio"],
        "batch1_cpu_ratio_float32": b1s["digitkit_float32"]["cpu_ratio"],
        "big_batch": len(images_big),
        "big_wall_ratio_uint8": bigs["digitkit_uint8"]["median"] / bigs["bare"]["median"],
        "big_wall_ratio_float32": bigs["digitkit_float32"]["median"] / bigs["bare"]["median"],
        # The batch-1000 goal is judged on CPU time of the calling thread: a call of several ms is
        # often preempted on a busy machine, which wall time counts and CPU time does not.
        "big_ratio_uint8": bigs["digitkit_uint8"]["cpu_median"] / bigs["bare"]["cpu_median"],
        "big_ratio_float32": bigs["digitkit_float32"]["cpu_median"] / bigs["bare"]["cpu_median"],
    }
    result["goal_batch1_uint8"] = goal(result["batch1_ratio_uint8"], GOAL_BATCH1)
    result["goal_batch1_float32"] = goal(result["batch1_ratio_float32"], GOAL_BATCH1)
    result["goal_big_uint8"] = goal(result["big_ratio_uint8"], GOAL_BATCH1000)
    result["goal_big_float32"] = goal(result["big_ratio_float32"], GOAL_BATCH1000)
    return result


# ----------------------------------------------------------------------------- part B

def import_tensorflow():
    """TensorFlow, imported directly (not through digitkit.export) with its start-up logging quieted."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)  # absl writes start-up notices straight to fd 2
        try:
            import tensorflow as tf
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel("ERROR")
    return tf


def bench_tensorflow(export_dir: Path, artifacts: list, keras_path: Optional[Path], cfg: Config, images1, images_big, log) -> dict:
    from digitkit.runtime import load

    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        threads_note = "intra_op=1, inter_op=1"
    except RuntimeError:  # TensorFlow already initialised by the caller
        threads_note = "TensorFlow defaults (already initialised)"
    out = {"tensorflow": tf.__version__, "tf_threads": threads_note, "tflite_interpreter": [], "keras": None}
    natural1, natural_big = images1[0], images_big

    for entry in artifacts:
        if entry["format"] != "tflite":
            continue
        path = export_dir / entry["file"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tf1, info = bare_litert(path, 1, tf.lite.Interpreter)
            tf_big, _ = bare_litert(path, len(images_big), tf.lite.Interpreter)
        model = load(path, threads=THREADS)
        typed1 = to_model_input(images1, info["dtype"], info["scale"], info["zero_point"])
        typed_big = to_model_input(images_big, info["dtype"], info["scale"], info["zero_point"])
        log(f"[runtime/tf] tf.lite.Interpreter vs digitkit: {path.name}")
        b1 = time_interleaved({"tf_lite_interpreter": (tf1, typed1), "digitkit_uint8": (model.predict_proba, natural1)}, cfg.b1_blocks, max(cfg.b1_calls // 2, 50))
        big = time_interleaved({"tf_lite_interpreter": (tf_big, typed_big), "digitkit_uint8": (model.predict_proba, natural_big)}, cfg.big_blocks, cfg.big_calls, warmup=3)
        row = {
            "file": path.name, "mode": entry["mode"],
            "batch1_seconds": summarize_all(b1),
            "big_seconds": summarize_all(big),
        }
        row["batch1_ratio_tf_over_digitkit"] = row["batch1_seconds"]["tf_lite_interpreter"]["median"] / row["batch1_seconds"]["digitkit_uint8"]["median"]
        row["big_ratio_tf_over_digitkit"] = row["big_seconds"]["tf_lite_interpreter"]["median"] / row["big_seconds"]["digitkit_uint8"]["median"]
        out["tflite_interpreter"].append(row)

    if keras_path and Path(keras_path).is_file():
        import keras

        keras_model = keras.models.load_model(keras_path)
        by_mode = {e["mode"]: e for e in artifacts if e["format"] == "tflite"}
        digitkit_models = {m: load(export_dir / by_mode[m]["file"], threads=THREADS) for m in ("fp32", "int8") if m in by_mode}
        float1 = images1.reshape(1, 784).astype(np.float32) / np.float32(255.0)
        float_big = images_big.reshape(len(images_big), 784).astype(np.float32) / np.float32(255.0)
        call = lambda x: keras_model(x, training=False)
        predict = lambda x: keras_model.predict(x, batch_size=len(x), verbose=0)
        log(f"[runtime/tf] Keras model(x) vs digitkit, batch 1 ({cfg.keras_b1_blocks} blocks x {cfg.keras_b1_calls} calls)")
        variants = {"keras_call": (call, float1)}
        variants.update({f"digitkit_{m}_tflite_uint8": (dm.predict_proba, natural1) for m, dm in digitkit_models.items()})
        b1 = time_interleaved(variants, cfg.keras_b1_blocks, cfg.keras_b1_calls, warmup=10)
        log(f"[runtime/tf] Keras model(x) / model.predict vs digitkit, batch {len(images_big)}")
        variants = {"keras_call": (call, float_big), "keras_predict": (predict, float_big)}
        variants.update({f"digitkit_{m}_tflite_uint8": (dm.predict_proba, natural_big) for m, dm in digitkit_models.items()})
        big = time_interleaved(variants, cfg.keras_big_blocks, cfg.keras_big_calls, warmup=2)
        out["keras"] = {
            "model": str(keras_path), "keras": keras.__version__,
            "input": "float32 (N, 784) in [0, 1], prepared before timing; digitkit gets uint8 (N, 28, 28)",
            "batch1_seconds": summarize_all(b1),
            "big_seconds": summarize_all(big),
        }
    return out


# ----------------------------------------------------------------------------- driver

def run(export_dir: Path, keras_path: Optional[Path] = None, quick: bool = False, with_tensorflow: bool = True, log: Callable[[str], None] = print) -> dict:
    cfg = Config.quick() if quick else Config()
    export_dir = Path(export_dir)
    manifest = benchlib.read_manifest(export_dir)
    artifacts = manifest["artifacts"]
    images1 = test_images(1)
    images_big = test_images(cfg.big_batch)
    if "tensorflow" in sys.modules:
        log("[runtime] note: TensorFlow is already imported in this process")
    result = {
        "threads": THREADS, "config": cfg.__dict__,
        "inputs": {
            "digitkit_uint8": "uint8 images: one (28, 28) at batch 1, (N, 28, 28) at batch N (the natural device input)",
            "digitkit_float32": "float32 [0, 1] pixels, (N, 784)",
            "bare": "the model's own input dtype, (N, 784): int8 (pre-quantized) for the int8 TFLite model, float32 otherwise",
        },
        "goals": {"batch1_ratio_max": GOAL_BATCH1, "batch1000_ratio_max": GOAL_BATCH1000},
        "artifacts": [bench_artifact(export_dir / e["file"], e, cfg, images1, images_big, log) for e in artifacts],
    }
    if with_tensorflow:
        if keras_path is None:
            candidate = export_dir.parent / "train" / "model.keras"
            keras_path = candidate if candidate.is_file() else None
        result["tensorflow"] = bench_tensorflow(export_dir, artifacts, keras_path, cfg, images1, images_big, log)
    return result


def tables(result: dict) -> list:
    arts = result["artifacts"]
    big = arts[0]["big_batch"] if arts else 1000
    rows1, rows_big = [], []
    for a in arts:
        s = a["batch1_seconds"]
        low, high = a["batch1_ratio_range_uint8"]
        rows1.append([
            a["file"], a["backend"], a["model_input_dtype"], fmt_us(s["bare"]["median"]),
            fmt_us(s["digitkit_uint8"]["median"]), fmt_ratio(a["batch1_ratio_uint8"]), f"{low:.2f}-{high:.2f}x", f"{a['batch1_overhead_us_uint8']:+.1f} µs", a["goal_batch1_uint8"],
            fmt_us(s["bare_converting"]["median"]), fmt_ratio(a["batch1_ratio_uint8_to_bare_converting"]),
            fmt_us(s["digitkit_float32"]["median"]), fmt_ratio(a["batch1_ratio_float32"]), a["goal_batch1_float32"],
        ])
        s = a[f"batch{big}_seconds"]
        rows_big.append([
            a["file"], a["backend"], fmt_rate(s["bare"]["images_per_s"]),
            fmt_rate(s["digitkit_uint8"]["images_per_s"]), fmt_ratio(a["big_wall_ratio_uint8"]), fmt_ratio(a["big_ratio_uint8"]), a["goal_big_uint8"],
            fmt_rate(s["digitkit_float32"]["images_per_s"]), fmt_ratio(a["big_wall_ratio_float32"]), fmt_ratio(a["big_ratio_float32"]), a["goal_big_float32"],
            f"{a['top1_agreement_digitkit_vs_bare']:.4f}",
        ])
    out = [
        Table(
            f"Runtime vs bare backend, batch 1 (median latency, {result['threads']} thread, goal digitkit/bare <= {GOAL_BATCH1:.2f}x)",
            ["artifact", "backend", "model input", "bare", "digitkit uint8", "ratio", "per process", "overhead", "goal", "bare + conversions", "digitkit / that", "digitkit float32", "ratio", "goal"],
            rows1,
            ["bare: backend called directly with input already in the model's dtype, returning its raw output (int8 for the int8 "
             "TFLite model: no (de)quantization). digitkit uint8: one (28, 28) uint8 image (the natural device input), returning "
             "float32 probabilities; digitkit float32: (1, 784) float32 in [0, 1]. bare + conversions: the bare call wrapped in "
             "the numpy a bare user needs to go from that uint8 image to probabilities (the same operations digitkit uses), so "
             "'digitkit / that' is digitkit's layer alone. Ratio = digitkit / bare (1.00x = no overhead, the goal): "
             f"the median over {arts[0]['batch1_processes'] if arts else '?'} fresh processes of each process's ratio of medians; "
             "'per process' is its range."],
        ),
        Table(
            f"Runtime vs bare backend, batch {big} (median throughput, goal digitkit/bare CPU time <= {GOAL_BATCH1000:.2f}x)",
            ["artifact", "backend", "bare", "digitkit uint8", "wall ratio", "CPU ratio", "goal", "digitkit float32", "wall ratio", "CPU ratio", "goal", "top-1 agree"],
            rows_big,
            ["Throughput = batch / median wall time per call. Ratios = digitkit / bare per call: wall clock, and CPU time of the "
             "calling thread (the goal; it ignores time the thread was preempted by other load). top-1 agree: digitkit vs bare on the batch."],
        ),
    ]
    tf = result.get("tensorflow")
    if tf:
        rows = []
        for r in tf["tflite_interpreter"]:
            b1, bb = r["batch1_seconds"], r["big_seconds"]
            rows.append([
                r["file"], fmt_us(b1["tf_lite_interpreter"]["median"]), fmt_us(b1["digitkit_uint8"]["median"]), fmt_ratio(r["batch1_ratio_tf_over_digitkit"]),
                fmt_rate(big / bb["tf_lite_interpreter"]["median"]), fmt_rate(big / bb["digitkit_uint8"]["median"]), fmt_ratio(r["big_ratio_tf_over_digitkit"]),
            ])
        out.append(Table(
            f"TensorFlow's tf.lite.Interpreter vs digitkit runtime (TF {tf['tensorflow']}, 1 thread, same .tflite files)",
            ["artifact", "tf.lite b1", "digitkit b1", "tf/digitkit", f"tf.lite b{big}", f"digitkit b{big}", "tf/digitkit time"],
            rows,
            ["tf.lite.Interpreter gets input already in the model's dtype; digitkit gets uint8 images. Ratio > 1: digitkit is faster."],
        ))
        k = tf.get("keras")
        if k:
            rows = []
            b1, bb = k["batch1_seconds"], k["big_seconds"]
            dk = [n for n in b1 if n.startswith("digitkit_")]
            for name, label in (("keras_call", "Keras model(x, training=False)"),):
                rows.append([label, "1", fmt_us(b1[name]["median"]), "", *[fmt_ratio(b1[name]["median"] / b1[d]["median"]) for d in dk]])
            for d in dk:
                rows.append([f"digitkit {d.split('_')[1]} .tflite, uint8", "1", fmt_us(b1[d]["median"]), "", *["" for _ in dk]])
            for name, label in (("keras_call", "Keras model(x, training=False)"), ("keras_predict", f"Keras model.predict(batch_size={big})")):
                rows.append([label, str(big), fmt_ms(bb[name]["median"]), fmt_rate(big / bb[name]["median"]), *[fmt_ratio(bb[name]["median"] / bb[d]["median"]) for d in dk]])
            for d in dk:
                rows.append([f"digitkit {d.split('_')[1]} .tflite, uint8", str(big), fmt_ms(bb[d]["median"]), fmt_rate(big / bb[d]["median"]), *["" for _ in dk]])
            out.append(Table(
                f"Keras {k['keras']} on the fp32 model.keras vs digitkit runtime ({tf['tf_threads']})",
                ["what", "batch", "median time", "throughput", *[f"time / digitkit {d.split('_')[1]}" for d in dk]],
                rows,
                ["Keras gets float32 [0, 1] input prepared before timing. Ratio > 1: digitkit is that many times faster."],
            ))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=None, help="A `digitkit export` directory (default: train and export a 1-epoch model into a temp dir).")
    parser.add_argument("--keras", type=Path, default=None, help="The model.keras for the Keras comparison (default: EXPORT_DIR/../train/model.keras).")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-tensorflow", action="store_true", help="Skip part B (tf.lite.Interpreter and Keras).")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--batch1-worker", type=Path, default=None, help=argparse.SUPPRESS)  # one process of batch1_across_processes
    parser.add_argument("--blocks", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=500, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch1_worker:
        import json

        print(json.dumps(batch1_worker(args.batch1_worker, args.blocks, args.calls)))
        return
    export_dir, keras_path = args.export_dir, args.keras
    if export_dir is None:
        export_dir, keras_path = benchlib.make_workspace(Path(tempfile.mkdtemp(prefix="digitkit-bench-")), epochs=1)
    result = run(export_dir, keras_path, quick=args.quick, with_tensorflow=not args.no_tensorflow)
    benchlib.print_tables(tables(result))
    if args.json:
        benchlib.write_json(args.json, result)


if __name__ == "__main__":
    main(sys.argv[1:])
