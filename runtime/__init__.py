"""digitkit's device runtime: numpy plus one backend, never TensorFlow.

from digitkit.runtime import load
model = load("runs/export/digit_mlp_int8.tflite")
model.predict(images)  # uint8 0-255 or float [0, 1]; (N, 28, 28), (N, 784) or one image
"""

from .backends import BACKENDS, backends_for, register_backend
from .errors import (
    ArtifactError,
    BackendUnavailableError,
    DataError,
    DigitkitError,
    HashMismatchError,
    ImageError,
    InputError,
    SchemaVersionError,
)
from .manifest import MANIFEST_NAME, SCHEMA_VERSION, Manifest, read_manifest
from .model import DigitModel, load
from .version import __version__

__all__ = [
    "BACKENDS",
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "ArtifactError",
    "BackendUnavailableError",
    "DataError",
    "DigitModel",
    "DigitkitError",
    "HashMismatchError",
    "ImageError",
    "InputError",
    "Manifest",
    "SchemaVersionError",
    "__version__",
    "backends_for",
    "load",
    "read_manifest",
    "register_backend",
]
