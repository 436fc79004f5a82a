"""Inference per artifact, one thread, in fresh worker processes (this file run as a script): digitkit's
runtime against the bare backend, and the numpy backend against LiteRT (README.md: how to read them)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np
from common import PYTHON, Table, Timing, goal, interleave, last_json, median, rate, run_child, us, x

from digitkit.runtime import load, read_manifest
from digitkit.runtime.backends.base import TensorInfo
from digitkit.runtime.preprocess import as_batch, output_reader, quantize_input
from digitkit.toolkit.benchmark import sample_images
from digitkit.toolkit.training import prepare

GOALS = {"batch1": 1.15, "batch1000": 1.05, "float32_int8": 1.25, "numpy_b1": 10.0, "numpy_b1000": 4.0}
# ratio name -> (numerator, denominator): digitkit's overhead on uint8 and on float32 input; numpy vs LiteRT
RATIOS = {"uint8": ("digitkit", "bare"), "float32": ("float32", "bare"), "numpy": ("numpy", "digitkit")}
FULL, QUICK = (7, 10, 500, 20, 3), (3, 4, 100, 4, 2)  # processes, blocks, calls; batch-1000 blocks, calls


@dataclass
class Ratio:
    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.median:.2f}x ({self.low:.2f}-{self.high:.2f})"


@dataclass
class RuntimeRow:
    file: str
    backend: str
    model_input: str
    agree: float  # top-1 agreement of digitkit and the bare backend at batch 1000
    numpy_max_diff: Optional[float]  # max |numpy backend - LiteRT| of those probabilities
    batch1: dict  # variant -> Timing, medians over the processes
    ratios1: dict  # RATIOS name -> Ratio over the processes (wall time)
    big: dict  # variant -> Timing at batch 1000
    big_ratios: dict  # RATIOS name -> CPU-time ratio
    big_wall_ratios: dict


def bare_tflite(path: Path, batch: int, interpreter_class=None):
    """set_tensor / invoke / get_tensor on an interpreter allocated for ``batch``, one thread."""
    if interpreter_class is None:
        from ai_edge_litert.interpreter import Interpreter as interpreter_class
    interpreter = interpreter_class(model_path=str(path), num_threads=1)
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(inp, [batch, 784], strict=False)
    interpreter.allocate_tensors()

    def call(x):
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return call


def bare_onnx(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name, outputs = session.get_inputs()[0].name, [session.get_outputs()[0].name]
    return lambda x: session.run(outputs, {name: x})[0]


def model_input(images: np.ndarray, info: TensorInfo) -> np.ndarray:
    """uint8 images as (N, 784) in the model's own input dtype (prepared once, outside the timing)."""
    return quantize_input(as_batch(images), info) if info.quantized else prepare(images)


