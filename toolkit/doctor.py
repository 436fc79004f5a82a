"""`digitkit doctor`: what this machine is, what of digitkit's can run on it, and what to install.

Read without importing any backend (package metadata and /proc/cpuinfo only): an onnxruntime build
that dies with an illegal instruction on this CPU must be reported, not run. Never imports
TensorFlow or digitkit.export, so it works on a device with the runtime alone.
"""

from __future__ import annotations

import platform
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

# The modes each format's artifacts come in (export/formats.py is the table; the device side may not
# have the export layer, so the modes are named here by format).
MODES_BY_FORMAT = {
    "tflite": ("fp32", "fp16", "dynamic", "int8", "int8-pixels"),
    "onnx": ("fp32", "dynamic", "int8"),
    "c": ("int8-c",),
}
FULL_INTEGER = ("int8", "int8-pixels")
# The distribution that brings each backend's module, for its version.
DISTRIBUTIONS = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "onnxruntime": "onnxruntime",
    "tflite_micro": "tflite-micro",
    "numpy": "numpy",
}
CORTEX_A72 = ("0x41", "0xd08")  # (implementer, part) in /proc/cpuinfo: the Raspberry Pi 4's core
CPU_FEATURES = {  # what a backend's kernels care about: (name shown, /proc/cpuinfo flags that mean it)
    "NEON": ("asimd", "neon"),
    "dotprod": ("asimddp",),
    "AVX2": ("avx2",),
    "AVX-512 VNNI": ("avx512_vnni",),
    "AVX-VNNI": ("avx_vnni",),
}


@dataclass
class BackendReport:
    name: str
    installed: bool
    version: Optional[str]
    formats: tuple[str, ...]
    modes: list[str]
    problem: Optional[str] = None  # a known-bad combination: installed, but will not work here
    fix: Optional[str] = None


