"""Conversion and quantization of the trained Keras model, and the manifest that describes the result.

Importing this package is cheap: TensorFlow, tf2onnx and onnx load only when an export runs.
"""
