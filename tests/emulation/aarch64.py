"""Run digitkit's aarch64 (or armhf) runtime on an x86_64 Linux host, under qemu user-mode emulation.

A Debian bookworm arm64 root file system (what Raspberry Pi OS bookworm is built on: Python 3.11,
glibc 2.36) is made with ``mmdebstrap --variant=extract``: the Debian .debs (python3, python3-venv
and their dependencies) are downloaded and unpacked on the host, in seconds, and no maintainer
script runs. The few of their effects that matter here are redone (see ``_configure_extracted``),
and the stdlib is byte-compiled and an empty venv made in the chroot, through binfmt_misc and
qemu-user-static. The tree is cached as a tarball, so later runs unpack it in seconds. aarch64
wheels are downloaded on the host (``pip download --platform``) and installed in a venv in the
chroot from a local folder: nothing inside the chroot needs the network.

Standard library only. Needs root (chroot, mount, apt-get). Typical use::

    from emulation import aarch64 as emu  # tests/ on sys.path, as pytest puts it

    if (reason := emu.emulation_unavailable_reason()) is None:
        emu.ensure_host_tools()
        root = emu.ensure_rootfs(emu.default_cache_dir())
        wheels = emu.download_wheels(["numpy", "onnxruntime==1.32.0"], emu.default_cache_dir() / "wheels")
        python = emu.prepare_venv(root, wheels, ["numpy", "onnxruntime"])
        done = emu.run_in_root(root, [python, "/work/script.py"], timeout=600, binds={work: "/work"})

The same functions serve 32-bit Raspberry Pi OS (Debian bookworm armhf, armv7l) when given
``arch="armhf"``; ``emulation.armhf`` binds that argument (see there). ``arch`` defaults to
``"arm64"`` everywhere, so the calls above keep their meaning.

Emulation is 100-300 times slower than native: use it for correctness, never for speed figures.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence
from urllib.parse import urlparse

SUITE = "bookworm"
ARCH = "arm64"
QEMU_BINFMT = "qemu-aarch64"
# debian-archive-keyring: mmdebstrap checks the bookworm Release file with it (signed-by), so
# that a non-Debian host (an Ubuntu CI runner) needs neither gpg nor Debian keys in apt's own set.
HOST_PACKAGES = ("qemu-user-static", "binfmt-support", "mmdebstrap", "debian-archive-keyring")
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
ROOTFS_PACKAGES = ("python3", "python3-venv")  # python3-venv pulls python3-pip-whl, python3-setuptools-whl
# Extracted in every root file system besides the Python packages (``--variant=extract`` takes the
# ``--include`` packages and their dependencies, never the Essential set):
# base-files (/etc/os-release, /root, /proc, /sys), base-passwd (/etc/passwd, /etc/group),
# dash (/bin/sh, which ``run_in_root`` starts), libc-bin (ldconfig, run once: /etc/ld.so.cache),
# libstdc++6 (every C++ wheel needs it: onnxruntime, LiteRT, tflite-runtime; nothing in the
# python3 dependency tree pulls it, debootstrap's minbase had it through apt).
BASE_PACKAGES = ("base-files", "base-passwd", "dash", "libc-bin", "libstdc++6")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
VENV = "/opt/venv"
WHEELS_IN_ROOT = "/wheels"
# Raspberry Pi OS bookworm has glibc 2.36: every manylinux tag up to it is acceptable.
GLIBC_MAX_MINOR = 36
TRIES = 3
PAUSE = 10.0
_FORMAT = 3  # bump when the root file system recipe changes: old cache tarballs are then ignored
# (3: mmdebstrap --variant=extract; 2 and older: debootstrap --variant=minbase)

_CHROOT_PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Target:
    """What differs between the emulated architectures."""

    arch: str  # Debian architecture (mmdebstrap --arch)
    label: str  # for messages
    machines: tuple  # platform.machine() values expected in the chroot
    qemu: str  # binfmt_misc entry, and qemu-user binary (<qemu>-static)
    wheel_arch: str  # wheel platform tag suffix
    packages: tuple  # Debian packages in the root file system
    venv_args: tuple  # extra `python3 -m venv` arguments for /opt/venv
    cpu: str  # default QEMU_CPU (a Pi's core)
    cpuinfo: bool  # bind a Pi's /proc/cpuinfo over qemu's pass-through of the host's
    root_name: str  # default unpack directory under the cache
    extra_platforms: tuple = ()  # more `pip download --platform` tags, after the manylinux ones
    # (link, target) symlinks that a skipped maintainer script would have made (update-alternatives)
    links: tuple = ()
    # The suite dimension: the Debian release, its Python (X.Y) and glibc (2.N: manylinux tags up to it).
    suite: str = SUITE
    python: str = "3.11"
    glibc_max_minor: int = GLIBC_MAX_MINOR
    # bookworm's base-files leaves merged /usr to the installer (mmdebstrap's setup hook makes the
    # links); trixie's base-files ships /bin, /sbin and /lib as links itself.
    merged_usr_hook: bool = True
    # /etc/ssl/certs/ca-certificates.crt made from /usr/share/ca-certificates/mozilla/*.crt
    # (ca-certificates' postinst): trixie's `python3 -m venv` (ensurepip) fails without it.
    ca_bundle: bool = False


def _trixie(arch: str, machines: tuple, qemu: str, wheel_arch: str, packages: tuple, cpu: str, cpuinfo: bool, multiarch: str) -> Target:
    """Debian trixie (Raspberry Pi OS's base since 2025: Python 3.13, glibc 2.41). With Debian's
    python3-numpy, the venv sees the system's site-packages, and the libblas3 and liblapack3
    postinsts' update-alternatives links are made by the build (on every architecture: else
    ``import numpy`` fails with "libblas.so.3: cannot open shared object file")."""
    lib = f"/usr/lib/{multiarch}"
    debian_numpy = "python3-numpy" in packages
    return Target(
        arch, f"trixie {arch}", machines, qemu, wheel_arch, (*ROOTFS_PACKAGES, *packages),
        ("--system-site-packages",) if debian_numpy else (), cpu, cpuinfo, f"root-trixie-{arch}",
        links=((f"{lib}/libblas.so.3", "blas/libblas.so.3"), (f"{lib}/liblapack.so.3", "lapack/liblapack.so.3")) if debian_numpy else (),
        suite="trixie", python="3.13", glibc_max_minor=41, merged_usr_hook=False, ca_bundle=True,
    )


TARGETS: dict[str, Target] = {
    "arm64": Target(
        "arm64", "aarch64", ("aarch64",), "qemu-aarch64", "aarch64", ROOTFS_PACKAGES, (), "cortex-a76", True, "root",
    ),
    # 32-bit Raspberry Pi OS. No numpy wheels exist for armv7l (a pip install builds from source,
    # for well over 15 minutes): Debian's python3-numpy (1.24.2) is used through a venv made with
    # --system-site-packages, as the bundle's README tells a Pi user to do.
    # QEMU_CPU=cortex-a7 (Pi 2's core: ARMv7 with NEON and VFPv4, what the armv7l tflite-runtime
    # wheel is built for) rather than qemu-arm's "max", which adds AArch32 crypto extensions that
    # no Pi's SoC has. No fake /proc/cpuinfo: the armv7l tflite-runtime 2.14 wheel is built
    # without XNNPACK (and so without the cpuinfo library that crashes on arm64); its built-in
    # kernels gave bit-identical outputs with QEMU_CPU max, cortex-a15 and cortex-a7, with and
    # without a Pi 4's 32-bit cpuinfo bound (``run_in_root(..., cpuinfo=True)``).
    # python3-pil: Debian's Pillow, for `digitkit predict` on image files (the README's apt line).
    # python3-numpy pulls libblas3 and liblapack3 (as apt chooses them for a Pi too), whose
    # postinst makes libblas.so.3 and liblapack.so.3 with update-alternatives: without those
    # links `import numpy` fails ("libblas.so.3: cannot open shared object file").
    "armhf": Target(
        "armhf", "armhf", ("armv7l", "armv8l"), "qemu-arm", "armv7l", (*ROOTFS_PACKAGES, "python3-numpy", "python3-pil"),
        ("--system-site-packages",), "cortex-a7", False, "root-armhf", ("linux_armv7l",),
        links=(
            ("/usr/lib/arm-linux-gnueabihf/libblas.so.3", "blas/libblas.so.3"),
            ("/usr/lib/arm-linux-gnueabihf/liblapack.so.3", "lapack/liblapack.so.3"),
        ),
    ),
    # 64-bit Pi OS trixie: numpy, LiteRT and onnxruntime from PyPI (cp313 aarch64 wheels) in a plain
    # venv, as on bookworm. Pi 5 core and cpuinfo, as on bookworm (LiteRT segfaults without an ARM
    # cpuinfo, and is wrong on qemu's default "max" CPU).
    "trixie-arm64": _trixie("arm64", ("aarch64",), "qemu-aarch64", "aarch64", (), "cortex-a76", True, "aarch64-linux-gnu"),
    # 32-bit Pi OS trixie (the only OS for a Pi Zero): no PyPI wheel of numpy, LiteRT, onnxruntime or
    # tflite-runtime for cp313 armv7l. Debian's python3-numpy (2.2) and python3-onnxruntime (1.21)
    # through a --system-site-packages venv; onnxruntime needs /sys mounted (else SIGABRT).
    "trixie-armhf": _trixie("armhf", ("armv7l", "armv8l"), "qemu-arm", "armv7l", ("python3-numpy", "python3-pil", "python3-onnxruntime"),
                            "cortex-a7", False, "arm-linux-gnueabihf"),
    # Any other CPU (riscv64 here): Debian's python3-numpy alone, so the numpy backend. qemu's
    # default CPU (rv64 with the extensions Debian's riscv64 baseline, rv64gc, needs).
    "trixie-riscv64": _trixie("riscv64", ("riscv64",), "qemu-riscv64", "riscv64", ("python3-numpy", "python3-pil"), "", False, "riscv64-linux-gnu"),
}


def target(arch: str = ARCH) -> Target:
    try:
        return TARGETS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; use one of {', '.join(TARGETS)}") from None


def log(message: str, arch: str = ARCH) -> None:
    print(f"[{TARGETS[arch].label if arch in TARGETS else arch}] {message}", file=sys.stderr, flush=True)


def default_cache_dir() -> Path:
    """``$DIGITKIT_EMULATION_CACHE``, else ``~/.cache/digitkit/emulation``."""
    env = os.environ.get("DIGITKIT_EMULATION_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "digitkit" / "emulation"


# --------------------------------------------------------------------------------------------
# Can we run at all?
# --------------------------------------------------------------------------------------------

def _host_tools_missing(arch: str = ARCH) -> list[str]:
    wanted = {"qemu-user-static": f"{target(arch).qemu}-static", "binfmt-support": "update-binfmts", "mmdebstrap": "mmdebstrap"}
    missing = [pkg for pkg, exe in wanted.items() if shutil.which(exe) is None and not Path("/usr/sbin", exe).exists()]
    return missing + ([] if Path(DEBIAN_KEYRING).exists() else ["debian-archive-keyring"])


def _binfmt_mounted() -> bool:
    return (_BINFMT_DIR / "register").exists()


def _mount_binfmt() -> None:
    if not _binfmt_mounted():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(_BINFMT_DIR)], check=True, capture_output=True, text=True)


def _reachable(url: str, timeout: float = 5.0) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def emulation_unavailable_reason(cache_dir: Optional[Path] = None, arch: str = ARCH) -> Optional[str]:
    """None when the emulation of ``arch`` can run here, else a one-line reason (for ``pytest.skip``).

    Mounts binfmt_misc if it is not mounted yet (that is the only way to know it can be).
    ``DIGITKIT_EMULATION=0`` turns the emulation off.
    """
    label = target(arch).label
    if os.environ.get("DIGITKIT_EMULATION", "").strip().lower() in ("0", "no", "off", "false"):
        return f"DIGITKIT_EMULATION=0 turns the {label} emulation off"
    if not sys.platform.startswith("linux"):
        return f"{label} emulation needs Linux, not {sys.platform}"
    machine = platform.machine()
    if machine not in ("x86_64", "AMD64"):
        return f"{label} emulation is set up for x86_64 hosts, not {machine}"
    if os.geteuid() != 0:
        return f"{label} emulation needs root (chroot, mount, apt-get)"
    if shutil.which("chroot") is None or shutil.which("mount") is None:
        return "chroot or mount is missing"
    try:
        _mount_binfmt()
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        return f"binfmt_misc cannot be mounted ({detail.strip().splitlines()[-1] if detail.strip() else exc})"
    missing = _host_tools_missing(arch)
    cache = cache_dir or default_cache_dir()
    need_mirror = bool(missing) or not _rootfs_tarball(cache, arch).exists()
    if missing and shutil.which("apt-get") is None:
        return f"{', '.join(missing)} missing and no apt-get to install them"
    if need_mirror:
        mirror = debian_mirror()
        if not _reachable(mirror):
            return f"the Debian mirror {mirror} cannot be reached (needed for {', '.join(missing) or 'the root file system'})"
    return None


# --------------------------------------------------------------------------------------------
# Host tools
# --------------------------------------------------------------------------------------------

def _run(cmd: Sequence[str], timeout: Optional[float] = None, env: Optional[Mapping[str, str]] = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=timeout, env=None if env is None else dict(env))
    if check and done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
    return done


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join((text or "").strip().splitlines()[-lines:])


def _retry(what: str, action, tries: int = TRIES, pause: float = PAUSE, arch: str = ARCH):
    """``action()`` up to ``tries`` times, pausing between tries (mirror hiccups)."""
    for attempt in range(1, tries + 1):
        try:
            return action()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, RuntimeError) as exc:
            output = _tail(getattr(exc, "stderr", "") or getattr(exc, "stdout", "") or str(exc), 8)
            if attempt == tries:
                raise RuntimeError(f"{what} failed {tries} times; last error:\n{output}") from exc
            log(f"{what} failed (try {attempt}/{tries}), retrying in {pause:.0f} s:\n{output}", arch)
            time.sleep(pause)


def ensure_host_tools(arch: str = ARCH) -> None:
    """qemu-user-static, binfmt-support, mmdebstrap and debian-archive-keyring installed;
    qemu-aarch64 (qemu-arm for armhf) registered. Idempotent."""
    spec = target(arch)
    missing = _host_tools_missing(arch)
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        log(f"apt-get install {' '.join(HOST_PACKAGES)}", arch)
        try:  # a failing extra suite (security, a disabled vendor repo) must not stop us
            _retry("apt-get update", lambda: _run(["apt-get", "update"], timeout=600, env=env), arch=arch)
        except RuntimeError as exc:
            log(f"apt-get update kept failing; trying the install anyway ({exc})", arch)
        _retry(
            "apt-get install",
            lambda: _run(["apt-get", "install", "-y", "--no-install-recommends", *HOST_PACKAGES], timeout=900, env=env),
            arch=arch,
        )
    _mount_binfmt()
    entry = _BINFMT_DIR / spec.qemu
    if not entry.exists() or "enabled" not in entry.read_text().splitlines()[0]:
        update = shutil.which("update-binfmts") or "/usr/sbin/update-binfmts"
        if not Path("/var/lib/binfmts", spec.qemu).exists():
            _run([update, "--import", spec.qemu], check=False)
        _run([update, "--enable", spec.qemu], check=False)
    if not entry.exists() or "enabled" not in entry.read_text().splitlines()[0]:
        raise RuntimeError(f"{entry} is not registered and enabled after update-binfmts --enable {spec.qemu}")


# --------------------------------------------------------------------------------------------
# Mounts: find, undo, and never delete through one
# --------------------------------------------------------------------------------------------

def _unescape_mount(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts_under(path: Path) -> list[str]:
    """Mount points at or under ``path``, deepest first."""
    base = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = _unescape_mount(line.split()[4])
            if point == base or point.startswith(base.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=lambda p: (p.count("/"), len(p)), reverse=True)


def unmount_all(path: Path) -> None:
    """Unmount everything at or under ``path`` (lazily if a plain umount fails)."""
    for _ in range(5):
        points = mounts_under(path)
        if not points:
            return
        for point in points:
            if _run(["umount", point], check=False).returncode != 0:
                _run(["umount", "-l", point], check=False)
    left = mounts_under(path)
    if left:
        raise RuntimeError(f"cannot unmount {', '.join(left)}")


def _remove_tree(path: Path) -> None:
    """``rm -rf path``, only once nothing is mounted below it (a bound /dev or /work must survive)."""
    path = Path(os.path.realpath(path))
    if len(path.parts) < 3:
        raise RuntimeError(f"refusing to delete {path}")
    if not path.exists():
        return
    unmount_all(path)
    if mounts_under(path):
        raise RuntimeError(f"refusing to delete {path}: something is still mounted under it")
    shutil.rmtree(path)


# --------------------------------------------------------------------------------------------
# The root file system
# --------------------------------------------------------------------------------------------

def _deb822_stanzas(text: str) -> Iterable[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, None
            continue
        if line[0] in " \t" and key:
            stanza[key] += " " + line.strip()
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            stanza[key] = value.strip()
    if stanza:
        yield stanza


def apt_sources(root: str = "/etc/apt") -> list[tuple[str, list[str]]]:
    """``(uri, suites)`` of every enabled ``deb`` source of the host's apt configuration, in order."""
    sources: list[tuple[str, list[str]]] = []
    files = [os.path.join(root, "sources.list")] + sorted(glob.glob(os.path.join(root, "sources.list.d", "*.list")))
    for name in files:
        try:
            text = Path(name).read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):  # [arch=amd64 signed-by=...]
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2:
                sources.append((words[0], [words[1]]))
    for name in sorted(glob.glob(os.path.join(root, "sources.list.d", "*.sources"))):
        try:
            text = Path(name).read_text(errors="replace")
        except OSError:
            continue
        for stanza in _deb822_stanzas(text):
            if stanza.get("enabled", "yes").lower() == "no" or "deb" not in stanza.get("types", "").split():
                continue
            for uri in stanza.get("uris", "").split():
                sources.append((uri, stanza.get("suites", "").split()))
    return sources


