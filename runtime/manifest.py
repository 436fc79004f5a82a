"""The manifest: the contract between export and the device. Documented in docs/manifest.md.

Export writes it (``digitkit.export.manifest``); this module reads and checks it, with nothing but
the standard library and numpy, so a device can trust an artifact without TensorFlow.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ArtifactError, HashMismatchError, SchemaVersionError
from .hashing import sha256_file

MANIFEST_NAME = "manifest.json"
SCHEMA_NAME = "digitkit.manifest"
SCHEMA_VERSION = 1

# The preprocessing every artifact expects: the same as the Keras model was trained on.
PREPROCESSING = {
    "image": "28x28 grayscale",
    "polarity": "white digit on black background",
    "scale": "float32 pixel / 255, in [0, 1]",
    "layout": "row-major, flattened to 784",
}


@dataclass
class Manifest:
    path: Path
    data: dict

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def artifacts(self) -> list[dict]:
        return list(self.data.get("artifacts", []))

    def select(self, files=None, modes=None) -> list[dict]:
        """The artifact entries named by ``files`` and of ``modes`` (all when None); unknown names are an error."""
        entries = self.artifacts
        if files:
            wanted = set(files)
            entries = [e for e in entries if e["file"] in wanted]
            unknown = wanted - {e["file"] for e in entries}
            if unknown:
                raise ArtifactError(f"{', '.join(sorted(unknown))} not in {self.path}", "Name artifacts the manifest lists (see `digitkit info`)")
        if modes:
            entries = [e for e in entries if e["mode"] in set(modes)]
        return entries

    def entry_for(self, filename: str) -> Optional[dict]:
        for entry in self.artifacts:
            if entry.get("file") == filename:
                return entry
        return None

    @property
    def reference(self) -> dict:
        return self.data.get("source_model", {})

    def reference_predictions(self) -> np.ndarray:
        digits = self.reference.get("test_predictions", "")
        if len(digits) == 0 or not digits.isdigit():
            raise ArtifactError(
                f"{self.path} has no reference predictions", "Re-export with `digitkit export`"
            )
        return np.frombuffer(digits.encode("ascii"), dtype=np.uint8) - ord("0")

    def reference_probabilities(self) -> Optional[np.ndarray]:
        """The Keras model's test-set probabilities, when exported beside the manifest."""
        info = self.reference.get("test_probabilities")
        if not info:
            return None
        path = self.directory / info["file"]
        if not path.is_file():
            return None
        check_file_hash(path, info["sha256"])
        return np.load(path, allow_pickle=False)

    def check_artifact(self, entry: dict) -> Path:
        """The artifact's path, after checking it exists and is byte-identical to what was exported."""
        path = self.directory / entry["file"]
        if not path.is_file():
            raise ArtifactError(
                f"{path} is listed in {self.path.name} but missing",
                "Copy the whole export directory, or re-run `digitkit export`",
            )
        check_file_hash(path, entry["sha256"])
        return path


def check_file_hash(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise HashMismatchError(
            f"{path} changed since export (sha256 {actual[:12]}…, manifest says {expected[:12]}…)",
            "Copy the file again from the export, or re-run `digitkit export`",
        )


def manifest_path_for(location: str | Path) -> Path:
    location = Path(location)
    return location if location.suffix == ".json" else location / MANIFEST_NAME


def read_manifest(location: str | Path) -> Manifest:
    """Read and check the manifest in a directory (or at a .json path)."""
    path = manifest_path_for(location)
    if not path.is_file():
        raise ArtifactError(
            f"No manifest at {path}", "Point at a directory written by `digitkit export` (or a bundle)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc})", "Re-run `digitkit export`") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_NAME:
        raise ArtifactError(f"{path} is not a digitkit manifest", "Re-run `digitkit export`")
    version = data.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ArtifactError(f"{path} has no valid schema_version", "Re-run `digitkit export`")
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} uses manifest schema {version}; this digitkit reads up to {SCHEMA_VERSION}",
            "Upgrade digitkit on this machine: pip install -U digitkit",
        )
    for entry in data.get("artifacts", []):
        missing = {"file", "format", "mode", "sha256"} - set(entry)
        if missing:
            raise ArtifactError(f"{path} has an artifact entry without {', '.join(sorted(missing))}", "Re-run `digitkit export`")
    return Manifest(path=path, data=data)


def find_manifest_for(artifact: Path) -> Optional[Manifest]:
    """The manifest beside an artifact, if there is one and it lists the artifact."""
    candidate = artifact.parent / MANIFEST_NAME
    if not candidate.is_file():
        return None
    manifest = read_manifest(candidate)
    return manifest if manifest.entry_for(artifact.name) is not None else None
