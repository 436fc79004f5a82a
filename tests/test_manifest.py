"""The manifest as types: every field documented, a release's schema-1 manifests still load, round
trips keep everything, and a malformed manifest names the key at fault."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from digitkit.runtime.errors import ArtifactError, SchemaVersionError
from digitkit.runtime.manifest import (
    MANIFEST_NAME,
    ArtifactEntry,
    Manifest,
    documented_types,
    json_keys,
    read_manifest,
)

ROOT = Path(__file__).resolve().parent.parent
RELEASED = (
    Path(__file__).with_name("data") / "manifest-schema1-v0.1.0.json"
)  # written by digitkit 0.1.0's export


def documented_sections() -> dict[str, set[str]]:
    """docs/manifest.md: each ``## section [`Type`]`` heading and the keys in its table's first column."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in (ROOT / "docs" / "manifest.md").read_text().splitlines():
        heading = re.match(r"^## (.+?) \[`(\w+)`\]$", line)
        if heading:
            current = heading.group(1)
            sections[current] = set()
        elif line.startswith("#"):
            current = None
        elif current and line.startswith("| `"):
            sections[current] |= set(re.findall(r"`([a-z_0-9]+)`", line.split("|")[1]))
    return sections


def test_every_type_is_documented_field_for_field():
    sections = documented_sections()
    assert set(sections) == set(documented_types())
    for section, cls in documented_types().items():
        assert sections[section] == json_keys(cls), (
            f"docs/manifest.md section {section!r} against {cls.__name__}"
        )


def test_a_released_schema_1_manifest_loads_and_round_trips(tmp_path):
    manifest = read_manifest(RELEASED)
    assert manifest.schema_version == 1
    assert [e.mode for e in manifest.artifacts] == [
        "fp32",
        "fp16",
        "dynamic",
        "int8",
        "int8-pixels",
        "fp32",
        "dynamic",
        "int8",
    ]
    int8 = manifest.entry_for("digit_mlp_int8.tflite")
    assert int8 is not None and int8.inputs[0].zero_point == -128 and int8.converter is not None
    assert len(manifest.reference_predictions()) == 10000
    assert (
        manifest.source_model.training is not None and manifest.source_model.training.epochs[-1]["epoch"] == 4
    )
    assert manifest.to_json() == json.loads(RELEASED.read_text())


def test_unknown_keys_survive_a_round_trip():
    data = json.loads(RELEASED.read_text())
    data["signed_by"] = "a newer exporter"
    data["artifacts"][0]["metadata"] = {"embedded": True}
    again = Manifest.from_json(data).to_json()
    assert again["signed_by"] == "a newer exporter" and again["artifacts"][0]["metadata"] == {
        "embedded": True
    }


def test_a_bundle_manifest_lists_only_its_entries():
    manifest = read_manifest(RELEASED)
    chosen = manifest.select(modes=["int8"])
    bundled = manifest.with_artifacts(chosen)
    assert [e.file for e in bundled.artifacts] == ["digit_mlp_int8.tflite", "digit_mlp_int8.onnx"]
    assert bundled.source_model == manifest.source_model


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda d: d["artifacts"][2].pop("sha256"), "artifacts[2].sha256 is missing"),
        (lambda d: d["artifacts"][0].update(size_bytes="big"), "artifacts[0].size_bytes has the wrong type"),
        (lambda d: d["artifacts"][1].update(file="../../etc/passwd"), "is not a plain file name"),
        (lambda d: d["source_model"].pop("test_accuracy"), "source_model.test_accuracy is missing"),
        (lambda d: d.update(artifacts={"file": "x"}), "artifacts has the wrong type"),
        (lambda d: d["artifacts"][3]["inputs"][0].update(shape=["a"]), "artifacts[3].inputs[0].shape"),
        (lambda d: d.update(bundle={"directory": "/etc", "parity_set": {}}), "leaves the bundle"),
        (lambda d: d.update(schema="other"), "is not a digitkit manifest"),
    ],
)
def test_a_malformed_manifest_names_the_key_at_fault(tmp_path, damage, fragment):
    data = json.loads(RELEASED.read_text())
    damage(data)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=re.escape(fragment)):
        read_manifest(tmp_path)


def test_a_newer_schema_asks_for_an_upgrade(tmp_path):
    data = json.loads(RELEASED.read_text())
    data["schema_version"] = 2
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(SchemaVersionError, match="Upgrade digitkit"):
        read_manifest(tmp_path)


def test_entries_are_values():
    entry = read_manifest(RELEASED).artifacts[0]
    assert isinstance(entry, ArtifactEntry)
    assert replace(entry, sha256="0" * 64) != entry