def debian_mirror(suite: str = SUITE) -> str:
    """The Debian mirror the host's apt sources name for ``suite`` (``$DIGITKIT_DEBIAN_MIRROR`` wins)."""
    override = os.environ.get("DIGITKIT_DEBIAN_MIRROR")
    if override:
        return override
    candidates = [(uri, suites) for uri, suites in apt_sources() if uri.startswith(("http://", "https://"))]
    for uri, suites in candidates:
        if suite in suites and "security" not in uri:
            return uri.rstrip("/")
    for uri, suites in candidates:  # a mirror of another Debian release still serves bookworm
        if "security" not in uri and any(s.split("-")[0] in ("bookworm", "trixie", "bullseye", "stable", "testing", "sid", "unstable") for s in suites):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _rootfs_key(packages: Optional[Sequence[str]] = None, arch: str = ARCH) -> str:
    """suite + architecture + package list + venv + fix-ups: bookworm's keys are what they were
    before the suite dimension (the recipe options below only enter a key when not bookworm's)."""
    spec = target(arch)
    parts = [_FORMAT, spec.suite, spec.arch, "extract", sorted([*BASE_PACKAGES, *(spec.packages if packages is None else packages)]),
             list(spec.venv_args), [list(link) for link in spec.links]]
    recipe = {"python": spec.python, "merged_usr_hook": spec.merged_usr_hook, "ca_bundle": spec.ca_bundle}
    if recipe != {"python": "3.11", "merged_usr_hook": True, "ca_bundle": False}:
        parts.append(recipe)
    digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
    return f"debian-{spec.suite}-{spec.arch}-extract-{digest[:10]}"


