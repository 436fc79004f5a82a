"""Build the generated C for a Cortex-M core and run it under qemu-system-arm (semihosting I/O).

``build_and_run(c_dir, work, core, pixels)`` compiles ``digit_mlp_int8.c`` strictly (C99, pedantic,
-Werror) into an object whose ``arm-none-eabi-size`` and ``-fstack-usage`` are the model's own figures,
links it with this folder's startup code, linker script and harness, runs the images and returns the
int8 outputs and the figures. Standard library and numpy only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Core:
    name: str
    board: str
    flags: tuple[str, ...]
    flash: int = 0x00000000  # where the board runs code from (the vector table goes there)
    ram: int = 0x20000000
    # With -icount shift=0 qemu executes one instruction per ns; SysTick runs at the board's clock
    # (25 MHz on an385/an386/an500, 20 MHz on an505): one count is this many instructions (a count of
    # instructions, not cycles and not a time).
    instructions_per_tick: int = 40


CORES = {
    "cortex-m3": Core("cortex-m3", "mps2-an385", ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft")),
    "cortex-m4f": Core(
        "cortex-m4f", "mps2-an386", ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
    ),
    "cortex-m7": Core(
        "cortex-m7", "mps2-an500", ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16")
    ),
    # an505 boots the M33 in the Secure state: code in its SSRAM1 alias at 0x10000000, RAM at 0x38000000
    "cortex-m33": Core(
        "cortex-m33",
        "mps2-an505",
        ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
        flash=0x10000000,
        ram=0x38000000,
        instructions_per_tick=50,
    ),
}
STRICT = (
    "-std=c99",
    "-pedantic",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-O2",
    "-ffunction-sections",
    "-fdata-sections",
)


@dataclass(frozen=True)
class Run:
    outputs: np.ndarray  # (N, 10) int8
    text: int
    data: int
    bss: int
    stack: int  # the entry point's frame plus its deepest callee's (-fstack-usage)
    instructions_per_inference: float
    seconds: float


def _run(args: list[str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed: {(done.stderr or done.stdout)[-1500:]}")
    return done.stdout


def build_and_run(c_dir: Path, work: Path, core: str, pixels: np.ndarray) -> Run:
    spec = CORES[core]
    work.mkdir(parents=True, exist_ok=True)
    for name in ("digit_mlp_int8.c", "digit_mlp_int8.h"):
        shutil.copy(c_dir / name, work / name)
    gcc = "arm-none-eabi-gcc"
    _run([gcc, *spec.flags, *STRICT, "-fstack-usage", "-c", "digit_mlp_int8.c", "-o", "model.o"], work)
    sizes = _run(["arm-none-eabi-size", "model.o"], work).splitlines()[1].split()
    frames = {
        line.split("\t")[0].rsplit(":", 1)[-1]: int(line.split("\t")[1])
        for line in (work / "model.su").read_text().splitlines()
    }
    stack = frames["digit_mlp_int8_predict"] + max(
        v for k, v in frames.items() if k != "digit_mlp_int8_predict"
    )
    script = (HERE / "link.ld").read_text()  # the board's memory map into the shared script
    script = script.replace("ORIGIN = 0x00000000", f"ORIGIN = 0x{spec.flash:08x}")
    (work / "link.ld").write_text(script.replace("ORIGIN = 0x20000000", f"ORIGIN = 0x{spec.ram:08x}"))
    _run(
        [gcc, *spec.flags, "-O2", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections",
         "-Wl,--gc-sections", "--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles",
         "-T", str(work / "link.ld"), "-I", str(work), str(HERE / "startup.c"), str(HERE / "harness.c"),
         "model.o", "-o", "prog.elf"],
        work,
    )  # fmt: skip
    (work / "pixels.bin").write_bytes(np.ascontiguousarray(pixels, np.uint8).tobytes())
    started = time.perf_counter()
    said = _run(
        ["qemu-system-arm", "-M", spec.board, "-nographic", "-semihosting-config", "enable=on,target=native",
         "-icount", "shift=0", "-kernel", "prog.elf"],
        work,
        timeout=900,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    found = re.search(r"images (\d+) ticks (\d+)", said)
    if found is None:
        raise RuntimeError(f"{core}: the harness said {said[-500:]!r}")
    images, ticks = int(found.group(1)), int(found.group(2))
    outputs = np.frombuffer((work / "out.bin").read_bytes(), np.int8).reshape(-1, 10)
    per = ticks * spec.instructions_per_tick / max(images, 1)
    return Run(outputs, int(sizes[0]), int(sizes[1]), int(sizes[2]), stack, per, seconds)
