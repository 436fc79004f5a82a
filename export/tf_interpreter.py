"""TensorFlow's own TFLite interpreter as a last-resort runtime backend.

It lives here, not in the runtime, because the runtime never imports TensorFlow; importing
``digitkit.export`` registers it, and ``auto`` picks it only when no LiteRT or tflite-runtime is
installed.
"""
from __future__ import annotations

from typing import Optional

from digitkit.runtime.backends import BackendSpec, register_backend
from digitkit.runtime.backends.tflite import TFLiteSession


def open_tensorflow_lite(model: bytes, threads: Optional[int]):
    from .tf_env import import_tensorflow

    import warnings

    tf = import_tensorflow()
    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": we know, it is the fallback
        warnings.simplefilter("ignore")
        return TFLiteSession(tf.lite.Interpreter, model, threads, "tensorflow")


register_backend(
    BackendSpec("tensorflow", ("tflite",), "tensorflow", "train", open_tensorflow_lite, "TensorFlow's tf.lite.Interpreter", fallback=True)
)
