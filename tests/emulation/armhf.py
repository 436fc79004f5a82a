"""Run digitkit's runtime as on 32-bit Raspberry Pi OS (Debian bookworm armhf, armv7l), under qemu-arm.

The functions of ``emulation.aarch64`` with ``arch="armhf"`` bound; everything else (caching,
retries, mounts undone in ``finally`` blocks, never deleting through a mount) is theirs. What
differs from arm64:

- qemu-arm through binfmt_misc, ``mmdebstrap --variant=extract --arch=armhf``, its own cached
  tarball (``debian-bookworm-armhf-extract-<key>.tar.zst``) and unpack directory
  (``<cache>/root-armhf``);
- python3-numpy (Debian's 1.24.2, with libblas3 and liblapack3, whose update-alternatives links
  the build makes) in the root file system, and /opt/venv made with ``--system-site-packages``:
  PyPI has no armv7l numpy wheel, and ``pip install numpy`` there builds from source (no compiler
  in the root; well over 15 minutes with one);
- wheels for ``manylinux2014_armv7l``, ``manylinux_2_17_armv7l`` ... ``manylinux_2_36_armv7l``
  and ``linux_armv7l``; tflite-runtime 2.14.0 (the last release, cp311 manylinux_2_34_armv7l)
  is downloaded with ``deps=False`` as its only dependency, numpy, is Debian's;
- no fake /proc/cpuinfo by default (see ``aarch64.TARGETS["armhf"]``).

Standard library only. Typical use::

    from emulation import armhf as emu

    if (reason := emu.emulation_unavailable_reason()) is None:
        emu.ensure_host_tools()
        root = emu.ensure_rootfs(emu.default_cache_dir())
        wheels = emu.download_wheels(["typer"], emu.default_cache_dir() / "wheels-cp311-armv7l")
        wheels += emu.download_wheels(["tflite-runtime==2.14.0"], emu.default_cache_dir() / "wheels-cp311-armv7l", deps=False)
        python = emu.prepare_venv(root, wheels, ["tflite-runtime", "typer"])
        done = emu.run_in_root(root, [python, "/work/script.py"], timeout=600, binds={work: "/work"})
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

from . import aarch64 as _base
from .aarch64 import (  # noqa: F401  (re-exported: architecture-independent)
    GLIBC_MAX_MINOR, SUITE, TARGETS, VENV, WHEELS_IN_ROOT, apt_sources, copy_host_ca_certificates, debian_mirror,
    default_cache_dir, mounts_under, unmount_all,
)

ARCH = "armhf"
TARGET = TARGETS[ARCH]
MACHINES = TARGET.machines  # platform.machine() in the chroot


def log(message: str) -> None:
    _base.log(message, ARCH)


def emulation_unavailable_reason(cache_dir: Optional[Path] = None) -> Optional[str]:
    """None when the armhf emulation can run here, else a one-line reason (for ``pytest.skip``)."""
    return _base.emulation_unavailable_reason(cache_dir, arch=ARCH)


def ensure_host_tools() -> None:
    """qemu-user-static, binfmt-support, mmdebstrap and debian-archive-keyring installed; qemu-arm
    registered. Idempotent."""
    _base.ensure_host_tools(arch=ARCH)


def ensure_rootfs(cache_dir: Optional[Path] = None, root: Optional[Path] = None) -> Path:
    """A fresh bookworm armhf root file system (python3, python3-venv, python3-numpy, /opt/venv)
    unpacked into ``root`` (default ``cache_dir/root-armhf``); built once and cached."""
    return _base.ensure_rootfs(cache_dir, root, arch=ARCH)


def wheel_platforms(glibc_max_minor: int = GLIBC_MAX_MINOR) -> list[str]:
    return _base.wheel_platforms(ARCH, glibc_max_minor)


def download_wheels(requirements: list[str], dest: Path, python: str = "311", deps: bool = True) -> list[Path]:
    """armv7l CPython wheels of ``requirements`` (and, unless ``deps=False``, their dependencies)."""
    return _base.download_wheels(requirements, dest, python, arch=ARCH, deps=deps)


def prepare_venv(root: Path, wheels: list[Path], packages: list[str]) -> str:
    """``packages`` installed in /opt/venv (which sees Debian's numpy) from ``wheels`` only."""
    return _base.prepare_venv(root, wheels, packages, arch=ARCH)


# ``aarch64.run_in_root`` under qemu-arm (QEMU_CPU default ``TARGET.cpu``): same arguments.
run_in_root = functools.partial(_base.run_in_root, arch=ARCH)
