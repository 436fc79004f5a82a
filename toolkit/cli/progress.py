"""Progress: the training bar (rich on a terminal, one line per epoch in logs) and a one-line step
counter for short jobs (on a terminal only: a log gets the result, not the steps)."""

from __future__ import annotations

import os
import sys
from typing import IO, Any, Mapping, Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class EpochBar:
    """On a terminal, a live bar from the start: a spinner and the elapsed time while MNIST and
    TensorFlow load, then every batch of every epoch (``batch``), with the metrics of the last epoch
    (``update``). Off a terminal, one line per epoch and no batch callback (``live`` is False).

    The bar writes to its own copy of fd 2: TensorFlow's import runs with fd 2 silenced (quiet.py),
    and the spinner must keep turning through it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.live = sys.stderr.isatty()
        self._progress: Optional[Progress] = None
        self._task: Optional[TaskID] = None
        self._stream: Optional[IO[str]] = None
        self._epochs_done = 0
        self._batch = 0  # the furthest batch of the current epoch (Keras may report them out of order)

    def __enter__(self) -> EpochBar:
        if self.live:
            sys.stderr.flush()
            self._stream = os.fdopen(
                os.dup(sys.stderr.fileno()), "w", encoding=sys.stderr.encoding, errors=sys.stderr.errors
            )
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[position]}"),
                TextColumn("{task.fields[metrics]}"),
                TimeElapsedColumn(),
                console=Console(file=self._stream),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "loading MNIST and TensorFlow", total=None, position="", metrics=""
            )
        return self

    def batch(self, done: int, per_epoch: int) -> None:
        """``done`` of ``per_epoch`` batches of the current epoch trained."""
        if self._progress is None or self._task is None:
            return
        self._batch = max(self._batch, min(done, per_epoch))
        self._progress.update(
            self._task,
            description="training",
            total=self.total * per_epoch,
            completed=self._epochs_done * per_epoch + self._batch,
            position=f"epoch {min(self._epochs_done + 1, self.total)}/{self.total}, batch {self._batch}/{per_epoch}",
        )

    def update(self, epoch: int, logs: Mapping[str, float]) -> None:
        metrics = f"loss {logs.get('loss', 0):.4f} acc {logs.get('accuracy', 0):.4f} val_acc {logs.get('val_accuracy', 0):.4f}"
        self._epochs_done, self._batch = epoch, 0
        if self._progress is not None and self._task is not None:
            last = epoch >= self.total
            self._progress.update(
                self._task,
                description="testing and saving" if last else "training",
                completed=self._progress.tasks[0].total if last else None,
                position=f"{epoch}/{self.total} epochs",
                metrics=metrics,
            )
        else:
            print(f"epoch {epoch}/{self.total}: {metrics}", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            if exc[0] is None and self._task is not None:
                self._progress.update(self._task, description="trained")
            self._progress.stop()
        if self._stream is not None:
            self._stream.close()


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
