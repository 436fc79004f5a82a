"""The classic Keras mnist_mlp.py (the seed recipe), as a user would write it without digitkit, changed
only where a fair comparison needs it: the arrays come from digitkit.toolkit.data.load_mnist() (the
same verified files, no download), epochs is an argument, and the last line is JSON."""

import json
import sys
import time

import keras
from keras.layers import Dense, Dropout
from keras.models import Sequential
from keras.optimizers import RMSprop

from digitkit.toolkit.data import load_mnist

batch_size, num_classes, epochs = 128, 10, int(sys.argv[1])

(x_train, y_train), (x_test, y_test) = load_mnist()
x_train = x_train.reshape(60000, 784).astype("float32") / 255
x_test = x_test.reshape(10000, 784).astype("float32") / 255
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

started = time.perf_counter()
model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=2, validation_data=(x_test, y_test))
fit_seconds = time.perf_counter() - started
score = model.evaluate(x_test, y_test, verbose=0)
print(json.dumps({"test_accuracy": float(score[1]), "fit_seconds": round(fit_seconds, 3)}))
