"""The manifest: the contract between export and the device, as types. Documented in docs/manifest.md.

Export builds these objects and writes them with ``to_json``; every reader (the runtime, verify,
bundle, info) gets them from ``read_manifest`` and reads attributes. Nothing outside this module
indexes the JSON. Only the standard library and numpy are used, so a device can trust an artifact
without TensorFlow. Unknown keys are kept (``extra``) and written back: a newer exporter's optional
keys survive a bundle made by an older digitkit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, TypeVar

import numpy as np

from .backends.base import TensorInfo
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
_REEXPORT = "Re-run `digitkit export`"

T = TypeVar("T")


class _Reader:
    """Typed access to one JSON object, naming the place of any problem (``artifacts[2].sha256``)."""

    def __init__(self, data: object, where: str, source: str) -> None:
        if not isinstance(data, dict):
            raise ArtifactError(f"{source}: {where} is not an object", _REEXPORT)
        self.data: dict[str, Any] = data
        self.where = where
        self.source = source
        self.used: set[str] = set()

    def _get(self, key: str, kinds: tuple[type, ...], required: bool) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise ArtifactError(f"{self.source}: {self._at(key)} is missing", _REEXPORT)
            return None
        value = self.data[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ArtifactError(
                f"{self.source}: {self._at(key)} has the wrong type ({type(value).__name__})", _REEXPORT
            )
        return value

    def _at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def text(self, key: str, default: Optional[str] = None) -> str:
        value = self._get(key, (str,), default is None)
        return default if value is None else value  # type: ignore[return-value]

    def integer(self, key: str, default: Optional[int] = None) -> int:
        value = self._get(key, (int,), default is None)
        return default if value is None else value  # type: ignore[return-value]

    def number(self, key: str) -> float:
        return float(self._get(key, (int, float), True))

    def optional_int(self, key: str) -> Optional[int]:
        value = self._get(key, (int,), False)
        return None if value is None else int(value)

    def optional_str(self, key: str) -> Optional[str]:
        value = self._get(key, (str,), False)
        return None if value is None else str(value)

    def mapping(self, key: str, required: bool = True) -> dict[str, Any]:
        value = self._get(key, (dict,), required)
        return dict(value) if value is not None else {}

    def strings(self, key: str, required: bool = True) -> dict[str, str]:
        value = self.mapping(key, required)
        if not all(isinstance(v, str) for v in value.values()):
            raise ArtifactError(f"{self.source}: {self._at(key)} must map names to strings", _REEXPORT)
        return value

    def child(self, key: str, required: bool = True) -> Optional[_Reader]:
        value = self._get(key, (dict,), required)
        return None if value is None else _Reader(value, self._at(key), self.source)

    def children(self, key: str, required: bool = True) -> list[_Reader]:
        value = self._get(key, (list,), required)
        return [_Reader(item, f"{self._at(key)}[{i}]", self.source) for i, item in enumerate(value or [])]

    def extra(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k not in self.used}


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class Tool:
    """A converter or quantizer and its version."""

    name: str
    version: str

    @classmethod
    def read(cls, r: Optional[_Reader]) -> Optional[Tool]:
        return None if r is None else cls(r.text("name"), r.text("version"))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class FileRef:
    """A file beside the manifest, with the sha256 it must still have."""

    file: str
    sha256: str

    @classmethod
    def read(cls, r: Optional[_Reader]) -> Optional[FileRef]:
        return None if r is None else cls(r.text("file"), r.text("sha256"))

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256}


@dataclass(frozen=True)
class TflmArray:
    """For TensorFlow Lite Micro users: the int8 .tflite as an aligned C array, and its tensor arena."""

    source: FileRef
    header: FileRef
    model_sha256: str  # of the .tflite the array holds, byte for byte
    arena_bytes: Optional[int] = None  # the arena the header declares (measured minimum plus a margin)
    arena_min_bytes: Optional[int] = None  # the smallest arena the tflite-micro package ran it in

    @classmethod
    def read(cls, r: Optional[_Reader]) -> Optional[TflmArray]:
        if r is None:
            return None
        source, header = FileRef.read(r.child("source")), FileRef.read(r.child("header"))
        assert source is not None and header is not None
        return cls(
            source,
            header,
            r.text("model_sha256"),
            r.optional_int("arena_bytes"),
            r.optional_int("arena_min_bytes"),
        )

    def to_json(self) -> dict[str, Any]:
        data = {
            "source": self.source.to_json(),
            "header": self.header.to_json(),
            "model_sha256": self.model_sha256,
            "arena_bytes": self.arena_bytes,
            "arena_min_bytes": self.arena_min_bytes,
        }
        return _drop_none(data)


@dataclass(frozen=True)
class CSource:
    """Only for the ``c`` format: the generated C99 and what it equals."""

    header: FileRef
    model: FileRef  # the int8 .tflite it was generated from
    rounding: str  # "litert" or "tflite-micro"
    reference: str  # the runtime it equals bit for bit, in words
    flash_bytes: int  # constant data: weights, biases, requantization parameters, softmax table
    ram_bytes: int  # the scratch (static by default, on the stack with ..._SCRATCH_ON_STACK)
    tflm: Optional[TflmArray] = None

    @classmethod
    def read(cls, r: Optional[_Reader]) -> Optional[CSource]:
        if r is None:
            return None
        header, model = FileRef.read(r.child("header")), FileRef.read(r.child("model"))
        assert header is not None and model is not None
        return cls(
            header,
            model,
            r.text("rounding"),
            r.text("reference", ""),
            r.integer("flash_bytes", 0),
            r.integer("ram_bytes", 0),
            TflmArray.read(r.child("tflm", required=False)),
        )

    def to_json(self) -> dict[str, Any]:
        data = {
            "header": self.header.to_json(),
            "model": self.model.to_json(),
            "rounding": self.rounding,
            "reference": self.reference,
            "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes,
            "tflm": self.tflm.to_json() if self.tflm else None,
        }
        return _drop_none(data)

    def companion_files(self) -> list[FileRef]:
        """The files beside the .c that belong to it: its header, and the TFLite Micro array."""
        return [self.header] + ([self.tflm.source, self.tflm.header] if self.tflm else [])


def _tensor(r: _Reader) -> TensorInfo:
    shape = r._get("shape", (list,), True)
    if not all(d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in shape):
        raise ArtifactError(f"{r.source}: {r.where}.shape must hold integers or null", _REEXPORT)
    quantization = r.child("quantization", required=False)
    return TensorInfo(
        name=r.text("name"),
        shape=tuple(shape),
        dtype=r.text("dtype"),
        scale=quantization.number("scale") if quantization else 0.0,
        zero_point=quantization.integer("zero_point") if quantization else 0,
    )


@dataclass(frozen=True)
class ArtifactEntry:
    """One exported file: which row of the format table it is, its hash, and its tensors."""

    file: str
    format: str
    mode: str
    sha256: str
    size_bytes: int
    quantization: str = ""
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    converter: Optional[Tool] = None
    quantizer: Optional[Tool] = None
    opset: Optional[int] = None
    onnx_version: Optional[str] = None
    c: Optional[CSource] = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, r: _Reader) -> ArtifactEntry:
        file = r.text("file")
        if Path(file).name != file or file in ("", ".", ".."):
            raise ArtifactError(f"{r.source}: {r.where}.file {file!r} is not a plain file name", _REEXPORT)
        entry = cls(
            file=file,
            format=r.text("format"),
            mode=r.text("mode"),
            sha256=r.text("sha256"),
            size_bytes=r.integer("size_bytes", 0),
            quantization=r.text("quantization", ""),
            inputs=tuple(_tensor(t) for t in r.children("inputs", required=False)),
            outputs=tuple(_tensor(t) for t in r.children("outputs", required=False)),
            converter=Tool.read(r.child("converter", required=False)),
            quantizer=Tool.read(r.child("quantizer", required=False)),
            opset=r.optional_int("opset"),
            onnx_version=r.optional_str("onnx_version"),
            c=CSource.read(r.child("c", required=False)),
        )
        return replace(entry, extra=r.extra())

    def to_json(self) -> dict[str, Any]:
        data = {
            "file": self.file,
            "format": self.format,
            "mode": self.mode,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "quantization": self.quantization,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "converter": self.converter.to_json() if self.converter else None,
            "quantizer": self.quantizer.to_json() if self.quantizer else None,
            "opset": self.opset,
            "onnx_version": self.onnx_version,
            "c": self.c.to_json() if self.c else None,
        }
        return {**_drop_none(data), **self.extra}

    def companion_files(self) -> list[FileRef]:
        """Files that belong to this artifact besides ``file`` (a C source's header, ...)."""
        return self.c.companion_files() if self.c else []


@dataclass(frozen=True)
class Probabilities:
    """The reference model's test-set probabilities, saved beside the manifest as .npy."""

    file: str
    sha256: str
    dtype: str = "float32"
    shape: tuple[int, ...] = ()

    @classmethod
    def read(cls, r: Optional[_Reader]) -> Optional[Probabilities]:
        if r is None:
            return None
        shape = r._get("shape", (list,), False) or []
        return cls(r.text("file"), r.text("sha256"), r.text("dtype", "float32"), tuple(int(d) for d in shape))

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class TrainingSummary:
    """What ``digitkit train`` recorded: the recipe, its augmentation, its settings and each epoch's
    metrics, and the model's accuracy on the MNIST test set and on the out-of-distribution set."""

    config: Mapping[str, Any]
    epochs: tuple[Mapping[str, float], ...]
    test_accuracy: Optional[float] = None
    train_seconds: Optional[float] = None
    recipe: Optional[str] = None  # absent before recipes existed: the seed MLP
    augment: Optional[Mapping[str, Any]] = None
    parameters: Optional[int] = None
    ood_accuracy: Optional[float] = None

    @classmethod
    def read(cls, r: Optional[_Reader]) -> Optional[TrainingSummary]:
        if r is None:
            return None
        epochs = r._get("epochs", (list,), False) or []
        if not all(isinstance(e, dict) for e in epochs):
            raise ArtifactError(f"{r.source}: {r.where}.epochs must hold objects", _REEXPORT)
        accuracy = r._get("test_accuracy", (int, float), False)
        seconds = r._get("train_seconds", (int, float), False)
        recipe = r._get("recipe", (str,), False)
        augment = r._get("augment", (dict,), False)
        parameters = r._get("parameters", (int,), False)
        ood = r._get("ood_accuracy", (int, float), False)
        return cls(
            r.mapping("config", False), tuple(epochs), accuracy, seconds, recipe, augment, parameters, ood
        )

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrainingSummary:
        """From a training.json record (``digitkit.toolkit.training``)."""
        return cls(
            record.get("config", {}),
            tuple(record.get("epochs", ())),
            record.get("test_accuracy"),
            record.get("train_seconds"),
            record.get("recipe"),
            record.get("augment"),
            record.get("parameters"),
            record.get("ood_accuracy"),
        )

    def to_json(self) -> dict[str, Any]:
        data = {"config": dict(self.config), "epochs": [dict(e) for e in self.epochs]}
        optional = {
            "test_accuracy": self.test_accuracy,
            "train_seconds": self.train_seconds,
            "recipe": self.recipe,
            "augment": dict(self.augment) if self.augment is not None else None,
            "parameters": self.parameters,
            "ood_accuracy": self.ood_accuracy,
        }
        return {**data, **_drop_none(optional)}

    def describe(self) -> str:
        """One line for `digitkit info`: the recipe, augmentation, size and accuracies."""
        recipe = self.recipe or str(self.config.get("recipe", "mlp"))
        if self.augment:
            a = self.augment
            augment = (
                f"augmented (rotation ±{a.get('rotation_degrees')}°, scale ±{a.get('scale')}, "
                f"shift ±{a.get('shift_pixels')} px, strokes {a.get('stroke_probability')}, "
                f"elastic {a.get('elastic_probability')})"
            )
        else:
            augment = "not augmented"
        parts = [f"{recipe}, {augment}"]
        if self.parameters is not None:
            parts.append(f"{self.parameters:,} parameters")
        if self.test_accuracy is not None:
            parts.append(f"MNIST test {self.test_accuracy:.4f}")
        if self.ood_accuracy is not None:
            parts.append(f"out-of-distribution {self.ood_accuracy:.4f}")
        return "; ".join(parts)


@dataclass(frozen=True)
class SourceModel:
    """The model exported from (the Keras model) and its results on the test set: the reference."""

    file: str
    sha256: str
    framework: str
    test_accuracy: float
    test_predictions: str  # one digit per test image, in order
    test_probabilities: Optional[Probabilities] = None
    training: Optional[TrainingSummary] = None

    @classmethod
    def read(cls, r: _Reader) -> SourceModel:
        return cls(
            file=r.text("file"),
            sha256=r.text("sha256"),
            framework=r.text("framework", "keras"),
            test_accuracy=r.number("test_accuracy"),
            test_predictions=r.text("test_predictions", ""),
            test_probabilities=Probabilities.read(r.child("test_probabilities", required=False)),
            training=TrainingSummary.read(r.child("training", required=False)),
        )

    def to_json(self) -> dict[str, Any]:
        data = {
            "file": self.file,
            "sha256": self.sha256,
            "framework": self.framework,
            "test_accuracy": self.test_accuracy,
            "test_predictions": self.test_predictions,
            "test_probabilities": self.test_probabilities.to_json() if self.test_probabilities else None,
            "training": self.training.to_json() if self.training else None,
        }
        return _drop_none(data)


@dataclass(frozen=True)
class TestSet:
    """The images the reference results are for."""

    __test__ = False  # not a pytest class, whatever its name

    name: str
    images: int
    mnist_files_sha256: Mapping[str, str]

    @classmethod
    def read(cls, r: _Reader) -> TestSet:
        return cls(r.text("name"), r.integer("images"), r.strings("mnist_files_sha256"))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "images": self.images, "mnist_files_sha256": dict(self.mnist_files_sha256)}


