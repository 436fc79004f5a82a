"""One prediction the way a TensorFlow user would do it without digitkit: import TensorFlow, load the
Keras model, read the PNG, predict. Used by bench_coldstart.py as a fresh process.

    python benchmarks/keras_predict.py digit.png model.keras   ->  prints {"digit": 7, "confidence": 0.99}
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf  # noqa: F401  (the full framework, as a TensorFlow user's script has it)
import keras
from PIL import Image


def main() -> None:
    image_path, model_path = sys.argv[1], sys.argv[2]
    model = keras.models.load_model(model_path)
    pixels = np.asarray(Image.open(image_path).convert("L"), dtype=np.float32).reshape(1, 784) / 255.0
    probabilities = model.predict(pixels, verbose=0)[0]
    digit = int(np.argmax(probabilities))
    print(json.dumps({"digit": digit, "confidence": round(float(probabilities[digit]), 6)}))


if __name__ == "__main__":
    main()
