"""Progress: the training bar (rich on a terminal, one line per epoch in logs) and a one-line step
counter for short jobs (on a terminal only: a log gets the result, not the steps)."""

from __future__ import annotations

import sys
from typing import Any, Mapping, Optional

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class EpochBar:
    def __init__(self, total: int) -> None:
        self.total = total
        self._progress: Optional[Progress] = None
        self._task: Optional[TaskID] = None

    def __enter__(self) -> EpochBar:
        if sys.stderr.isatty():
            self._progress = Progress(
                TextColumn("training"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} epochs"),
                TextColumn("{task.fields[metrics]}"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=self.total, metrics="")
        return self

    def update(self, epoch: int, logs: Mapping[str, float]) -> None:
        metrics = f"loss {logs.get('loss', 0):.4f} acc {logs.get('accuracy', 0):.4f} val_acc {logs.get('val_accuracy', 0):.4f}"
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=epoch, metrics=metrics)
        else:
            print(f"epoch {epoch}/{self.total}: {metrics}", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()


class StepLine:
    """``update(done, total, what)`` rewrites one status line on a terminal's stderr; cleared at the end."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.shown = sys.stderr.isatty()

    def __enter__(self) -> StepLine:
        return self

    def update(self, done: int, total: int, what: str) -> None:
        if self.shown:
            sys.stderr.write(f"\r\x1b[K{self.label}: {done}/{total} {what}")
            sys.stderr.flush()

    def __exit__(self, *exc: Any) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