@dataclass
class Report:
    python: str
    implementation: str
    executable: str
    os: str
    machine: str
    cpu: str
    cpu_features: dict[str, bool]
    numpy: Optional[str]
    backends: list[BackendReport]
    problems: list[str] = field(default_factory=list)
    recommended_artifact: str = ""
    recommended_backend: str = ""
    install: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_cpuinfo(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's fields (flags on x86, Features on Arm), lower-case keys."""
    try:
        return parse_cpuinfo(path.read_text(errors="replace"))
    except OSError:
        return {}


def parse_cpuinfo(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" not in line:
            if fields and not line.strip():
                break  # the first processor is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    return fields


def cpu_features(cpuinfo: dict[str, str], machine: str) -> dict[str, bool]:
    flags = set((cpuinfo.get("flags", "") + " " + cpuinfo.get("features", "")).split())
    found = {name: any(flag in flags for flag in names) for name, names in CPU_FEATURES.items()}
    if machine in ("aarch64", "arm64"):
        found["NEON"] = True  # Advanced SIMD is part of ARMv8-A
    return found


def cpu_name(cpuinfo: dict[str, str], machine: str) -> str:
    for key in ("model name", "hardware", "cpu model", "uarch"):
        if cpuinfo.get(key):
            return cpuinfo[key]
    part = cpuinfo.get("cpu part")
    if part:
        core = {"0xd08": "Cortex-A72", "0xd03": "Cortex-A53", "0xd0b": "Cortex-A76", "0xd07": "Cortex-A57"}
        return (
            f"{core.get(part, 'Arm core')} (implementer {cpuinfo.get('cpu implementer', '?')}, part {part})"
        )
    return platform.processor() or machine


def is_cortex_a72(cpuinfo: dict[str, str]) -> bool:
    return (cpuinfo.get("cpu implementer", ""), cpuinfo.get("cpu part", "")) == CORTEX_A72


def distribution_version(name: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip().strip(chr(34))} ({platform.system()} {platform.release()})"
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def _backend(spec: Any, numpy_version: Optional[str], cpuinfo: dict[str, str]) -> BackendReport:
    from digitkit.runtime.backends import is_installed

    installed = is_installed(spec)
    if spec.name == "c":
        compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        installed = compiler is not None
        version: Optional[str] = Path(compiler).name if compiler else None
    else:
        version = distribution_version(DISTRIBUTIONS.get(spec.module, spec.module)) if installed else None
    modes = [
        f"{fmt} {mode}"
        for fmt in spec.formats
        for mode in MODES_BY_FORMAT.get(fmt, ())
        if not (spec.name == "tflm" and mode not in FULL_INTEGER)
    ]
    report = BackendReport(spec.name, installed, version, tuple(spec.formats), modes if installed else [])
    if installed:
        known = known_problem(spec.name, version, numpy_version, cpuinfo)
        if known is not None:
            report.problem, report.fix = known
            report.modes = []
    return report


def known_problem(
    backend: str, version: Optional[str], numpy_version: Optional[str], cpuinfo: dict[str, str]
) -> Optional[tuple[str, str]]:
    """(problem, fix) for an installed backend known not to work with this numpy or on this CPU."""
    numpy_major = int(numpy_version.split(".")[0]) if numpy_version else 0
    if backend == "tflite-runtime" and numpy_major >= 2:
        return (
            f"tflite-runtime {version} was built for numpy 1.x; with numpy {numpy_version} its "
            "Interpreter fails to start",
            "pip install 'numpy<2' (or use LiteRT: pip install 'digitkit[litert]')",
        )
    if backend == "onnxruntime" and (version or "").startswith("1.21.") and is_cortex_a72(cpuinfo):
        return (
            f"onnxruntime {version} dies with an illegal instruction on a Cortex-A72 (Raspberry Pi 4)",
            "pip install 'onnxruntime!=1.21.*'",
        )
    return None


def recommend(machine: str, python: tuple[int, int], backends: list[BackendReport]) -> tuple[str, str, str]:
    """(artifact, backend, install line) for this machine: LiteRT's int8-pixels model where LiteRT has
    wheels (x86_64 and aarch64, Python 3.10+), else tflite-runtime on 32-bit Arm with Python 3.11,
    else the numpy backend, which runs every TFLite artifact anywhere numpy does."""
    working = {b.name for b in backends if b.installed and not b.problem}
    artifact = "digit_mlp_int8_pixels.tflite (TFLite int8, pixels in)"
    if "litert" in working:
        return artifact, "litert", "installed: nothing to add"
    if machine in ("x86_64", "amd64", "aarch64", "arm64") and python >= (3, 10):
        return artifact, "litert", "pip install 'digitkit[litert,cli]'"
    if machine.startswith("armv7") and python[:2] == (3, 11):
        if "tflite-runtime" in working:
            return artifact, "tflite-runtime", "installed: nothing to add"
        return (
            artifact,
            "tflite-runtime",
            "sudo apt install python3-numpy && pip install 'digitkit[tflite,cli]' (in a venv with --system-site-packages)",
        )
    return artifact, "numpy", "pip install 'digitkit[cli]' (the numpy backend: numpy alone)"


def diagnose() -> Report:
    from digitkit.runtime.backends import BACKENDS

    machine = platform.machine()
    cpuinfo = read_cpuinfo()
    numpy_version = distribution_version("numpy")
    backends = [_backend(spec, numpy_version, cpuinfo) for spec in BACKENDS.values()]
    artifact, backend, install = recommend(machine, sys.version_info[:2], backends)
    return Report(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        executable=sys.executable,
        os=os_name(),
        machine=machine,
        cpu=cpu_name(cpuinfo, machine),
        cpu_features=cpu_features(cpuinfo, machine),
        numpy=numpy_version,
        backends=backends,
        problems=[f"{b.problem}. {b.fix}" for b in backends if b.problem],
        recommended_artifact=artifact,
        recommended_backend=backend,
        install=install,
    )
