"""A small epoch progress bar: rich when attached to a terminal, one line per epoch otherwise."""
from __future__ import annotations

import sys


class EpochBar:
    def __init__(self, total: int) -> None:
        self.total = total
        self._progress = None
        self._task = None

    def __enter__(self):
        if sys.stderr.isatty():
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

                self._progress = Progress(
                    TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} epochs"),
                    TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(), transient=False,
                )
                self._progress.start()
                self._task = self._progress.add_task("train", total=self.total, metrics="")
            except ImportError:
                self._progress = None
        return self

    def update(self, epoch: int, logs: dict) -> None:
        metrics = f"loss {logs.get('loss', 0):.4f} acc {logs.get('accuracy', 0):.4f} val_acc {logs.get('val_accuracy', 0):.4f}"
        if self._progress is not None:
            self._progress.update(self._task, completed=epoch, metrics=metrics)
        else:
            print(f"epoch {epoch}/{self.total}: {metrics}", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
