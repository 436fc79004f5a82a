"""`digitkit doctor`: the real command on this machine, and its reading of other machines' /proc/cpuinfo."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata

from helpers import run_cli

from digitkit.toolkit.doctor import cpu_features, cpu_name, known_problem, parse_cpuinfo, recommend

# The first processor of a Raspberry Pi 4 (Cortex-A72) and of a Pi 5 (Cortex-A76), as the kernel prints them.
PI4 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

processor\t: 1
Features\t: fp asimd evtstrm crc32 cpuid
"""
PI5 = PI4.replace("0xd08", "0xd0b").replace(
    "crc32 cpuid", "crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
)


def test_doctor_reports_this_machine_as_json():
    result = run_cli("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["machine"] == platform.machine()
    assert report["python"] == platform.python_version()
    assert report["numpy"] == metadata.version("numpy")
    backends = {b["name"]: b for b in report["backends"]}
    assert backends["litert"]["installed"] and backends["litert"]["version"] == metadata.version(
        "ai-edge-litert"
    )
    assert "tflite int8-pixels" in backends["litert"]["modes"]
    assert backends["onnxruntime"]["version"] == metadata.version("onnxruntime")
    assert backends["numpy"]["modes"]  # numpy alone runs every TFLite mode
    assert report["recommended_backend"] == "litert" and report["problems"] == []
    with open("/proc/cpuinfo") as cpuinfo:
        flags = cpuinfo.read()
    assert report["cpu_features"]["AVX2"] == (" avx2" in flags)


def test_doctor_table_names_the_recommendation():
    result = run_cli("doctor")
    assert result.returncode == 0, result.stderr
    assert "Recommended: digit_mlp_int8_pixels.tflite" in result.stdout
    assert "CPU features:" in result.stdout and "litert" in result.stdout


def test_doctor_imports_no_tensorflow_no_export_layer_and_no_backend():
    """Metadata only: an onnxruntime that dies on this CPU must be reported, not imported."""
    code = (
        "import sys\n"
        "from digitkit.toolkit.cli import app\n"
        "app(['doctor', '--json'], standalone_mode=False)\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'digitkit.export', 'onnxruntime', 'ai_edge_litert')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_cpuinfo_of_a_pi4_and_a_pi5():
    pi4, pi5 = parse_cpuinfo(PI4), parse_cpuinfo(PI5)
    assert cpu_name(pi4, "aarch64").startswith("Cortex-A72")
    assert cpu_name(pi5, "aarch64").startswith("Cortex-A76")
    assert cpu_features(pi4, "aarch64") == {
        "NEON": True,
        "dotprod": False,
        "AVX2": False,
        "AVX-512 VNNI": False,
        "AVX-VNNI": False,
    }
    assert cpu_features(pi5, "aarch64")["dotprod"]


def test_known_bad_combinations():
    pi4, pi5 = parse_cpuinfo(PI4), parse_cpuinfo(PI5)
    problem, fix = known_problem("onnxruntime", "1.21.0", "2.2.0", pi4)
    assert "illegal instruction" in problem and "Cortex-A72" in problem and "!=1.21" in fix
    assert known_problem("onnxruntime", "1.21.0", "2.2.0", pi5) is None
    assert known_problem("onnxruntime", "1.22.0", "2.2.0", pi4) is None
    problem, fix = known_problem("tflite-runtime", "2.14.0", "2.4.6", pi4)
    assert "numpy 1.x" in problem and "numpy<2" in fix
    assert known_problem("tflite-runtime", "2.14.0", "1.26.4", pi4) is None


def test_recommendation_by_platform():
    assert recommend("aarch64", (3, 11), [])[1:] == ("litert", "pip install 'digitkit[litert,cli]'")
    assert recommend("armv7l", (3, 11), [])[1] == "tflite-runtime"
    assert recommend("riscv64", (3, 13), [])[1] == "numpy"