@dataclass(frozen=True)
class Calibration:
    """How the int8 models were calibrated: which training images (never test images)."""

    source: str
    samples: int
    seed: int
    indices_sha256: str

    @classmethod
    def read(cls, r: Optional[_Reader]) -> Optional[Calibration]:
        if r is None:
            return None
        return cls(r.text("source"), r.integer("samples"), r.integer("seed"), r.text("indices_sha256"))

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "samples": self.samples,
            "seed": self.seed,
            "indices_sha256": self.indices_sha256,
        }


@dataclass(frozen=True)
class Host:
    """The machine that exported, and its converter versions."""

    machine: str
    python: str
    versions: Mapping[str, str] = field(default_factory=dict)  # tensorflow, keras, ...

    @classmethod
    def read(cls, r: _Reader) -> Host:
        machine, python = r.text("machine", ""), r.text("python", "")
        return cls(machine, python, {k: str(v) for k, v in r.extra().items()})

    def to_json(self) -> dict[str, Any]:
        return {"machine": self.machine, "python": self.python, **self.versions}


@dataclass(frozen=True)
class BundleInfo:
    """Only in a bundle: where its parity set lies, the set's hashes, and digitkit's wheel."""

    directory: str
    parity_set: Mapping[str, str]
    wheel: Optional[FileRef] = None

    @classmethod
    def read(cls, r: Optional[_Reader]) -> Optional[BundleInfo]:
        if r is None:
            return None
        directory = r.text("directory", "mnist")
        if Path(directory).is_absolute() or ".." in Path(directory).parts:
            raise ArtifactError(
                f"{r.source}: bundle.directory {directory!r} leaves the bundle", "Copy the bundle again"
            )
        return cls(directory, r.strings("parity_set"), FileRef.read(r.child("wheel", required=False)))

    def to_json(self) -> dict[str, Any]:
        data = {"directory": self.directory, "parity_set": dict(self.parity_set)}
        return {**data, **({"wheel": self.wheel.to_json()} if self.wheel else {})}


