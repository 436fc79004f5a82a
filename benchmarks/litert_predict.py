"""The floor for a cold prediction on the device stack: numpy, Pillow and LiteRT only, no digitkit.
Used by bench_coldstart.py as a fresh process, to show how much of `digitkit predict` is the CLI.

    python benchmarks/litert_predict.py digit.png model.tflite   ->  prints {"digit": 7, "confidence": 0.99}
"""
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image


def main() -> None:
    image_path, model_path = sys.argv[1], sys.argv[2]
    interpreter = Interpreter(model_path=model_path)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    pixels = np.asarray(Image.open(image_path).convert("L"), dtype=np.float32).reshape(1, 784) / 255.0
    if inp["dtype"] != np.float32:
        scale, zero_point = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        pixels = np.clip(np.rint(pixels / scale) + zero_point, info.min, info.max).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], pixels)
    interpreter.invoke()
    raw = interpreter.get_tensor(out["index"])[0]
    scale, zero_point = out["quantization"]
    probabilities = (raw.astype(np.float32) - zero_point) * scale if scale else raw
    digit = int(np.argmax(probabilities))
    print(json.dumps({"digit": digit, "confidence": round(float(probabilities[digit]), 6)}))


if __name__ == "__main__":
    main()
