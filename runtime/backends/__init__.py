"""The backend registry: which runtimes exist, which formats each runs, and which pip extra brings it.

Backends are imported only when a model is opened, so importing the runtime stays cheap. Preference
is registration order: the native runtimes first, then the numpy backend, which needs nothing but
numpy and so is always there: ``auto`` falls back to it when no native runtime is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import Callable, Optional

from ..errors import ArtifactError, BackendUnavailableError, InputError
from .base import BackendSpec, Session, TensorInfo
from .onnx import open_onnxruntime
from .tflite import open_litert, open_tflite_runtime

BACKENDS: dict[str, BackendSpec] = {}


class PortableBackendWarning(UserWarning):
    """``auto`` chose the numpy backend because no native runtime for the format is installed."""


def register_backend(spec: BackendSpec) -> None:
    BACKENDS[spec.name] = spec


def _lazy(module: str, function: str) -> Callable[[bytes, Optional[int]], Session]:
    """An opener that imports its backend module only when a model is opened on it."""

    def open_model(model: bytes, threads: Optional[int]) -> Session:
        opener: Callable[[bytes, Optional[int]], Session] = getattr(
            importlib.import_module(module, __name__), function
        )
        return opener(model, threads)

    return open_model


_open_numpy = _lazy(".numpy_backend", "open_numpy")
_open_numpy_micro = _lazy(".numpy_backend", "open_numpy_micro")
_open_c = _lazy(".c", "open_c")  # the C compiler runs only when a C artifact is opened
_open_tflm = _lazy(".tflm", "open_tflm")
_open_opencv = _lazy(".opencv", "open_opencv")


register_backend(
    BackendSpec("litert", ("tflite",), "ai_edge_litert", "litert", open_litert, "LiteRT (ai-edge-litert)")
)
register_backend(
    BackendSpec(
        "tflite-runtime", ("tflite",), "tflite_runtime", "tflite", open_tflite_runtime, "tflite-runtime 2.x"
    )
)
register_backend(
    BackendSpec("onnxruntime", ("onnx",), "onnxruntime", "onnxruntime", open_onnxruntime, "ONNX Runtime")
)
register_backend(
    BackendSpec("opencv", ("onnx",), "cv2", "opencv", _open_opencv, "OpenCV DNN (cv2.dnn), 4.x or 5.x")
)
register_backend(
    BackendSpec(
        "numpy",
        ("tflite",),
        "numpy",
        "",
        _open_numpy,
        "numpy alone, bit-exact with LiteRT's default x86 path",
        portable=True,
    )
)
register_backend(
    BackendSpec(
        "numpy-micro",
        ("tflite",),
        "numpy",
        "",
        _open_numpy_micro,
        "numpy alone, rounding as TFLite Micro (fixed-point multiplier and shift)",
        default=False,
        portable=True,
    )
)
register_backend(
    BackendSpec(
        "c",
        ("c",),
        "ctypes",
        "",
        _open_c,
        "digitkit's C export, compiled with the system C compiler (ctypes)",
    )
)
register_backend(
    BackendSpec(
        "tflm",
        ("tflite",),
        "tflite_micro",
        "tflm",
        _open_tflm,
        "TensorFlow Lite Micro (tflite-micro, x86_64), batch 1; full-integer models",
        default=False,
    )
)


def is_installed(spec: BackendSpec) -> bool:
    try:
        return importlib.util.find_spec(spec.module) is not None
    except (ImportError, ValueError):
        return False


def install_hint(spec: BackendSpec) -> str:
    return f"pip install 'digitkit[{spec.extra}]'" if spec.extra else "pip install digitkit"


def backends_for(fmt: str, installed_only: bool = True) -> list[BackendSpec]:
    """Backends that run ``fmt`` by default, in order of preference (registration order)."""
    specs = [s for s in BACKENDS.values() if fmt in s.formats and s.default]
    return [s for s in specs if is_installed(s)] if installed_only else specs


def native_backends_for(fmt: str) -> list[BackendSpec]:
    """The installable runtimes for ``fmt`` other than the portable one: what an error suggests."""
    return [s for s in backends_for(fmt, installed_only=False) if not s.portable]


_said_portable: set[str] = set()


def open_session(model: bytes, fmt: str, backend: str = "auto", threads: Optional[int] = None) -> Session:
    """Open ``model`` on the named backend, or on the first installed one that can run it."""
    if backend != "auto":
        spec = BACKENDS.get(backend)
        if spec is None:
            raise InputError(f"Unknown backend {backend!r}", f"Use one of: auto, {', '.join(BACKENDS)}")
        if fmt not in spec.formats:
            runs = [s.name for s in BACKENDS.values() if fmt in s.formats]
            raise InputError(f"Backend {backend} cannot run {fmt} models", f"Use one of: {', '.join(runs)}")
        if not is_installed(spec):
            raise BackendUnavailableError(f"Backend {backend} is not installed", install_hint(spec))
        return _open(spec, model, threads)
    candidates = backends_for(fmt)
    if not candidates:
        extras = " or ".join(f"'digitkit[{s.extra}]'" for s in native_backends_for(fmt))
        raise BackendUnavailableError(f"No runtime for {fmt} models is installed", f"pip install {extras}")
    failures = []
    for spec in candidates:
        try:
            session = _open(spec, model, threads)
        except BackendUnavailableError as exc:
            failures.append(str(exc))
            continue
        if spec.portable and fmt not in _said_portable:
            _said_portable.add(fmt)
            natives = " or ".join(f"'digitkit[{s.extra}]'" for s in native_backends_for(fmt))
            warnings.warn(
                PortableBackendWarning(
                    f"No native {fmt} runtime is installed: running on the numpy backend (exact, slower); "
                    f"for speed, pip install {natives}"
                ),
                stacklevel=2,
            )
        return session
    raise BackendUnavailableError("; ".join(failures))


def _open(spec: BackendSpec, model: bytes, threads: Optional[int]) -> Session:
    """Open on one backend, turning whatever its native loader raises into a one-line error."""
    try:
        return spec.open(model, threads)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"Backend {spec.name} is installed but fails to import ({str(exc).splitlines()[0]})",
            f"Reinstall it: pip install --force-reinstall 'digitkit[{spec.extra}]'",
        ) from exc
    except ArtifactError:
        raise
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


__all__ = [
    "BACKENDS",
    "BackendSpec",
    "PortableBackendWarning",
    "Session",
    "TensorInfo",
    "backends_for",
    "install_hint",
    "is_installed",
    "native_backends_for",
    "open_session",
    "register_backend",
]
