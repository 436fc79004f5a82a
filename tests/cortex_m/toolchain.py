"""The C toolchains the C-export tests need, installed from Debian's archive when missing.

``ensure_packages`` is idempotent: it runs ``apt-get update`` once per process and ``apt-get
install`` (retried) only for the commands that are missing, so a fresh CI machine gets them and a
prepared one pays nothing. It never guesses: a machine without root or apt-get gets a one-line
reason (for ``pytest.skip``) instead. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Mapping, Optional

# command on PATH -> the Debian package that provides it
ARM_TOOLS = {
    "arm-none-eabi-gcc": "gcc-arm-none-eabi",
    "arm-none-eabi-size": "binutils-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
}
# newlib (libc.a, nano.specs, rdimon.specs) has no command: checked by a file it installs
NEWLIB_FILE = "/usr/lib/arm-none-eabi/newlib/thumb/v7-m/nofp/libc_nano.a"
NEWLIB_PACKAGE = "libnewlib-arm-none-eabi"
HOST_TOOLS = {"gcc": "gcc", "clang": "clang"}
TRIES = 3
PAUSE = 10.0
_updated = False


def missing_packages(tools: Mapping[str, str], files: Mapping[str, str] = {}) -> list[str]:
    packages = [pkg for cmd, pkg in tools.items() if shutil.which(cmd) is None]
    packages += [pkg for path, pkg in files.items() if not os.path.exists(path)]
    return list(dict.fromkeys(packages))


def unavailable_reason(tools: Mapping[str, str], files: Mapping[str, str] = {}) -> Optional[str]:
    """None when the tools are there or can be installed here; else why not, in one line."""
    missing = missing_packages(tools, files)
    if not missing:
        return None
    if os.environ.get("DIGITKIT_APT", "").strip().lower() in ("0", "no", "off", "false"):
        return f"{', '.join(missing)} missing and DIGITKIT_APT=0 forbids installing them"
    if shutil.which("apt-get") is None:
        return f"{', '.join(missing)} missing and no apt-get to install them"
    if os.geteuid() != 0:
        return f"{', '.join(missing)} missing and installing them needs root"
    return None


def _run(args: list[str], timeout: float) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"{' '.join(args[:3])} failed ({done.returncode}): {tail}")


def _retry(what: str, action) -> None:
    for attempt in range(1, TRIES + 1):
        try:
            action()
            return
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            if attempt == TRIES:
                raise RuntimeError(f"{what} failed {TRIES} times: {exc}") from exc
            time.sleep(PAUSE * attempt)


def ensure_packages(tools: Mapping[str, str], files: Mapping[str, str] = {}) -> None:
    """Install whatever of ``tools`` (command -> package) and ``files`` (path -> package) is missing."""
    global _updated
    missing = missing_packages(tools, files)
    if not missing:
        return
    reason = unavailable_reason(tools, files)
    if reason is not None:
        raise RuntimeError(reason)
    if not _updated:
        try:  # a failing extra suite must not stop the install
            _retry("apt-get update", lambda: _run(["apt-get", "update"], 600))
        except RuntimeError:
            pass
        _updated = True
    _retry(
        f"apt-get install {' '.join(missing)}",
        lambda: _run(["apt-get", "install", "-y", "--no-install-recommends", *missing], 1200),
    )
    still = missing_packages(tools, files)
    if still:
        raise RuntimeError(f"{', '.join(still)} still missing after apt-get install")


def ensure_arm_tools() -> None:
    ensure_packages(ARM_TOOLS, {NEWLIB_FILE: NEWLIB_PACKAGE})


def arm_unavailable_reason() -> Optional[str]:
    return unavailable_reason(ARM_TOOLS, {NEWLIB_FILE: NEWLIB_PACKAGE})
