"""One prediction in a fresh process, as a user would write it without digitkit (importing none):
`cold_predict.py keras DIGIT.png model.keras` (TensorFlow + Keras) or `cold_predict.py litert DIGIT.png
digit_mlp_int8_pixels.tflite` (the floor: that model takes uint8 pixels). Prints {"digit": 7}."""

import json
import os
import sys

import numpy as np
from PIL import Image

kind, image, model = sys.argv[1:]
pixels = np.asarray(Image.open(image).convert("L")).reshape(1, 784)
if kind == "keras":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow  # noqa: F401  (the full framework, as a TensorFlow user's script has it)

    probabilities = keras.models.load_model(model).predict(pixels.astype(np.float32) / 255.0, verbose=0)
else:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels)
    interpreter.invoke()
    probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
print(json.dumps({"digit": int(np.argmax(probabilities))}))
