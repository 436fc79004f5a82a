"""The backend registry: which runtimes exist, which formats each runs, and which pip extra brings it.

Backends are imported only when a model is opened, so importing the runtime stays cheap. Other
layers may register more (``digitkit.export`` adds TensorFlow's interpreter as a last resort).
"""
from __future__ import annotations

import importlib.util
from typing import Optional

from ..errors import BackendUnavailableError, InputError
from .base import BackendSpec, Session, TensorInfo
from .onnx import open_onnxruntime
from .tflite import open_litert, open_tflite_runtime

BACKENDS: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> None:
    BACKENDS[spec.name] = spec


register_backend(BackendSpec("litert", ("tflite",), "ai_edge_litert", "litert", open_litert, "LiteRT (ai-edge-litert)"))
register_backend(BackendSpec("tflite-runtime", ("tflite",), "tflite_runtime", "tflite", open_tflite_runtime, "tflite-runtime 2.x"))
register_backend(BackendSpec("onnxruntime", ("onnx",), "onnxruntime", "onnxruntime", open_onnxruntime, "ONNX Runtime"))


def is_installed(spec: BackendSpec) -> bool:
    try:
        return importlib.util.find_spec(spec.module) is not None
    except (ImportError, ValueError):
        return False


def backends_for(fmt: str, installed_only: bool = True) -> list[BackendSpec]:
    """Backends that run ``fmt``, in order of preference (registration order).

    Installed fallbacks (TensorFlow's own interpreter) count only when nothing else is installed."""
    specs = [s for s in BACKENDS.values() if fmt in s.formats]
    if not installed_only:
        return [s for s in specs if not s.fallback]
    installed = [s for s in specs if is_installed(s)]
    return [s for s in installed if not s.fallback] or installed


def open_session(model: bytes, fmt: str, backend: str = "auto", threads: Optional[int] = None) -> Session:
    """Open ``model`` on the named backend, or on the first installed one that can run it."""
    if backend != "auto":
        spec = BACKENDS.get(backend)
        if spec is None:
            raise InputError(
                f"Unknown backend {backend!r}",
                f"Use one of: auto, {', '.join(BACKENDS)}",
            )
        if fmt not in spec.formats:
            raise InputError(
                f"Backend {backend} cannot run {fmt} models",
                f"Use one of: {', '.join(s.name for s in backends_for(fmt, installed_only=False))}",
            )
        if not is_installed(spec):
            raise BackendUnavailableError(
                f"Backend {backend} is not installed", f"pip install 'digitkit[{spec.extra}]'"
            )
        return _open(spec, model, threads)
    candidates = backends_for(fmt)
    if not candidates:
        extras = " or ".join(f"'digitkit[{s.extra}]'" for s in backends_for(fmt, installed_only=False))
        raise BackendUnavailableError(f"No runtime for {fmt} models is installed", f"pip install {extras}")
    failures = []
    for spec in candidates:
        try:
            return _open(spec, model, threads)
        except BackendUnavailableError as exc:
            failures.append(str(exc))
    raise BackendUnavailableError("; ".join(failures))


def _open(spec: BackendSpec, model: bytes, threads: Optional[int]) -> Session:
    """Open on one backend, turning whatever its native loader raises into a one-line error."""
    from ..errors import ArtifactError

    try:
        return spec.open(model, threads)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"Backend {spec.name} is installed but fails to import ({str(exc).splitlines()[0]})",
            f"Reinstall it: pip install --force-reinstall 'digitkit[{spec.extra}]'",
        ) from exc
    except Exception as exc:  # native loaders raise ValueError, RuntimeError and their own kinds
        text = str(exc)
        if "NumPy 1.x cannot be run in" in text or "_ARRAY_API" in text:
            raise BackendUnavailableError(
                f"Backend {spec.name} was built for NumPy 1 and this environment has NumPy 2",
                "pip install 'numpy<2' in this environment, or use the litert backend",
            ) from exc
        lines = text.strip().splitlines()
        raise ArtifactError(
            f"{spec.name} cannot load the model ({(lines[-1] if lines else type(exc).__name__)[:200]})",
            "Re-export the artifact with `digitkit export`",
        ) from exc


__all__ = ["BACKENDS", "BackendSpec", "Session", "TensorInfo", "register_backend", "backends_for", "open_session", "is_installed"]
