"""What a TensorFlow user would run instead, against digitkit's runtime on uint8 images, each pair timed
interleaved in one process: tf.lite.Interpreter on each .tflite file, and Keras model(x) and
model.predict on model.keras. TensorFlow is imported only here, with one intra- and inter-op thread."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Optional

from bench_runtime import bare_tflite, model_input
from common import Table, interleave, rate, us, x

from digitkit.export.tf_env import import_tensorflow
from digitkit.runtime import load, read_manifest
from digitkit.runtime.quiet import quiet_output
from digitkit.toolkit.benchmark import sample_images
from digitkit.toolkit.training import prepare


@dataclass
class Comparison:
    contender: str
    digitkit_on: str  # the artifact digitkit runs
    batch1: Optional[dict]  # "contender" / "digitkit" -> Timing
    big: dict  # the same at batch 1000


def run(ws, log) -> list:
    tf = import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    manifest, one, big = read_manifest(ws.export_dir), sample_images(1), sample_images(1000)
    out = []

    def compare(name: str, file: str, contenders: tuple, inputs: tuple) -> None:
        """Each contender (batch 1, batch 1000; None: skipped) against digitkit on ``file``."""
        model = load(ws.export_dir / file, threads=1)
        digitkit = (partial(model.predict_proba, one[0]), partial(model.predict_proba, big))
        timed = [
            interleave({"contender": partial(fn, arg), "digitkit": mine}, *t) if fn else None
            for fn, arg, mine, t in zip(contenders, inputs, digitkit, timing)
        ]
        out.append(Comparison(name, file, *timed))

    timing = ((4, 50, 50), (3, 2, 3)) if ws.quick else ((10, 250, 50), (20, 3, 3))
    for entry in (e for e in manifest.artifacts if e.format == "tflite"):
        log(f"[tensorflow] tf.lite.Interpreter vs digitkit: {entry.file}")
        with quiet_output():
            tf_lite = tuple(bare_tflite(manifest.path_of(entry), n, tf.lite.Interpreter) for n in (1, 1000))
        typed = tuple(model_input(v, entry.inputs[0]) for v in (one, big))
        compare(f"TensorFlow {tf.__version__} tf.lite.Interpreter", entry.file, tf_lite, typed)
    import keras

    model, k = keras.models.load_model(ws.keras), f"Keras {keras.__version__}"
    call, predict = partial(model, training=False), partial(model.predict, batch_size=1000, verbose=0)
    timing = ((4, 10, 10), (2, 1, 2)) if ws.quick else ((20, 25, 10), (8, 2, 2))
    for file in ("digit_mlp_fp32.tflite", "digit_mlp_int8.tflite"):
        log(f"[tensorflow] Keras model(x) and model.predict vs digitkit on {file}")
        compare(f"{k} model(x, training=False)", file, (call, call), (prepare(one), prepare(big)))
        compare(f"{k} model.predict", file, (None, predict), (None, prepare(big)))
    return out


def tables(result: list) -> list:
    rows = []
    for c in result:
        rows.append([c.contender, c.digitkit_on])
        for timed, show in ((c.batch1, us), (c.big, partial(rate, 1000))):
            a, b = (timed["contender"].median, timed["digitkit"].median) if timed else (0, 0)
            rows[-1] += [show(a), show(b), x(a / b)] if timed else ["", "", ""]
    return [
        Table(
            "TensorFlow vs digitkit runtime (1 thread; ratio > 1: digitkit is faster)",
            "contender | digitkit on | contender b1 | digitkit b1 | ratio | contender b1000 | digitkit b1000 | ratio",
            rows,
            "The contender gets its input prepared (float32 for Keras, the model's dtype for tf.lite); digitkit "
            "gets uint8 images. Median time per call.",
        )
    ]