def measure(export_dir: Path, file: str, batch: int, blocks: int, calls: int) -> dict:
    """In a worker: bare (the backend fed its own dtype), digitkit on uint8 and float32, numpy on uint8."""
    manifest = read_manifest(export_dir)
    entry = manifest.entry_for(file)
    path, images = manifest.path_of(entry), sample_images(batch)
    natural = images[0] if batch == 1 else images  # one (28, 28) image, or (N, 28, 28)
    typed, model = model_input(images, entry.inputs[0]), load(path, threads=1)
    bare = bare_tflite(path, batch) if entry.format == "tflite" else bare_onnx(path)
    variants = {
        "bare": partial(bare, typed),
        "digitkit": partial(model.predict_proba, natural),
        "float32": partial(model.predict_proba, prepare(images)),
    }
    answer, raw = model.predict_proba(natural), bare(typed)
    checks = {"agree": float(np.mean(answer.argmax(1) == output_reader(entry.outputs[0])(raw).argmax(1)))}
    if entry.format == "tflite":
        portable = load(path, backend="numpy", threads=1)
        variants["numpy"] = partial(portable.predict_proba, natural)
        checks["numpy_max_diff"] = float(np.abs(portable.predict_proba(natural) - answer).max())
    timings = {k: asdict(t) for k, t in interleave(variants, blocks, calls, max(3, 50 // batch)).items()}
    return {"backend": model.backend, "timings": timings, **checks}


def worker(ws, file: str, batch: int, blocks: int, calls: int) -> dict:
    argv = [PYTHON, Path(__file__).resolve(), ws.export_dir, file, batch, blocks, calls]
    out = last_json(run_child(argv, {**os.environ, "OPENBLAS_NUM_THREADS": "1"}).stdout)
    return {**out, "timings": {name: Timing(**t) for name, t in out["timings"].items()}}


def bench_artifact(ws, entry, log) -> RuntimeRow:
    processes, blocks, calls, big_blocks, big_calls = QUICK if ws.quick else FULL
    log(f"[runtime] {entry.file}: batch 1 in {processes} processes, batch 1000 in one")
    runs = [worker(ws, entry.file, 1, blocks, calls) for _ in range(processes)]
    big = worker(ws, entry.file, 1000, big_blocks, big_calls)
    each = {n: [r["timings"][n] for r in runs] for n in runs[0]["timings"]}  # variant -> per process
    batch1 = {}  # variant -> Timing: medians over the processes
    for name, ts in each.items():
        batch1[name] = Timing(median(t.median for t in ts), median(t.cpu for t in ts), sum(t.n for t in ts))
    ratios1, cpu, wall, t = {}, {}, {}, big["timings"]
    for name, (top, bottom) in RATIOS.items():
        if top in batch1:
            per_process = [a.median / b.median for a, b in zip(each[top], each[bottom])]
            ratios1[name] = Ratio(median(per_process), min(per_process), max(per_process))
            cpu[name], wall[name] = t[top].cpu / t[bottom].cpu, t[top].median / t[bottom].median
    dtype, diff = entry.inputs[0].dtype, big.get("numpy_max_diff")
    return RuntimeRow(entry.file, big["backend"], dtype, big["agree"], diff, batch1, ratios1, t, cpu, wall)


def run(ws, log) -> list:  # TFLite and ONNX; the C export (issue 14) is not benchmarked here
    artifacts = read_manifest(ws.export_dir).artifacts
    return [bench_artifact(ws, entry, log) for entry in artifacts if entry.format in ("tflite", "onnx")]


def tables(rows: list) -> list:
    g1, g1000, gf, gn1, gn1000 = GOALS.values()
    int8_goal = lambda r, ratio: goal(ratio, gf) if r.model_input != "float32" else ""
    b1 = [
        [r.file, r.backend, r.model_input, us(r.batch1["bare"].median), us(r.batch1["digitkit"].median),
         r.ratios1["uint8"], goal(r.ratios1["uint8"].median, g1), us(r.batch1["float32"].median),
         r.ratios1["float32"], int8_goal(r, r.ratios1["float32"].median)]
        for r in rows
    ]  # fmt: skip
    big = [
        [r.file, r.backend, rate(1000, r.big["bare"].median), rate(1000, r.big["digitkit"].median),
         x(r.big_wall_ratios["uint8"]), x(r.big_ratios["uint8"]), goal(r.big_ratios["uint8"], g1000),
         rate(1000, r.big["float32"].median), x(r.big_ratios["float32"]),
         int8_goal(r, r.big_ratios["float32"]), f"{r.agree:.4f}"]
        for r in rows
    ]  # fmt: skip
    portable = [
        [r.file, us(r.batch1["numpy"].median), us(r.batch1["digitkit"].median), r.ratios1["numpy"],
         goal(r.ratios1["numpy"].median, gn1), rate(1000, r.big["numpy"].median),
         rate(1000, r.big["digitkit"].median), x(r.big_ratios["numpy"]), goal(r.big_ratios["numpy"], gn1000),
         f"{r.numpy_max_diff:.2g}"]
        for r in rows
        if "numpy" in r.ratios1
    ]  # fmt: skip
    return [
        Table(
            "Runtime vs bare backend, batch 1",
            "artifact | backend | model input | bare | digitkit uint8 | ratio (per process) | "
            f"goal uint8 <= {g1}x | digitkit float32 | ratio (per process) | goal float32, int8 models <= {gf}x",
            b1,
            "1 thread. Ratios: digitkit / bare, median over fresh processes of the per-process ratios (range).",
        ),
        Table(
            "Runtime vs bare backend, batch 1000",
            f"artifact | backend | bare | digitkit uint8 | wall ratio | CPU ratio | goal uint8 <= {g1000}x | "
            f"digitkit float32 | CPU ratio | goal float32, int8 models <= {gf}x | top-1 agree",
            big,
            "Throughput: batch / median wall time per call. CPU ratio: of the calling thread's CPU time per call.",
        ),
        Table(
            "numpy backend vs LiteRT (issue 13)",
            f"artifact | numpy b1 | LiteRT b1 | ratio (per process) | goal b1 <= {gn1:g}x | numpy b1000 | "
            f"LiteRT b1000 | CPU ratio | goal b1000 <= {gn1000:g}x | max abs diff",
            portable,
            "Both through digitkit on uint8 images, 1 thread, side by side. max abs diff: of the batch-1000 "
            "probabilities (0: bit-exact). This machine's speed, not a device's.",
        ),
    ]


if __name__ == "__main__":
    export_dir, file, *numbers = sys.argv[1:]
    print(json.dumps(measure(Path(export_dir), file, *map(int, numbers))))
