"""`digitkit info`: what an artifact is, and whether it still matches its manifest."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import echo, friendly_errors


@friendly_errors
def info(
    artifact: Path = typer.Argument(..., help="A .tflite or .onnx file."),
    backend: str = typer.Option("auto", help="Backend used to read its tensors."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Format, mode, inputs and outputs, quantization, size, hash, and the manifest check."""
    import json

    from digitkit.toolkit.inspection import describe
    from digitkit.toolkit.table import human_size

    data = describe(artifact, backend)
    if as_json:
        echo(json.dumps(data, indent=2))
        return
    echo(f"file:          {data['file']}")
    echo(f"format/mode:   {data['format']} / {data['mode']}")
    echo(f"size:          {human_size(data['size_bytes'])} ({data['size_bytes']} bytes)")
    echo(f"sha256:        {data['sha256']}")
    echo(f"manifest:      {data['manifest']}")
    if data.get("quantization"):
        echo(f"quantization:  {data['quantization']}")
    for role in ("inputs", "outputs"):
        for t in data.get(role) or []:
            q = t.get("quantization")
            qtext = f", scale {q['scale']:.6g}, zero point {q['zero_point']}" if q else ""
            echo(f"{role[:-1] + ':':<14} {t['name']} {t['shape']} {t['dtype']}{qtext}")
    echo(f"backend:       {data.get('backend')}")
    if "tensor_types" in data:
        echo("tensor types:  " + ", ".join(f"{k} {v}" for k, v in sorted(data["tensor_types"].items())))
    if "op_types" in data:
        echo("ONNX ops:      " + ", ".join(f"{k} {v}" for k, v in sorted(data["op_types"].items())))
    for key in ("converter", "quantizer"):
        if key in data:
            echo(f"{key + ':':<14} {data[key]['name']} {data[key]['version']}")
    if "opset" in data:
        echo(f"opset:         {data['opset']}")
