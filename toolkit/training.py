"""The training recipes, trained deterministically: ``mlp`` (the seed recipe, the classic Keras MNIST
MLP) and ``cnn`` (a small convnet for handwriting beyond MNIST), either with ``augment``ation.

Both take the (N, 784) pixels in [0, 1] and give (N, 10) probabilities, so export and the runtime see
the same contract; the CNN reshapes to 28×28×1 inside. The seed recipe without augmentation runs
exactly the code it always ran, so its weights stay bit-identical per seed."""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from digitkit.export.tf_env import import_tensorflow
from digitkit.runtime.errors import InputError
from digitkit.runtime.files import ensure_writable_dir, new_staging_dir, publish, write_json_atomic

from .augment import AugmentConfig, epoch_images
from .data import data_checksums, load_mnist
from .ood import ood_set

MODEL_NAME = "model.keras"
RECORD_NAME = "training.json"


RECIPES = ("mlp", "cnn")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``recipe_defaults`` fills the fields a recipe sets (the defaults here are the
    seed MLP's)."""

    recipe: str = "mlp"
    epochs: int = 4
    batch_size: int = 128
    seed: int = 0
    hidden_units: int = 512
    dropout: float = 0.2
    optimizer: str = "rmsprop"
    loss: str = "categorical_crossentropy"
    validation: str = "test set, scaled to [0, 1]"
    filters: tuple[int, ...] = ()  # the CNN's 3×3 convolutions, each followed by 2×2 max pooling
    conv_dropout: float = 0.0
    augment: Optional[AugmentConfig] = None
    train_subset: int = 0  # 0: the whole training set; tests train on the first N images

    def check(self) -> None:
        if self.recipe not in RECIPES:
            raise InputError(
                f"--recipe {self.recipe!r} is not a recipe", f"Pass one of: {', '.join(RECIPES)}"
            )
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
        if self.train_subset < 0:
            raise InputError(
                f"The training subset must be 0 or more, got {self.train_subset}", "Pass 0 for all"
            )

    def to_json(self) -> dict:
        record = asdict(self)
        record["filters"] = list(self.filters)
        return record


def recipe_defaults(
    recipe: str = "mlp",
    epochs: Optional[int] = None,
    batch_size: int = 128,
    seed: int = 0,
    augment: Optional[bool] = None,
    train_subset: int = 0,
) -> TrainConfig:
    """A recipe's configuration: ``mlp`` is the seed recipe (4 epochs, no augmentation unless asked);
    ``cnn`` (Conv 32 → pool → Conv 64 → pool → dropout → Dense 128 → dropout → 10, adam) trains 8
    augmented epochs (4-5.5 minutes on this busy 2-core VM; about 18 s an epoch on a quiet one), for
    the best accuracy on other writers' digits."""
    if recipe == "cnn":
        use_augment = True if augment is None else augment
        return TrainConfig(
            recipe="cnn",
            epochs=8 if epochs is None else epochs,
            batch_size=batch_size,
            seed=seed,
            hidden_units=128,
            dropout=0.5,
            optimizer="adam",
            filters=(32, 64),
            conv_dropout=0.25,
            augment=AugmentConfig() if use_augment else None,
            train_subset=train_subset,
        )
    return TrainConfig(
        recipe=recipe,
        epochs=4 if epochs is None else epochs,
        batch_size=batch_size,
        seed=seed,
        augment=AugmentConfig() if augment else None,
        train_subset=train_subset,
    )


def build_model(keras, config: TrainConfig):
    """The recipe's model, (N, 784) in, (N, 10) probabilities out."""
    if config.recipe == "cnn":
        return build_cnn(keras, config)
    return build_mlp(keras, config)


def build_mlp(keras, config: TrainConfig):
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


def flat_size(filters: tuple[int, ...]) -> int:
    """Values per image after the convolutions (valid 3×3) and 2×2 poolings."""
    side = 28
    for _ in filters:
        side = (side - 2) // 2
    return side * side * filters[-1]


def build_cnn(keras, config: TrainConfig):
    """784 → reshape 28×28×1 → (Conv 3×3 relu → MaxPool 2×2) per filter count → Dropout → flatten →
    Dense relu → Dropout → Dense 10 softmax."""
    from digitkit.export.keras_layers import batch_reshape

    layers = [keras.Input(shape=(784,), name="pixels"), batch_reshape((28, 28, 1), name="image")]
    for i, filters in enumerate(config.filters, start=1):
        layers.append(keras.layers.Conv2D(filters, 3, activation="relu", name=f"conv_{i}"))
        layers.append(keras.layers.MaxPooling2D(2, name=f"pool_{i}"))
    layers += [
        keras.layers.Dropout(config.conv_dropout, name="dropout_conv"),
        batch_reshape((flat_size(config.filters),), name="flatten"),
        keras.layers.Dense(config.hidden_units, activation="relu", name="dense_1"),
        keras.layers.Dropout(config.dropout, name="dropout_1"),
        keras.layers.Dense(10, activation="softmax", name="probabilities"),
    ]
    model = keras.Sequential(layers, name="digit_cnn")
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
    on_batch: Optional[Callable[[int, int], None]] = None,
) -> dict:
    """Train, evaluate on the test set, publish model.keras and training.json (record last); return the record.
    ``on_epoch(epoch, metrics)`` after each epoch; ``on_batch(done, per_epoch)`` after each batch (it
    only reports: the weights are the same bytes with it or without)."""
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

    if config.train_subset:
        x_train, y_train = x_train[: config.train_subset], y_train[: config.train_subset]
        x_train_f, y_train_1h = x_train_f[: config.train_subset], y_train_1h[: config.train_subset]
    callbacks = [EpochRecorder()]
    if on_batch:
        per_epoch, report_batch = -(-len(x_train_f) // config.batch_size), on_batch

        class BatchReporter(keras.callbacks.Callback):
            async_safe = True  # Keras may call it from a thread, so training never waits for the display

            def on_train_batch_end(self, batch, logs=None):
                report_batch(batch + 1, per_epoch)

        callbacks.append(BatchReporter())
    started = time.perf_counter()
    if config.augment is None:
        model.fit(
            x_train_f,
            y_train_1h,
            batch_size=config.batch_size,
            epochs=config.epochs,
            validation_data=(x_test_f, y_test_1h),
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
        )
    else:
        from concurrent.futures import ThreadPoolExecutor

        # A fresh draw of every training image each epoch, a function of (seed, epoch) alone; the next
        # epoch's is drawn in a thread while this one trains (numpy releases the GIL in its loops).
        with ThreadPoolExecutor(max_workers=1) as pool:
            upcoming = pool.submit(epoch_images, x_train, config.seed, 0, config.augment)
            for epoch in range(config.epochs):
                images = upcoming.result()
                if epoch + 1 < config.epochs:
                    upcoming = pool.submit(epoch_images, x_train, config.seed, epoch + 1, config.augment)
                model.fit(
                    images,
                    y_train_1h,
                    batch_size=config.batch_size,
                    epochs=epoch + 1,
                    initial_epoch=epoch,
                    validation_data=(x_test_f, y_test_1h),
                    shuffle=True,
                    verbose=0,
                    callbacks=callbacks,
                )
                del images
    duration = time.perf_counter() - started
    test_loss, test_accuracy = model.evaluate(x_test_f, y_test_1h, batch_size=1000, verbose=0)
    ood_images, ood_labels = ood_set(x_test, y_test)
    ood_predictions = model.predict(prepare(ood_images), batch_size=1000, verbose=0).argmax(axis=1)

    # Both files are written in a staging folder, then renamed into place model first, record last:
    # the record names its model's sha256, so a cut between the two renames leaves a pair that
    # read_record refuses rather than one that silently describes another model.
    staging = new_staging_dir(out_dir)
    try:
        model_path = staging / MODEL_NAME
        with (
            warnings.catch_warnings()
        ):  # Keras 3.15 saving TF variables under numpy 2: not the user's concern
            warnings.filterwarnings(
                "ignore", "__array__ implementation doesn't accept a copy keyword", DeprecationWarning
            )
            model.save(model_path)
        from digitkit.runtime.hashing import sha256_file

        record = {
            "config": config.to_json(),
            "recipe": config.recipe,
            "augment": asdict(config.augment) if config.augment else None,
            "parameters": int(model.count_params()),
            "epochs": epochs,
            "test_loss": float(test_loss),
            "test_accuracy": float(test_accuracy),
            "ood_accuracy": float((ood_predictions == ood_labels).mean()),
            "train_seconds": round(duration, 3),
            "model_file": MODEL_NAME,
            "model_sha256": sha256_file(model_path),
            "versions": library_versions(),
            "data_sha256": data_checksums(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json_atomic(staging / RECORD_NAME, record)
        publish([model_path, staging / RECORD_NAME], out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record


def read_record(model_path: Path) -> Optional[dict]:
    """The training.json beside ``model_path``, when it describes that very model (its sha256);
    None when there is none. A record of another model is an error: it would put that model's
    recipe and accuracy in the manifest."""
    path = Path(model_path).parent / RECORD_NAME
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    from digitkit.runtime.hashing import sha256_file

    if not isinstance(record, dict) or Path(model_path).name != record.get("model_file", MODEL_NAME):
        return None  # not this file's record
    expected = record.get("model_sha256")
    if expected is not None and sha256_file(model_path) != expected:
        raise InputError(
            f"{model_path} is not the model {path} describes (sha256 differs: a training run cut off "
            "between its two files, or a model.keras copied in)",
            f"Train again with `digitkit train --out {path.parent}`, or move {path.name} away to export "
            "the model without its training record",
        )
    return record
