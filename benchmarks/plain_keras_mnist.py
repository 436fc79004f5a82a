"""The classic Keras mnist_mlp.py (the seed recipe), as a user would write it without digitkit.

Differences from the Keras example are only what a fair comparison needs: the MNIST arrays come from
``digitkit.toolkit.data.load_mnist()`` (the same verified files digitkit trains on, no download), the
epoch count is a flag, Keras prints one line per epoch (verbose=2) instead of a per-step bar, and the
last line of output is a JSON record:

    {"epochs": 4, "test_accuracy": 0.98, "test_loss": 0.07, "fit_seconds": 20.1, "script_seconds": 24.5, ...}

``script_seconds`` runs from the first line of this script to the end (interpreter start-up is not in
it; the benchmark measures wall time from fork to exit outside the process).
"""
import time

SCRIPT_STARTED = time.perf_counter()

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
from keras.layers import Dense, Dropout
from keras.models import Sequential
from keras.optimizers import RMSprop

from digitkit.toolkit.data import load_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args()

    batch_size = args.batch_size
    num_classes = 10
    epochs = args.epochs

    # the data, split between train and test sets
    (x_train, y_train), (x_test, y_test) = load_mnist()

    x_train = x_train.reshape(60000, 784)
    x_test = x_test.reshape(10000, 784)
    x_train = x_train.astype("float32")
    x_test = x_test.astype("float32")
    x_train /= 255
    x_test /= 255

    # convert class vectors to binary class matrices
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)

    model = Sequential()
    model.add(keras.Input(shape=(784,)))
    model.add(Dense(512, activation="relu"))
    model.add(Dropout(0.2))
    model.add(Dense(512, activation="relu"))
    model.add(Dropout(0.2))
    model.add(Dense(num_classes, activation="softmax"))

    model.compile(loss="categorical_crossentropy", optimizer=RMSprop(), metrics=["accuracy"])

    fit_started = time.perf_counter()
    model.fit(
        x_train, y_train,
        batch_size=batch_size,
        epochs=epochs,
        verbose=args.verbose,
        validation_data=(x_test, y_test),
    )
    fit_seconds = time.perf_counter() - fit_started
    score = model.evaluate(x_test, y_test, verbose=0)
    print(json.dumps({
        "epochs": epochs,
        "batch_size": batch_size,
        "test_loss": float(score[0]),
        "test_accuracy": float(score[1]),
        "fit_seconds": round(fit_seconds, 3),
        "script_seconds": round(time.perf_counter() - SCRIPT_STARTED, 3),
        "keras": keras.__version__,
    }))


if __name__ == "__main__":
    main()
