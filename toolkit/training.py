"""The seed recipe: the classic Keras MNIST MLP, trained deterministically."""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from digitkit.export.tf_env import import_tensorflow
from digitkit.runtime.errors import InputError
from digitkit.runtime.files import atomic_path, ensure_writable_dir, write_json_atomic

from .data import data_checksums, load_mnist

MODEL_NAME = "model.keras"
RECORD_NAME = "training.json"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    batch_size: int = 128
    seed: int = 0
    hidden_units: int = 512
    dropout: float = 0.2
    optimizer: str = "rmsprop"
    loss: str = "categorical_crossentropy"
    validation: str = "test set, scaled to [0, 1]"

    def check(self) -> None:
        if self.epochs < 1:
            raise InputError(
                f"--epochs must be at least 1, got {self.epochs}", "Pass --epochs 4 for the seed recipe"
            )
        if self.batch_size < 1:
            raise InputError(
                f"--batch-size must be at least 1, got {self.batch_size}",
                "Pass --batch-size 128 for the seed recipe",
            )
        if self.seed < 0:
            raise InputError(f"--seed must be 0 or more, got {self.seed}", "Pass a non-negative integer")


def build_model(keras, config: TrainConfig):
    """784 → Dense 512 relu → Dropout 0.2 → Dense 512 relu → Dropout 0.2 → Dense 10 softmax."""
    model = keras.Sequential(
        [
            keras.Input(shape=(784,), name="pixels"),
            keras.layers.Dense(config.hidden_units, activation="relu", name="dense_1"),
            keras.layers.Dropout(config.dropout, name="dropout_1"),
            keras.layers.Dense(config.hidden_units, activation="relu", name="dense_2"),
            keras.layers.Dropout(config.dropout, name="dropout_2"),
            keras.layers.Dense(10, activation="softmax", name="probabilities"),
        ],
        name="digit_mlp",
    )
    model.compile(optimizer=config.optimizer, loss=config.loss, metrics=["accuracy"])
    return model


def prepare(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) → float32 (N, 784) in [0, 1]: the preprocessing contract."""
    return images.reshape(len(images), 784).astype("float32") / 255.0


def library_versions() -> dict:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("tensorflow", "keras"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return versions


def train(
    config: TrainConfig,
    out_dir: Path,
    data_dir: Optional[Path] = None,
    on_epoch: Optional[Callable[[int, dict], None]] = None,
) -> dict:
    """Train, evaluate on the test set, write model.keras and training.json atomically; return the record."""
    config.check()
    out_dir = ensure_writable_dir(Path(out_dir))
    (x_train, y_train), (x_test, y_test) = load_mnist(data_dir)
    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model(keras, config)
    x_train_f, x_test_f = prepare(x_train), prepare(x_test)
    y_train_1h = keras.utils.to_categorical(y_train, 10)
    y_test_1h = keras.utils.to_categorical(y_test, 10)

    epochs: list[dict] = []

    class EpochRecorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            epochs.append(row)
            if on_epoch:
                on_epoch(epoch + 1, row)

    started = time.perf_counter()
    model.fit(
        x_train_f,
        y_train_1h,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(x_test_f, y_test_1h),
        shuffle=True,
        verbose=0,
        callbacks=[EpochRecorder()],
    )
    duration = time.perf_counter() - started
    test_loss, test_accuracy = model.evaluate(x_test_f, y_test_1h, batch_size=1000, verbose=0)

    model_path = out_dir / MODEL_NAME
    with atomic_path(model_path) as tmp:
        model.save(tmp)
    from digitkit.runtime.hashing import sha256_file

    record = {
        "config": asdict(config),
        "epochs": epochs,
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "train_seconds": round(duration, 3),
        "model_file": MODEL_NAME,
        "model_sha256": sha256_file(model_path),
        "versions": library_versions(),
        "data_sha256": data_checksums(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(out_dir / RECORD_NAME, record)
    return record


def read_record(model_path: Path) -> Optional[dict]:
    path = Path(model_path).parent / RECORD_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