@dataclass(frozen=True)
class Manifest:
    """A whole manifest. ``path`` is where it was read from (None for one being built)."""

    created: str
    digitkit_version: str
    host: Host
    test_set: TestSet
    source_model: SourceModel
    artifacts: tuple[ArtifactEntry, ...]
    calibration: Optional[Calibration] = None
    bundle: Optional[BundleInfo] = None
    preprocessing: Mapping[str, str] = field(default_factory=lambda: dict(PREPROCESSING))
    schema_version: int = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)
    path: Optional[Path] = field(default=None, compare=False)

    # --- JSON --------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: object, path: Optional[Path] = None) -> Manifest:
        """Check and type a parsed manifest; any problem is an ``ArtifactError`` naming the key."""
        source = str(path) if path else "manifest"
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_NAME:
            raise ArtifactError(f"{source} is not a digitkit manifest", _REEXPORT)
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ArtifactError(f"{source} has no valid schema_version", _REEXPORT)
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{source} uses manifest schema {version}; this digitkit reads up to {SCHEMA_VERSION}",
                "Upgrade digitkit on this machine: pip install -U digitkit",
            )
        r = _Reader(data, "", source)
        r.used.update({"schema", "schema_version"})
        manifest = cls(
            created=r.text("created", ""),
            digitkit_version=r.text("digitkit_version", ""),
            host=Host.read(r.child("host")),  # type: ignore[arg-type]
            test_set=TestSet.read(r.child("test_set")),  # type: ignore[arg-type]
            source_model=SourceModel.read(r.child("source_model")),  # type: ignore[arg-type]
            artifacts=tuple(ArtifactEntry.read(a) for a in r.children("artifacts")),
            calibration=Calibration.read(r.child("calibration", required=False)),
            bundle=BundleInfo.read(r.child("bundle", required=False)),
            preprocessing=r.strings("preprocessing", required=False) or dict(PREPROCESSING),
            schema_version=version,
            path=path,
        )
        return replace(manifest, extra=r.extra())

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "created": self.created,
            "digitkit_version": self.digitkit_version,
            "host": self.host.to_json(),
            "preprocessing": dict(self.preprocessing),
            "test_set": self.test_set.to_json(),
            "source_model": self.source_model.to_json(),
            "calibration": self.calibration.to_json() if self.calibration else None,
            "artifacts": [a.to_json() for a in self.artifacts],
            "bundle": self.bundle.to_json() if self.bundle else None,
        }
        return {**_drop_none(data), **self.extra}

    # --- reading the files it names ----------------------------------------------------------

    @property
    def directory(self) -> Path:
        return self.path.parent if self.path else Path(".")

    @property
    def name(self) -> str:
        return str(self.path) if self.path else MANIFEST_NAME

    def select(
        self, files: Optional[Iterable[str]] = None, modes: Optional[Iterable[str]] = None
    ) -> list[ArtifactEntry]:
        """The entries named by ``files`` and of ``modes`` (all when None); unknown names are an error."""
        entries = list(self.artifacts)
        listed = ", ".join(e.file for e in self.artifacts)
        if files:
            wanted = {self._listed_name(f) for f in files}
            entries = [e for e in entries if e.file in wanted]
            unknown = wanted - {e.file for e in entries}
            if unknown:
                raise ArtifactError(
                    f"{', '.join(sorted(unknown))} not in {self.name}",
                    f"Pass --artifact with a file it lists: {listed}",
                )
        if modes:
            chosen = set(modes)
            present = sorted({e.mode for e in self.artifacts})
            unknown = chosen - set(present)
            if unknown:
                raise ArtifactError(
                    f"Mode {', '.join(sorted(unknown))} is not in {self.name}",
                    f"Pass --mode with one of: {', '.join(present)}",
                )
            entries = [e for e in entries if e.mode in chosen]
        return entries

    def _listed_name(self, name: str) -> str:
        """``--artifact`` as a bare file name, or a path to the file beside this manifest."""
        path = Path(name)
        if path.parent != Path(".") and path.parent.resolve() == self.directory.resolve():
            return path.name
        return name

    def entry_for(self, filename: str) -> Optional[ArtifactEntry]:
        return next((e for e in self.artifacts if e.file == filename), None)

    def path_of(self, entry: ArtifactEntry) -> Path:
        return self.directory / entry.file

    def reference_predictions(self) -> np.ndarray:
        digits = self.source_model.test_predictions
        if not digits or not digits.isascii() or not digits.isdigit():
            raise ArtifactError(f"{self.name} has no reference predictions", _REEXPORT)
        return np.frombuffer(digits.encode("ascii"), dtype=np.uint8) - ord("0")

    def reference_probabilities(self) -> Optional[np.ndarray]:
        """The reference model's test-set probabilities, when exported beside the manifest."""
        info = self.source_model.test_probabilities
        if info is None:
            return None
        path = self.directory / info.file
        if not path.is_file():
            return None
        check_file_hash(path, info.sha256)
        array: np.ndarray = np.load(path, allow_pickle=False)
        return array

    def check_artifact(self, entry: ArtifactEntry) -> Path:
        """The artifact's path, after checking it exists and is byte-identical to what was exported."""
        path = self.path_of(entry)
        if not path.is_file():
            raise ArtifactError(
                f"{path} is listed in {MANIFEST_NAME} but missing",
                "Copy the whole export directory, or re-run `digitkit export`",
            )
        check_file_hash(path, entry.sha256)
        return path

    def check_companions(self, entry: ArtifactEntry) -> list[Path]:
        """The artifact's companion files (a C header, ...), each checked like the artifact."""
        paths = []
        for ref in entry.companion_files():
            if Path(ref.file).name != ref.file or ref.file in ("", ".", ".."):
                raise ArtifactError(
                    f"{self.name}: {entry.file} names {ref.file!r}, not a plain file name", _REEXPORT
                )
            path = self.directory / ref.file
            if not path.is_file():
                raise ArtifactError(
                    f"{path} belongs to {entry.file} but is missing",
                    "Copy the whole export directory, or re-run `digitkit export`",
                )
            check_file_hash(path, ref.sha256)
            paths.append(path)
        return paths

    def with_artifacts(
        self, entries: Sequence[ArtifactEntry], bundle: Optional[BundleInfo] = None
    ) -> Manifest:
        """This manifest listing only ``entries`` (and a bundle section): what a bundle ships."""
        return replace(self, artifacts=tuple(entries), bundle=bundle, path=None)


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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc})", _REEXPORT) from exc
    return Manifest.from_json(data, path)


