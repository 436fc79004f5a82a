"""Import TensorFlow quietly, only when a command really needs it."""

from __future__ import annotations

import os


def require_tensorflow() -> None:
    """Refuse before any work, and before an output directory is made, where TensorFlow is not
    installed at all (cheap: finds the package without importing it)."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        from digitkit.runtime.errors import DigitkitError

        raise DigitkitError(
            "This command needs TensorFlow, which is not installed", "pip install 'digitkit[train]'"
        )


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass
    from digitkit.runtime.quiet import quiet_output

    try:
        with quiet_output():  # absl writes start-up notices straight to fd 2
            import tensorflow as tf
    except ImportError as exc:
        from digitkit.runtime.errors import DigitkitError

        raise DigitkitError(
            "This command needs TensorFlow, which is not installed", "pip install 'digitkit[train]'"
        ) from exc
    tf.get_logger().setLevel("ERROR")
    return tf
