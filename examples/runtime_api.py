"""The device runtime from Python: load an artifact, predict, check it against its manifest.

python examples/runtime_api.py runs/export/digit_mlp_int8.tflite
"""

import sys

import numpy as np

from digitkit.runtime import load

model = load(sys.argv[1] if len(sys.argv) > 1 else "runs/export/digit_mlp_int8.tflite")
print(model)
images = np.zeros((2, 28, 28), dtype=np.uint8)  # uint8 0-255, or float32 in [0, 1]
images[0, 4:24, 13:15] = 255  # a crude "1"
print("digits:", model.predict(images))
print("probabilities:", np.round(model.predict_proba(images[0]), 3))