def _rootfs_tarball(cache_dir: Path, arch: str = ARCH) -> Path:
    """The cached tarball: an existing one (either compression), else the name a new one gets."""
    base = Path(cache_dir) / _rootfs_key(arch=arch)
    for suffix in (".tar.zst", ".tar.gz"):
        if base.with_name(base.name + suffix).exists():
            return base.with_name(base.name + suffix)
    return base.with_name(base.name + (".tar.zst" if shutil.which("zstd") else ".tar.gz"))


def _tar_compress_args(tarball: Path) -> list[str]:
    return ["-I", "zstd -T0 -3"] if tarball.name.endswith(".zst") else ["-I", "gzip -1"]


# The merged /usr of every Debian bookworm system (what debootstrap makes by default; mmdebstrap
# leaves it to a hook): /bin, /sbin and /lib are links into /usr before anything is extracted.
_MERGED_USR_HOOK = 'for d in bin sbin lib; do mkdir -p "$1/usr/$d" && ln -s "usr/$d" "$1/$d"; done'


def _mmdebstrap(root: Path, mirror: str, arch: str = ARCH) -> None:
    """Download the packages and their dependencies and unpack them into ``root``, all on the host.

    ``--variant=extract``: no maintainer script runs, so nothing needs emulating (seconds, against
    minutes for debootstrap's second stage under qemu). Only the main suite is used (never the
    security one, whose armhf index was seen failing to download mid-sync several times in a row)."""
    spec = target(arch)
    _remove_tree(root)
    root.mkdir(parents=True)
    source = f"deb [signed-by={DEBIAN_KEYRING}] {mirror} {spec.suite} main" if Path(DEBIAN_KEYRING).exists() else mirror
    packages = [*BASE_PACKAGES, *spec.packages]
    log(f"mmdebstrap --variant=extract {spec.suite} {spec.arch} from {mirror}: {' '.join(packages)}", arch)
    started = time.monotonic()
    hook = [f"--setup-hook={_MERGED_USR_HOOK}"] if spec.merged_usr_hook else []
    done = _run(
        [shutil.which("mmdebstrap") or "/usr/bin/mmdebstrap", "--mode=root", "--variant=extract", f"--arch={spec.arch}",
         f"--include={','.join(packages)}", *hook, spec.suite, root, source],
        timeout=1800, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed (exit {done.returncode}):\n{_tail(done.stdout + done.stderr)}")
    log(f"mmdebstrap done in {time.monotonic() - started:.0f} s", arch)


def _configure_extracted(root: Path, arch: str = ARCH) -> None:
    """What the skipped maintainer scripts did that matters for Python here, redone on the host.

    The rest of what they do is irrelevant to running Python programs (debconf, dash's /bin/sh
    diversion (the package ships the link), /etc/profile and other base-files defaults, the awk
    and rmt alternatives, /usr/local/lib/python3.11, the dpkg database). ldconfig and
    byte-compiling, which need the target's binaries, run under qemu in ``_build_rootfs``."""
    spec = target(arch)
    for name in ("passwd", "group"):  # base-passwd's postinst, on a first install
        if not (root / "etc" / name).exists():
            shutil.copy2(root / "usr" / "share" / "base-passwd" / f"{name}.master", root / "etc" / name)
    for link, dest in spec.links:  # update-alternatives --install in postinsts (armhf: BLAS, LAPACK)
        path = root / link.lstrip("/")
        resolved = root / dest.lstrip("/") if dest.startswith("/") else path.parent / dest
        if not resolved.exists():
            raise RuntimeError(f"{link} -> {dest}: {dest} is not in the root file system")
        if not path.is_symlink() and not path.exists():
            path.symlink_to(dest)
    mozilla = root / "usr" / "share" / "ca-certificates" / "mozilla"
    bundle = root / "etc" / "ssl" / "certs" / "ca-certificates.crt"
    if spec.ca_bundle and not bundle.exists():  # ca-certificates' postinst (update-ca-certificates)
        certs = sorted(mozilla.glob("*.crt"))
        if not certs:
            raise RuntimeError(f"no certificates in {mozilla} to make {bundle} from")
        bundle.parent.mkdir(parents=True, exist_ok=True)
        bundle.write_text("".join(c.read_text().rstrip("\n") + "\n" for c in certs))
    for name, mode in (("tmp", 0o1777), ("root", 0o700), ("proc", 0o755), ("sys", 0o755), ("dev", 0o755)):
        (root / name).mkdir(exist_ok=True)
        os.chmod(root / name, mode)


def _build_rootfs(root: Path, mirror: str, arch: str = ARCH) -> None:
    """Extract and configure on the host, then what must run the target's own binaries, in the
    chroot under qemu: ldconfig (libc-bin's trigger: /etc/ld.so.cache), byte-compiling the stdlib
    and Debian's Python packages (what the python3.11 and py3compile postinsts do; else every run
    would compile what it imports, under qemu), and an empty venv at /opt/venv (ensurepip, about
    20 s). About 30 s for arm64, 35-50 s for armhf."""
    spec = target(arch)
    _retry("mmdebstrap", lambda: _mmdebstrap(root, mirror, arch), pause=15, arch=arch)
    _configure_extracted(root, arch)
    qemu = shutil.which(f"{spec.qemu}-static")
    if qemu:  # in case binfmt_misc was registered without the F (fix-binary) flag
        shutil.copy2(qemu, root / "usr" / "bin" / f"{spec.qemu}-static")
    steps = [
        ("ldconfig", ["/sbin/ldconfig"]),
        ("byte-compiling", ["/usr/bin/python3", "-E", "-m", "compileall", "-q", "-j0",
                            *[d for d in (f"/usr/lib/python{spec.python}", "/usr/lib/python3/dist-packages") if (root / d.lstrip("/")).is_dir()]]),
        (f"python3 -m venv {VENV}", ["/usr/bin/python3", "-m", "venv", *spec.venv_args, VENV]),
    ]
    for what, argv in steps:
        started = time.monotonic()
        done = run_in_root(root, argv, timeout=900, arch=arch)
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed in the chroot (exit {done.returncode}):\n{_tail(done.stdout + done.stderr)}")
        log(f"{what} in the chroot took {time.monotonic() - started:.0f} s", arch)
    marker = {"key": _rootfs_key(arch=arch), "mirror": mirror, "suite": spec.suite, "arch": spec.arch, "tool": "mmdebstrap --variant=extract"}
    (root / "etc" / "digitkit-emulation").write_text(json.dumps(marker) + "\n")


def ensure_rootfs(cache_dir: Optional[Path] = None, root: Optional[Path] = None, arch: str = ARCH) -> Path:
    """A fresh Debian bookworm root file system with python3 and python3-venv (arm64), or with
    python3-numpy too and a ``--system-site-packages`` venv (armhf), an empty venv at /opt/venv.

    Built once (``mmdebstrap --variant=extract``, then ldconfig, byte-compiling and the venv under
    qemu: under a minute) and cached as ``cache_dir/<key>.tar.zst`` (``.tar.gz`` without zstd);
    every later call unpacks that tarball (seconds) into ``root`` (default ``cache_dir/root`` for
    arm64, ``cache_dir/root-armhf`` for armhf), replacing whatever was there, so each run starts
    from the same clean state. Nothing mounted under ``root`` is ever deleted through.
    """
    spec = target(arch)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    root = Path(root) if root else cache_dir / spec.root_name
    tarball = _rootfs_tarball(cache_dir, arch)
    if not tarball.exists():
        build = cache_dir / f"build-{spec.root_name}"
        _build_rootfs(build, debian_mirror(spec.suite), arch)
        started = time.monotonic()
        partial = tarball.with_name(tarball.name + ".partial")
        if mounts_under(build):
            raise RuntimeError(f"{build} still has mounts: not archiving it")
        _run(["tar", "-C", build, "--numeric-owner", "--one-file-system", *_tar_compress_args(tarball), "-cf", partial, "."], timeout=900)
        os.replace(partial, tarball)
        log(f"cached {tarball} ({tarball.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s", arch)
        _remove_tree(build)
    started = time.monotonic()
    _remove_tree(root)
    root.mkdir(parents=True)
    _run(["tar", "-C", root, "--numeric-owner", *_tar_compress_args(tarball), "-xpf", tarball], timeout=900)
    log(f"unpacked the root file system into {root} in {time.monotonic() - started:.1f} s", arch)
    return root


def copy_host_ca_certificates(root: Path) -> None:
    """The host's CA bundle in the chroot: only needed if something inside must reach the network."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.exists():
        certs = Path(root) / "etc" / "ssl" / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copy2(bundle, certs / bundle.name)


# --------------------------------------------------------------------------------------------
# Wheels (downloaded on the host) and the venv in the chroot
# --------------------------------------------------------------------------------------------

def wheel_platforms(arch: str = ARCH, glibc_max_minor: Optional[int] = None) -> list[str]:
    """pip does not expand manylinux tags for ``--platform``: list every one the target accepts
    (up to its glibc: 2.36 on bookworm, 2.41 on trixie)."""
    suffix = target(arch).wheel_arch
    glibc_max_minor = target(arch).glibc_max_minor if glibc_max_minor is None else glibc_max_minor
    return ([f"manylinux2014_{suffix}"] + [f"manylinux_2_{minor}_{suffix}" for minor in range(17, glibc_max_minor + 1)]
            + list(target(arch).extra_platforms))


def aarch64_platforms(glibc_max_minor: int = GLIBC_MAX_MINOR) -> list[str]:
    """The arm64 ``wheel_platforms``."""
    return wheel_platforms(ARCH, glibc_max_minor)


def download_wheels(requirements: list[str], dest: Path, python: Optional[str] = None, arch: str = ARCH, deps: bool = True) -> list[Path]:
    """CPython wheels for ``arch`` (aarch64 by default) of ``requirements`` and their dependencies in ``dest``.

    ``python`` ("311", "313"; default: the target's suite's) picks the ``cpXY`` wheels.
    ``deps=False`` downloads the requirements alone: needed where a dependency has no wheel for
    the target but the root file system provides it (tflite-runtime's numpy on armhf, which is
    Debian's python3-numpy there). Resolved once per set of requirements: the file list is
    remembered in ``dest`` and a later call with the same requirements returns it without
    touching the network.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    platforms = wheel_platforms(arch)
    python = python or target(arch).python.replace(".", "")
    key = [sorted(requirements), python, platforms] + ([] if deps else ["no-deps"])
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    record = dest / f".set-{digest}.json"
    if record.exists():
        names = json.loads(record.read_text())["files"]
        if all((dest / name).is_file() for name in names):
            return [dest / name for name in names]
    version = f"{python[0]}.{python[1:]}"
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--progress-bar", "off",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", version, "--abi", f"cp{python}",
           "--dest", str(dest)]
    for tag in platforms:
        cmd += ["--platform", tag]
    if not deps:
        cmd.append("--no-deps")
    cmd += list(requirements)
    log(f"pip download ({target(arch).wheel_arch}, cp{python}{'' if deps else ', no deps'}) {' '.join(requirements)}", arch)
    done = _retry("pip download", lambda: _run(cmd, timeout=900), arch=arch)
    names = []
    for line in done.stdout.splitlines():
        line = line.strip()
        for prefix in ("Saved ", "File was already downloaded "):
            if line.startswith(prefix):
                name = Path(line[len(prefix):].strip()).name
                if name not in names:
                    names.append(name)
    missing = [n for n in names if not (dest / n).is_file()]
    if not names or missing:
        raise RuntimeError(f"pip download reported no usable files (missing: {missing}):\n{_tail(done.stdout)}")
    record.write_text(json.dumps({"requirements": requirements, "files": names}, indent=1) + "\n")
    return [dest / name for name in names]


def prepare_venv(root: Path, wheels: list[Path], packages: list[str], arch: str = ARCH) -> str:
    """A venv at /opt/venv in the chroot with ``packages`` installed from ``wheels`` only (no network).

    On armhf the venv sees the system's site-packages (Debian's numpy), which satisfy the
    packages' numpy requirement. Returns the venv's python, as a path inside the chroot.
    """
    spec = target(arch)
    root = Path(root)
    folder = root / WHEELS_IN_ROOT.lstrip("/")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for wheel in wheels:
        shutil.copy2(wheel, folder / Path(wheel).name)
    python = f"{VENV}/bin/python"
    if not (root / python.lstrip("/")).exists():
        started = time.monotonic()
        done = run_in_root(root, ["/usr/bin/python3", "-m", "venv", *spec.venv_args, VENV], timeout=900, arch=arch)
        if done.returncode != 0:
            raise RuntimeError(f"python3 -m venv failed in the chroot:\n{_tail(done.stdout + done.stderr)}")
        log(f"venv created in {time.monotonic() - started:.0f} s", arch)
    started = time.monotonic()
    done = run_in_root(
        root,
        [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-compile",
         "--no-cache-dir", "--no-index", "--find-links", WHEELS_IN_ROOT, *packages],
        timeout=1800, arch=arch,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install in the chroot failed:\n{_tail(done.stdout + done.stderr, 30)}")
    log(f"pip install {' '.join(packages)} in the chroot took {time.monotonic() - started:.0f} s", arch)
    return python


# --------------------------------------------------------------------------------------------
# Running a command in the chroot
# --------------------------------------------------------------------------------------------

_CPU_LINES = {
    # Raspberry Pi 5 (BCM2712).
    "cortex-a76": ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
                   "0x4", "0xd0b", "1", "108.00", "Raspberry Pi 5 Model B Rev 1.0"),
    # Raspberry Pi 4 (BCM2711).
    "cortex-a72": ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3", "108.00", "Raspberry Pi 4 Model B Rev 1.4"),
}


def arm_cpuinfo(cpu: str = "cortex-a76", count: int = 4) -> str:
    """An ARM /proc/cpuinfo as the kernel of a Raspberry Pi prints it."""
    features, variant, part, revision, bogomips, model = _CPU_LINES[cpu]
    blocks = [
        f"processor\t: {i}\nBogoMIPS\t: {bogomips}\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n"
        for i in range(count)
    ]
    return "\n".join(blocks) + f"\nRevision\t: d04170\nSerial\t\t: 0000000000000000\nModel\t\t: {model}\n"


def armv7_cpuinfo(count: int = 4) -> str:
    """/proc/cpuinfo as 32-bit Raspberry Pi OS prints it on a Pi 4 (Cortex-A72 in AArch32)."""
    blocks = [
        f"processor\t: {i}\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nBogoMIPS\t: 108.00\n"
        "Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32\n"
        "CPU implementer\t: 0x41\nCPU architecture: 7\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n"
        for i in range(count)
    ]
    return "\n".join(blocks) + "\nHardware\t: BCM2835\nRevision\t: c03114\nSerial\t\t: 0000000000000000\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"


def run_in_root(
    root: Path,
    argv: list[str],
    timeout: int,
    env: Optional[Mapping[str, str]] = None,
    binds: Optional[Mapping[str | Path, str]] = None,
    cpu: Optional[str] = None,
    cwd: str = "/",
    sysfs: bool = True,
    arch: str = ARCH,
    cpuinfo: Optional[bool] = None,
) -> subprocess.CompletedProcess:
    """Run ``argv`` in the chroot at ``root`` and return its CompletedProcess (text output captured).

    ``cpu`` (default: the architecture's, cortex-a76 for arm64) is the Pi's core, cortex-a76
    (Pi 5) or cortex-a72 (Pi 4), used twice on arm64:
    - QEMU_CPU: qemu's default "max" CPU has SVE and SME, which no Pi has; LiteRT 2.3's XNNPACK
      then takes an SME path whose int8 results are wrong under bookworm's qemu 7.2 (about 80%
      of the digits differ from the host). Pass ``env={"QEMU_CPU": ...}`` to override.
    - /proc/cpuinfo: /proc and /sys (read-only) are mounted, and an ARM cpuinfo is bound over
      /proc/cpuinfo: qemu 7.2 shows the host's x86 one, and onnxruntime and LiteRT (cpuinfo
      library) then die with SIGSEGV at start.
    On armhf (qemu-arm) ``cpu`` only sets QEMU_CPU, and no cpuinfo is bound unless
    ``cpuinfo=True`` (a Pi's 32-bit one); see ``TARGETS["armhf"]`` for why.
    /dev is bound from the host, and ``binds`` maps host directories to paths in the chroot
    (e.g. ``{work: "/work"}``). Everything is unmounted afterwards, on failure and timeout too.
    The environment is clean (PATH with /opt/venv/bin first, HOME, LANG, QEMU_CPU) plus ``env``.
    """
    spec = target(arch)
    cpu = cpu or spec.cpu
    bind_cpuinfo = spec.cpuinfo if cpuinfo is None else cpuinfo
    root = Path(os.path.realpath(root))
    if not (root / "usr" / "bin").is_dir():
        raise FileNotFoundError(f"{root} is not a root file system")
    fake_cpuinfo = root / "etc" / "digitkit-cpuinfo"
    if bind_cpuinfo:
        fake_cpuinfo.write_text(arm_cpuinfo(cpu) if spec.arch == "arm64" else armv7_cpuinfo())
    mounted: list[Path] = []

    def mount(args: list[str], point: Path) -> None:
        _run(["mount", *args, point])
        mounted.append(point)

    try:
        (root / "proc").mkdir(exist_ok=True)
        mount(["-t", "proc", "proc"], root / "proc")
        if bind_cpuinfo:
            mount(["--bind", fake_cpuinfo], root / "proc" / "cpuinfo")
        if sysfs:
            (root / "sys").mkdir(exist_ok=True)
            mount(["-t", "sysfs", "-o", "ro", "sysfs"], root / "sys")
        (root / "dev").mkdir(exist_ok=True)
        mount(["--bind", "/dev"], root / "dev")
        for host, inside in (binds or {}).items():
            point = root / str(inside).lstrip("/")
            Path(host).mkdir(parents=True, exist_ok=True)
            point.mkdir(parents=True, exist_ok=True)
            mount(["--bind", os.path.realpath(host)], point)
        full_env = {"PATH": _CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TMPDIR": "/tmp", **({"QEMU_CPU": cpu} if cpu else {}), **(env or {})}
        command = ["chroot", str(root), "/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", cwd, *map(str, argv)]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=full_env)
    finally:
        for point in reversed(mounted):
            if _run(["umount", point], check=False).returncode != 0:
                _run(["umount", "-l", point], check=False)
        unmount_all(root)
