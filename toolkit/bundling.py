"""A deployable bundle: one directory (and its tar.gz) to copy to a device.

It holds the chosen artifacts, a manifest listing only them, the Keras reference probabilities,
the MNIST test set as the parity set, the digitkit wheel when it can be built, and a README with
the install command for each kind of Pi. `digitkit verify --bundle DIR` re-proves parity there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from digitkit.runtime.errors import ArtifactError, DataError, InputError
from digitkit.runtime.files import (
    ensure_writable_dir,
    new_staging_dir,
    replace_dir,
    uninterrupted,
    write_json_atomic,
)
from digitkit.runtime.hashing import sha256_file
from digitkit.runtime.manifest import (
    MANIFEST_NAME,
    ArtifactEntry,
    BundleInfo,
    FileRef,
    Manifest,
    read_manifest,
)

from .bundle_readme import readme_text
from .data import MNIST_SHA256, TEST_FILES, resolve_data_dir

PARITY_DIR = "mnist"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def choose_entries(
    manifest: Manifest, files: Optional[Iterable[str]], modes: Optional[Iterable[str]]
) -> list[ArtifactEntry]:
    entries = manifest.select(files, modes)
    if not entries:
        raise InputError(
            "No artifacts chosen for the bundle", "Drop --artifact/--mode filters or export those modes first"
        )
    return entries


def build_wheel(directory: Path) -> Optional[Path]:
    """digitkit's own wheel, when running from a source checkout; None otherwise."""
    if not (PROJECT_ROOT / "pyproject.toml").is_file():
        return None
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(directory),
            str(PROJECT_ROOT),
        ],
        capture_output=True,
        text=True,
    )
    wheels = sorted(directory.glob("digitkit-*.whl"))
    return wheels[-1] if result.returncode == 0 and wheels else None


