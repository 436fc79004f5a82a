"""What the report says, computed once from verify's results: the verdict, the rows, and per artifact
the test images on which it disagrees with the Keras model. Numbers only; the page and the summary
format them.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from digitkit.runtime.backends import BACKENDS
from digitkit.runtime.manifest import Manifest
from digitkit.runtime.version import __version__

from ..verification import Gates, ParityData, ParityResult

SHOWN_DISAGREEMENTS = 60  # per set of answers: enough to see a pattern, small enough for a phone
DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Rows are the true digit, columns the predicted one."""
    return np.bincount(labels.astype(np.int64) * 10 + predictions, minlength=100).reshape(10, 10)


def anchor(*parts: str) -> str:
    """An HTML id from file and backend names: letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts)).strip("-")


@dataclass(frozen=True)
class Disagreement:
    """One test image on which the artifact's top-1 differs from the Keras model's."""

    index: int
    label: int
    keras: int
    keras_probability: Optional[float]  # None when the manifest kept no reference probabilities
    answer: int
    answer_probability: float


@dataclass
class Answers:
    """The answers of one artifact on one or more backends that gave identical top-1 on every image."""

    backends: list[str]
    total: int  # disagreements with Keras
    counts: dict[str, int]  # by Disagreement.kind
    shown: list[Disagreement]
    confusion_delta: np.ndarray  # this artifact's confusion matrix minus the reference's


@dataclass
class ArtifactSection:
    file: str
    format: str
    mode: str
    size_bytes: Optional[int]
    results: list[ParityResult]
    answers: list[Answers] = field(default_factory=list)

    @property
    def id(self) -> str:
        return anchor("artifact", self.file)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


@dataclass(frozen=True)
class Host:
    machine: str
    system: str
    python: str
    versions: dict[str, str]  # digitkit, numpy and each backend's distribution


@dataclass
class Report:
    manifest: Manifest
    gates: Gates
    results: list[ParityResult]  # failed pairs first, otherwise in verify's order
    sections: list[ArtifactSection]
    reference_accuracy: float
    reference_confusion: np.ndarray
    host: Host
    verified_at: str

    @property
    def passed_count(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def passed(self) -> bool:
        return self.passed_count == len(self.results)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def section_of(self, result: ParityResult) -> ArtifactSection:
        return next(s for s in self.sections if s.file == result.file)

    def size_of(self, result: ParityResult) -> Optional[int]:
        return self.section_of(result).size_bytes


def pair_id(result: ParityResult) -> str:
    return anchor("pair", result.file, result.backend)


def backend_version(name: str) -> str:
    """The installed version of the distribution behind a backend, or what it uses instead."""
    spec = BACKENDS.get(name)
    module = spec.module if spec else name
    if module == "ctypes":  # the c backend: the system C compiler
        from digitkit.runtime.backends.c import find_compiler

        return find_compiler() or "no C compiler"
    try:
        return importlib.metadata.version(DISTRIBUTIONS.get(module, module.replace("_", "-")))
    except importlib.metadata.PackageNotFoundError:
        return "version unknown"


def host_of(results: list[ParityResult]) -> Host:
    versions = {"digitkit": __version__, "numpy": np.__version__}
    for name in dict.fromkeys(r.backend for r in results):
        if name != "numpy":
            versions[name] = backend_version(name)
    system = f"{platform.system()} {platform.release()}".strip()
    return Host(platform.machine(), system, platform.python_version(), versions)


KINDS = ("worse", "better", "both wrong")  # Disagreement.kind, in the order they are shown


def disagreements(
    data: ParityData, predictions: np.ndarray, probabilities: Optional[np.ndarray], limit: int
) -> tuple[list[Disagreement], dict[str, int]]:
    """The ``limit`` worst disagreements (Keras right and the artifact wrong first, the most confident
    Keras answers first among them), and how many of each kind there are in all."""
    reference, labels = data.reference_predictions, data.labels
    indices = np.flatnonzero(predictions != reference)
    keras_right = reference[indices] == labels[indices]
    answer_right = predictions[indices] == labels[indices]
    kind = np.where(keras_right, 0, np.where(answer_right, 1, 2))
    keras_probability = (
        np.zeros(len(indices))
        if data.reference_probabilities is None
        else data.reference_probabilities[indices, reference[indices]]
    )
    order = indices[np.lexsort((indices, -keras_probability, kind))][:limit]
    shown = [
        Disagreement(
            int(i),
            int(labels[i]),
            int(reference[i]),
            None
            if data.reference_probabilities is None
            else float(data.reference_probabilities[i, reference[i]]),
            int(predictions[i]),
            float("nan") if probabilities is None else float(probabilities[i, predictions[i]]),
        )
        for i in order.tolist()
    ]
    counts = {name: int((kind == k).sum()) for k, name in enumerate(KINDS)}
    return shown, counts


def artifact_section(
    manifest: Manifest, results: list[ParityResult], data: ParityData, reference_confusion: np.ndarray
) -> ArtifactSection:
    """One artifact's details; backends with identical answers share one set of disagreements."""
    first = results[0]
    entry = manifest.entry_for(first.file)
    section = ArtifactSection(
        first.file, first.format, first.mode, entry.size_bytes if entry else None, results
    )
    seen: list[tuple[np.ndarray, Answers]] = []  # each distinct set of top-1 answers, once
    for result in results:
        predictions = result.predictions
        if predictions is None:  # failed to load: its row says why
            continue
        same = next((answers for earlier, answers in seen if np.array_equal(earlier, predictions)), None)
        if same is not None:
            same.backends.append(result.backend)
            continue
        shown, counts = disagreements(data, predictions, result.probabilities, SHOWN_DISAGREEMENTS)
        delta = confusion_matrix(data.labels, predictions) - reference_confusion
        answers = Answers([result.backend], sum(counts.values()), counts, shown, delta)
        seen.append((predictions, answers))
        section.answers.append(answers)
    return section


def build_report(
    manifest: Manifest,
    results: list[ParityResult],
    data: ParityData,
    gates: Gates,
    now: Optional[datetime.datetime] = None,
    step: Callable[[str], None] = lambda what: None,
) -> Report:
    """``step`` is told before each artifact, for progress."""
    ordered = sorted(results, key=lambda r: r.passed)  # stable: failures first, then verify's order
    files = list(dict.fromkeys(r.file for r in ordered))
    reference_confusion = confusion_matrix(data.labels, data.reference_predictions)
    sections = []
    for file in files:
        step(file)
        sections.append(
            artifact_section(manifest, [r for r in ordered if r.file == file], data, reference_confusion)
        )
    when = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    return Report(
        manifest,
        gates,
        ordered,
        sections,
        data.reference_accuracy,
        reference_confusion,
        host_of(results),
        when,
    )
