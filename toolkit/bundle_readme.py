"""The README inside a bundle: what it holds, and each platform's install line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from digitkit.runtime.manifest import ArtifactEntry


def readme_text(entries: Sequence[ArtifactEntry], wheel: Optional[Path]) -> str:
    package = f"./{wheel.name}" if wheel else "digitkit"
    files = "\n".join(f"- `{e.file}`: {e.format} {e.mode} ({e.quantization})" for e in entries)
    return f"""# digitkit bundle

{files}
- `manifest.json`: hashes, input contract, quantization, the Keras model's reference accuracy and predictions
- `mnist/`: the MNIST test set, to re-prove parity on the device

## Install on the device

64-bit Raspberry Pi OS (aarch64; bookworm's Python 3.11 or trixie's 3.13), with LiteRT:

    python3 -m venv ~/digitkit-env
    ~/digitkit-env/bin/pip install "{package}[litert,cli]"

or with ONNX Runtime: `"{package}[onnxruntime,cli]"`, or both: `"{package}[litert,onnxruntime,cli]"`. Add `images` to the
extras for `digitkit predict` on image files.

32-bit Raspberry Pi OS trixie (armv7l; the only OS for a Pi Zero): no LiteRT, ONNX Runtime or numpy wheels exist
for Python 3.13 there; use Debian's numpy, and digitkit runs the TFLite models on its numpy backend (exact, slower):

    sudo apt install python3-numpy python3-venv
    python3 -m venv --system-site-packages ~/digitkit-env
    ~/digitkit-env/bin/pip install "{package}[cli]"

For the ONNX models too, add Debian's ONNX Runtime (`sudo apt install python3-onnxruntime`): the venv sees it.

32-bit Raspberry Pi OS bookworm (armv7l, Python 3.11): tflite-runtime and Debian's numpy:

    sudo apt install python3-numpy python3-venv
    python3 -m venv --system-site-packages ~/digitkit-env
    ~/digitkit-env/bin/pip install "{package}[tflite,cli]"

Any other CPU (riscv64, ...) with Debian or another distribution's numpy: as on 32-bit trixie, `sudo apt install
python3-numpy python3-venv`, a venv with `--system-site-packages`, then `pip install "{package}[cli]"`: the TFLite
models run on the numpy backend. Verify only those there (`--artifact FILE`, repeatable) unless an ONNX runtime is installed.

## Prove and use it there

    ~/digitkit-env/bin/digitkit verify --bundle .        # parity: accuracy and agreement with Keras
    ~/digitkit-env/bin/digitkit bench --bundle .         # latency and throughput on this device
    ~/digitkit-env/bin/digitkit predict digit.png --model {entries[0].file}

## Serve it over HTTP

Add `serve,images` to the extras (the web stack is pure Python; on 32-bit Pi OS, where PyPI has no Pillow, add
`serve` and `sudo apt install python3-pil`), then
`~/digitkit-env/bin/digitkit serve --bundle .` serves a draw-a-digit page and a JSON API (`POST /api/predict`)
on http://127.0.0.1:8000/; `--host 0.0.0.0 --token SECRET` opens it to the network. digitkit's README has a
systemd unit to start it at boot.
"""


# One line per platform for `digitkit bundle`'s summary; the README above says the same at length.
_NUMPY_VENV = (
    "sudo apt install python3-numpy python3-venv && python3 -m venv --system-site-packages ~/digitkit-env && "
)


def install_lines(wheel: Optional[Path]) -> list[tuple[str, str]]:
    """(platform, command) pairs: how each kind of device installs this bundle's digitkit."""
    package = f"./{wheel.name}" if wheel else "digitkit"
    pip = "~/digitkit-env/bin/pip install"
    return [
        ("64-bit Pi OS (aarch64)", f'python3 -m venv ~/digitkit-env && {pip} "{package}[litert,cli]"'),
        ("32-bit Pi OS trixie, riscv64, any CPU", f'{_NUMPY_VENV}{pip} "{package}[cli]"  (numpy backend)'),
        ("32-bit Pi OS bookworm (Python 3.11)", f'{_NUMPY_VENV}{pip} "{package}[tflite,cli]"'),
    ]