def build_bundle(
    export_dir: Path,
    out: Path,
    files: Optional[Iterable[str]] = None,
    modes: Optional[Iterable[str]] = None,
    data_dir: Optional[Path] = None,
    include_wheel: bool = True,
    force: bool = False,
    on_step: Optional[Callable[[str], None]] = None,
) -> tuple[Path, Path]:
    """Write ``out/`` and ``out.tar.gz`` atomically; returns both paths."""
    manifest = read_manifest(export_dir)
    entries = choose_entries(manifest, files, modes)
    for entry in entries:
        manifest.check_artifact(entry)
    source_data = resolve_data_dir(data_dir, names=TEST_FILES)
    out = Path(out)
    check_bundle_target(out, manifest.directory, force)
    parent = ensure_writable_dir(out.parent if str(out.parent) else Path("."), "bundle")
    staging = new_staging_dir(parent)
    try:
        root = staging / out.name
        (root / PARITY_DIR).mkdir(parents=True)
        for entry in entries:
            for path in (
                manifest.path_of(entry),
                *manifest.check_companions(entry),
            ):  # a C source's header too
                shutil.copy2(path, root / path.name)
        probabilities = manifest.source_model.test_probabilities
        if probabilities and (manifest.directory / probabilities.file).is_file():
            shutil.copy2(manifest.directory / probabilities.file, root / probabilities.file)
        for name in TEST_FILES:
            shutil.copy2(source_data / name, root / PARITY_DIR / name)
        if include_wheel and on_step is not None:
            on_step("building digitkit's wheel for the bundle")
        wheel = build_wheel(root) if include_wheel else None
        info = BundleInfo(
            directory=PARITY_DIR,
            parity_set={name: MNIST_SHA256[name] for name in TEST_FILES},
            wheel=FileRef(wheel.name, sha256_file(wheel)) if wheel else None,
        )
        write_json_atomic(root / MANIFEST_NAME, manifest.with_artifacts(entries, info).to_json())
        (root / "README.md").write_text(readme_text(entries, wheel, out.name), encoding="utf-8")
        if on_step is not None:
            on_step(f"writing {out.name}.tar.gz")
        tar_tmp = staging / (out.name + ".tar.gz")
        with tarfile.open(tar_tmp, "w:gz") as tar:
            tar.add(root, arcname=out.name)
        with uninterrupted():  # the directory and its archive, both or neither
            replace_dir(root, out, "bundle")
            os.replace(tar_tmp, out.with_name(out.name + ".tar.gz"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out, out.with_name(out.name + ".tar.gz")


def _is_bundle(directory: Path) -> bool:
    try:
        return read_manifest(directory).bundle is not None
    except ArtifactError:
        return False


def check_bundle_target(out: Path, export_dir: Path, force: bool) -> None:
    """Before any work: ``out`` may be new, empty or a previous bundle, never anything else, so that a
    bundle never deletes what it did not write (``force`` takes a non-empty directory all the same)."""
    target, source = out.resolve(), export_dir.resolve()
    if target == source or source in target.parents or target in source.parents:
        raise InputError(
            f"--out {out} would overlap the export directory {export_dir}",
            "Pass a new directory, e.g. --out runs/bundle",
        )
    if out.exists() and not out.is_dir():
        raise InputError(
            f"--out {out} is a file", "Pass a directory path for the bundle, e.g. --out runs/bundle"
        )
    if out.is_dir() and any(out.iterdir()) and not _is_bundle(out) and not force:
        raise InputError(
            f"--out {out} holds files that are not a digitkit bundle, which bundling would replace",
            "Pass a new or empty directory, or --force to replace it",
        )
    archive = out.with_name(out.name + ".tar.gz")
    if archive.is_dir():
        raise InputError(f"{archive} is a directory, where the bundle's archive goes", "Pass another --out")


@contextlib.contextmanager
def open_bundle(location: Path) -> Iterator[tuple[Manifest, Path]]:
    """A bundle's manifest and parity-set directory, after checking every file it lists. An archive
    is unpacked into a temporary directory of its own, removed on exit: nothing beside it changes."""
    location = Path(location)
    if location.is_file() and location.name.endswith((".tar.gz", ".tgz")):
        with tempfile.TemporaryDirectory(prefix="digitkit-bundle-") as unpacked:
            yield _checked_bundle(_extract(location, Path(unpacked)))
        return
    yield _checked_bundle(location)


def _checked_bundle(location: Path) -> tuple[Manifest, Path]:
    if not location.is_dir():
        raise ArtifactError(
            f"Bundle {location} does not exist",
            "Pass the directory (or .tar.gz) written by `digitkit bundle`",
        )
    manifest = read_manifest(location)
    bundle = manifest.bundle
    if bundle is None:
        raise ArtifactError(
            f"{manifest.name} is an export manifest, not a bundle's",
            "Run `digitkit bundle` and copy its output, or use `digitkit verify DIR`",
        )
    for entry in manifest.artifacts:
        manifest.check_artifact(entry)
        manifest.check_companions(entry)
    data_dir = location / bundle.directory
    for name, expected in bundle.parity_set.items():
        path = data_dir / name
        if not path.is_file():
            raise DataError(f"Bundle parity file {path} is missing", "Copy the whole bundle directory again")
        if sha256_file(path) != expected:
            raise DataError(
                f"Bundle parity file {path} changed since bundling", "Copy the whole bundle directory again"
            )
    return manifest, data_dir


def _extract(archive: Path, into: Path) -> Path:
    """Unpack a bundle archive into ``into``, refusing absolute paths, ``..`` and links."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            top = {m.name.split("/")[0] for m in members}
            unsafe = [
                m.name
                for m in members
                if m.name.startswith("/") or ".." in Path(m.name).parts or not (m.isfile() or m.isdir())
            ]
            if len(top) != 1 or unsafe:
                raise ArtifactError(
                    f"{archive} is not a digitkit bundle archive"
                    + (f" (it holds {unsafe[0]!r})" if unsafe else ""),
                    "Pass the .tar.gz written by `digitkit bundle`",
                )
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # Python < 3.11.4: the checks above are the filter
                tar.extractall(into)
            return into / top.pop()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"{archive} cannot be unpacked ({exc})", "Copy the bundle archive again") from exc
