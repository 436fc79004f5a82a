"""The README inside a bundle: what it holds, and each platform's install line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from digitkit.runtime.manifest import ArtifactEntry


def readme_text(entries: Sequence[ArtifactEntry], wheel: Optional[Path], directory: str = "bundle") -> str:
    """The bundle's README: the same lines as digitkit's README ("On the device"), typed in the directory
    that holds the unpacked bundle (``directory``), which tests/test_trixie.py runs under emulation."""
    package = f"./{directory}/{wheel.name}" if wheel else "digitkit"
    files = "\n".join(f"- `{e.file}`: {e.format} {e.mode} ({e.quantization})" for e in entries)
    model = next(
        (e.file for e in entries if e.format == "tflite" and e.mode == "int8-pixels"), entries[0].file
    )
    return f"""# digitkit bundle

{files}
- `manifest.json`: hashes, input contract, quantization, the Keras model's reference accuracy and predictions
- `mnist/`: the MNIST test set, to re-prove parity on the device

## Install on the device

Every line below is typed in the directory that holds `{directory}/` (where `tar xzf {directory}.tar.gz` unpacked it).

64-bit Raspberry Pi OS (aarch64; bookworm's Python 3.11 or trixie's 3.13), with LiteRT and Pillow (image files):

    python3 -m venv ~/digitkit-env
    ~/digitkit-env/bin/pip install "{package}[litert,cli,images]"

or with ONNX Runtime too: `"{package}[litert,onnxruntime,cli,images]"`.

32-bit Raspberry Pi OS trixie (armv7l; the only OS for a Pi Zero): no LiteRT, ONNX Runtime, numpy or Pillow wheels
exist for Python 3.13 there; use Debian's numpy and Pillow, and digitkit runs the TFLite models on its numpy backend
(exact, slower):

    sudo apt install python3-numpy python3-pil python3-venv
    python3 -m venv --system-site-packages ~/digitkit-env
    ~/digitkit-env/bin/pip install "{package}[cli]"

For the ONNX models too, add Debian's ONNX Runtime (`sudo apt install python3-onnxruntime`): the venv sees it.

32-bit Raspberry Pi OS bookworm (armv7l, Python 3.11): tflite-runtime, Debian's numpy and Pillow: the same lines
with `[tflite,cli]`.

Any other CPU (riscv64, ...) with Debian or another distribution's numpy and Pillow: the same lines as on 32-bit
trixie; the TFLite models run on the numpy backend. Verify only those there unless an ONNX runtime is installed.

Then, once per shell, put `digitkit` on the PATH:

    . ~/digitkit-env/bin/activate

## Prove and use it there

    digitkit verify --bundle {directory}
    digitkit predict photo.jpg --model {directory}/{model}
    digitkit bench --bundle {directory}

`verify`: every artifact's accuracy and agreement with the Keras model, on every installed backend (exit 1 if a
gate fails); `predict`: the digit in a photo (PNG, JPEG, ...); `bench`: latency and throughput on this device.

## Serve it over HTTP

Add `serve` to the extras (the web stack is pure Python), then `digitkit serve --bundle {directory}` serves a
draw-a-digit page and a JSON API (`POST /api/predict`) on http://127.0.0.1:8000/; `--host 0.0.0.0 --token SECRET`
opens it to the network. digitkit's README has a systemd unit to start it at boot.
"""


# One line per platform for `digitkit bundle`'s summary; the README above says the same at length.
_NUMPY_VENV = (
    "sudo apt install python3-numpy python3-pil python3-venv && "
    "python3 -m venv --system-site-packages ~/digitkit-env && "
)


def install_lines(wheel: Optional[Path]) -> list[tuple[str, str]]:
    """(platform, command) pairs: how each kind of device installs this bundle's digitkit, typed beside the
    unpacked bundle as its README says."""
    package = f"./{wheel.parent.name}/{wheel.name}" if wheel else "digitkit"
    pip = "~/digitkit-env/bin/pip install"
    return [
        ("64-bit Pi OS (aarch64)", f'python3 -m venv ~/digitkit-env && {pip} "{package}[litert,cli,images]"'),
        ("32-bit Pi OS trixie, riscv64, any CPU", f'{_NUMPY_VENV}{pip} "{package}[cli]"  (numpy backend)'),
        ("32-bit Pi OS bookworm (Python 3.11)", f'{_NUMPY_VENV}{pip} "{package}[tflite,cli]"'),
    ]
