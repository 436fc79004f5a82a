"""Atomic writes: a temporary name in the same directory, renamed into place only when complete.

A killed or failed run therefore never leaves a half-written file under a real name, and the
previous file stays intact until the new one replaces it in a single rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import InputError

STAGING_PREFIX = ".digitkit-staging-"
FAULT_ENV = "DIGITKIT_FAULT_AT"


def fault_point(name: str) -> None:
    """A deterministic interruption, for tests: with ``DIGITKIT_FAULT_AT=name`` the process is killed
    here (SIGKILL: no cleanup runs, as in a power cut), so a test can prove what a cut at exactly this
    moment leaves behind. Costs one environment lookup otherwise."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def ensure_writable_dir(directory: Path, what: str = "output", option: str = "--out") -> Path:
    """``directory``, created with its parents if need be, and writable: checked before any work."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(
            f"{what.capitalize()} directory {directory} is a file", f"Pass a directory to {option}"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"Cannot create {what} directory {directory} ({exc.strerror})", f"Pass a writable {option}"
        ) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(
            f"{what.capitalize()} directory {directory} is not writable", f"Pass a writable {option}"
        )
    return directory


def check_output_file(path: Path, option: str) -> Path:
    """A file the command will write at the end: its directory made and writable now, before the work."""
    path = Path(path)
    if path.is_dir():
        raise InputError(
            f"{option} {path} is a directory", f"Pass a file name to {option}, e.g. {path / 'result.json'}"
        )
    ensure_writable_dir(path.parent if str(path.parent) else Path("."), "output", option)
    return path


def temporary_path(target: Path) -> Path:
    """A unique hidden name beside ``target`` with the same suffix (Keras insists on .keras)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync and rename it to ``target``."""
    target = Path(target)
    tmp = temporary_path(target)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        fault_point(f"written:{target.name}")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def json_text(data: Any, indent: int | None = 2) -> str:
    """Strict JSON (RFC 8259): a float that is not finite (an accuracy never measured because the
    artifact did not load) becomes null, since Python's NaN/Infinity tokens break other parsers."""
    return json.dumps(_finite(data), indent=indent, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json_atomic(target: str | Path, data: Any) -> None:
    write_bytes_atomic(target, (json_text(data) + "\n").encode("utf-8"))


def new_staging_dir(parent: Path) -> Path:
    """A hidden scratch directory for a multi-file write; stale ones from killed runs are removed."""
    for stale in parent.glob(STAGING_PREFIX + "*"):
        pid = stale.name[len(STAGING_PREFIX) :].split("-")[0]
        if not pid.isdigit() or not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold Ctrl-C until the block is done, then deliver it: a publish of several renames is all or
    nothing. Only the main thread receives signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if held:
            signal.raise_signal(signal.SIGINT)  # now handled as it would have been


def publish(staged: Sequence[Path], directory: Path) -> None:
    """Move staged files into ``directory``, each by one atomic rename, in the given order, with
    Ctrl-C held until the last one (the manifest, last, never names files that are not there)."""
    for path in staged:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fault_point("publish:0")
    with uninterrupted():
        for number, path in enumerate(staged, 1):
            os.replace(path, directory / path.name)
            fault_point(f"publish:{number}")


def replace_dir(new: Path, target: Path, name: str) -> None:
    """Put the directory ``new`` at ``target``, replacing an earlier one, so that at every moment
    ``target`` is the earlier directory or the new one, whole: one atomic exchange where the system
    can, elsewhere two renames with Ctrl-C held (the earlier one put back if the second fails). The
    earlier directory is removed afterwards. ``name`` names the fault points (``NAME-swap``,
    ``NAME-swapped``) tests cut at."""
    fault_point(f"{name}-swap")
    if not target.exists():
        os.replace(new, target)
    elif exchange(new, target):
        fault_point(f"{name}-swapped")
        shutil.rmtree(new, ignore_errors=True)  # it holds the earlier directory now
    else:
        old = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-old-", dir=target.parent))
        with uninterrupted():
            os.replace(target, old)
            try:
                os.replace(new, target)
            except BaseException:
                os.replace(old, target)
                raise
        shutil.rmtree(old, ignore_errors=True)


_RENAME_EXCHANGE = 2  # linux/fs.h


def exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the system or
    file system cannot, and nothing was changed."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without it (glibc < 2.28, musl)
        return False
    at_cwd = -100
    done = renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), _RENAME_EXCHANGE)
    return bool(done == 0)
