"""`verify --report`: confusion matrices, misclassified digits, training curves, one HTML page.

matplotlib is optional (a device rarely has it): without it, verify still gates and says which
extra the report needs.
"""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from digitkit.runtime.errors import BackendUnavailableError
from digitkit.runtime.files import atomic_path, ensure_writable_dir, write_bytes_atomic
from digitkit.runtime.manifest import Manifest

if TYPE_CHECKING:
    from .verification import ParityResult


def require_plotting() -> None:
    """Checked before verification starts, so a missing matplotlib costs no run."""
    if importlib.util.find_spec("matplotlib") is None:
        raise BackendUnavailableError(
            "--report needs matplotlib, which is not installed",
            "pip install 'digitkit[report]', or drop --report",
        )


def _pyplot() -> Any:
    require_plotting()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _save(fig, plt, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_confusion(plt, matrix: np.ndarray, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for i in range(10):
        for j in range(10):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if i == j else "black",
                )
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true", title=title)
    _save(fig, plt, path)


def plot_misclassified(plt, x_test, y_test, y_pred, title: str, path: Path, limit: int = 40) -> int:
    wrong = np.flatnonzero(y_pred != y_test)[:limit]
    columns = 10
    rows = max(1, int(np.ceil(len(wrong) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong):
        ax.imshow(x_test[index], cmap="gray")
        ax.set_title(f"{y_test[index]}→{y_pred[index]}", fontsize=9, color="crimson")
    fig.suptitle(f"{title}: first {len(wrong)} misclassified (true→predicted)", fontsize=10)
    _save(fig, plt, path)
    return len(wrong)


def plot_training(plt: Any, epochs: Sequence[Mapping[str, float]], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    x = [e["epoch"] for e in epochs]
    for key, ax in (("loss", left), ("val_loss", left), ("accuracy", right), ("val_accuracy", right)):
        if all(key in e for e in epochs):
            ax.plot(x, [e[key] for e in epochs], marker="o", label=key.replace("val_", "test "))
    left.set(title="loss", xlabel="epoch")
    right.set(title="accuracy", xlabel="epoch")
    left.legend()
    right.legend()
    _save(fig, plt, path)


def write_report(
    directory: Path, manifest: Manifest, results: list[ParityResult], x_test: np.ndarray, y_test: np.ndarray
) -> Path:
    """Write the report; returns the HTML page."""
    plt = _pyplot()
    directory = ensure_writable_dir(Path(directory), "report", "--report")
    sections = []
    training = manifest.source_model.training.epochs if manifest.source_model.training else None
    if training:
        plot_training(plt, training, directory / "training.png")
        sections.append("<h2>Training</h2><img src='training.png' alt='training curves'>")
    seen = set()
    for r in results:
        if r.predictions is None or r.file in seen:
            continue
        seen.add(r.file)
        stem = Path(r.file).name.replace(".", "_")
        plot_confusion(
            plt,
            confusion_matrix(y_test, r.predictions),
            f"{r.file} ({r.backend})",
            directory / f"{stem}_confusion.png",
        )
        count = plot_misclassified(
            plt, x_test, y_test, r.predictions, r.file, directory / f"{stem}_misclassified.png"
        )
        per_class = " ".join(f"{d}:{a:.3f}" for d, a in enumerate(r.per_class_accuracy))
        sections.append(
            f"<h2>{html.escape(r.file)}</h2><p>accuracy {r.accuracy:.4f}, agreement {100 * r.agreement:.2f}%, "
            f"per class {html.escape(per_class)}; {count} misclassified shown</p>"
            f"<img src='{stem}_confusion.png' alt='confusion matrix'><img src='{stem}_misclassified.png' alt='misclassified digits'>"
        )
    rows = "".join(
        f"<tr><td>{'PASS' if r.passed else 'FAIL'}</td><td>{html.escape(r.file)}</td><td>{r.backend}</td><td>{r.accuracy:.4f}</td>"
        f"<td>{-r.drop_pp + 0.0:+.2f}</td><td>{100 * r.agreement:.2f}%</td><td>{html.escape('; '.join(f.message for f in r.failures))}</td></tr>"
        for r in results
    )
    page = directory / "index.html"
    write_bytes_atomic(
        page,
        f"""<!doctype html><html><head><meta charset='utf-8'><title>digitkit verify</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}td,th{{padding:2px 10px;text-align:left}}img{{max-width:100%;margin:4px}}</style></head><body>
<h1>digitkit verify</h1><p>Keras reference accuracy {manifest.source_model.test_accuracy:.4f}; manifest {html.escape(manifest.name)}</p>
<table><tr><th></th><th>artifact</th><th>backend</th><th>accuracy</th><th>vs keras pp</th><th>agreement</th><th>failures</th></tr>{rows}</table>
{"".join(sections)}</body></html>
""".encode(),
    )
    return page
