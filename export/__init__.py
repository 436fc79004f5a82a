"""Conversion and quantization of the trained Keras model, and the manifest that describes the result.

Importing this package is cheap: TensorFlow, tf2onnx and onnx load only when an export runs. It
registers TensorFlow's TFLite interpreter as a fallback runtime backend (see tf_interpreter.py).
"""
from . import tf_interpreter  # noqa: F401
