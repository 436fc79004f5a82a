"""`digitkit info`: what an artifact is, and whether it still matches its manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .bench import artifacts_of
from .common import JSON_HELP, echo, emit_json, human_size, json_output, to_stdout
from .predict import BACKEND_HELP


def info(
    artifact: Annotated[
        Path, typer.Argument(help="A .tflite or .onnx file, or an export directory (each artifact it lists).")
    ],
    backend: Annotated[str, typer.Option(help="Backend used to read its tensors: " + BACKEND_HELP)] = "auto",
    json_path: Annotated[Optional[str], typer.Option("--json", help=JSON_HELP)] = None,
) -> None:
    """Format, mode, inputs and outputs, quantization, size, hash, and the manifest check."""
    from digitkit.runtime.quiet import quiet_output
    from digitkit.toolkit.inspection import describe

    json_target = json_output(json_path)
    paths = artifacts_of(artifact)
    with quiet_output():
        described_all = [describe(path, backend) for path in paths]
    data = [d.to_json() for d in described_all]
    if to_stdout(json_target):
        emit_json(json_target, data[0] if len(data) == 1 else data)
        return
    for number, described in enumerate(described_all):
        if number:
            echo()
        show(described)
    emit_json(json_target, data[0] if len(data) == 1 else data)


def show(described) -> None:
    echo(f"file:          {described.file}")
    echo(f"format/mode:   {described.format} / {described.mode}")
    echo(f"size:          {human_size(described.size_bytes)} ({described.size_bytes} bytes)")
    echo(f"sha256:        {described.sha256}")
    echo(f"manifest:      {described.manifest}")
    if described.quantization:
        echo(f"quantization:  {described.quantization}")
    if described.training:
        echo(f"recipe:        {described.training}")
    for role, tensors in (("input:", described.inputs), ("output:", described.outputs)):
        for t in tensors:
            qtext = f", scale {t.scale:.6g}, zero point {t.zero_point}" if t.quantized else ""
            echo(f"{role:<14} {t.name} {list(t.shape)} {t.dtype}{qtext}")
    echo(f"backend:       {described.backend}")
    if described.tensor_types:
        echo("tensor types:  " + ", ".join(f"{k} {v}" for k, v in sorted(described.tensor_types.items())))
    if described.op_types:
        echo("ONNX ops:      " + ", ".join(f"{k} {v}" for k, v in sorted(described.op_types.items())))
    for tool_role, tool in (("converter:", described.converter), ("quantizer:", described.quantizer)):
        if tool is not None:
            echo(f"{tool_role:<14} {tool.name} {tool.version}")
    if described.opset is not None:
        echo(f"opset:         {described.opset}")
    if described.metadata:
        meta = described.metadata
        recipe = ", ".join(f"{k} {v}" for k, v in meta["recipe"].items()) or "not recorded"
        echo(f"metadata:      digitkit {meta['digitkit_version']}, {meta['format']} / {meta['mode']}")
        echo(f"  source:      sha256 {meta['source_model_sha256']}")
        echo(f"  input:       {json.dumps(meta['input'], sort_keys=True)}")
        echo(f"  labels:      {' '.join(meta['labels'])}")
        echo(f"  recipe:      {recipe}")