def find_manifest_for(artifact: Path) -> Optional[Manifest]:
    """The manifest beside an artifact, if there is one and it lists the artifact."""
    candidate = artifact.parent / MANIFEST_NAME
    if not candidate.is_file():
        return None
    manifest = read_manifest(candidate)
    return manifest if manifest.entry_for(artifact.name) is not None else None


def documented_types() -> dict[str, type]:
    """The JSON sections and the types that hold them, for the docs test."""
    return {
        "(top level)": Manifest,
        "host": Host,
        "test_set": TestSet,
        "source_model": SourceModel,
        "source_model.test_probabilities": Probabilities,
        "source_model.training": TrainingSummary,
        "calibration": Calibration,
        "artifacts[]": ArtifactEntry,
        "artifacts[].inputs[]": TensorInfo,
        "artifacts[].c": CSource,
        "artifacts[].c.tflm": TflmArray,
        "bundle": BundleInfo,
    }


def json_keys(cls: type) -> set[str]:
    """The JSON keys a type writes (dataclass fields, less bookkeeping ones)."""
    names = {f.name for f in fields(cls)} - {"extra", "path", "versions"}
    if cls is Manifest:
        names |= {"schema"}
    if cls is TensorInfo:
        names = (names - {"scale", "zero_point"}) | {"quantization"}
    return names
