"""`digitkit train`: the seed recipe, deterministic, with a progress bar and a training record."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import DEFAULT_TRAIN_DIR, echo, friendly_errors


@friendly_errors
def train(
    epochs: int = typer.Option(4, help="Training epochs (the seed recipe uses 4)."),
    batch_size: int = typer.Option(128, help="Mini-batch size (the seed recipe uses 128)."),
    seed: int = typer.Option(0, help="Random seed: the same seed gives bit-identical weights."),
    data_dir: Optional[Path] = typer.Option(None, help="Directory with the four MNIST .gz files [env: DIGITKIT_DATA]."),
    out: Path = typer.Option(DEFAULT_TRAIN_DIR, help="Where model.keras and training.json are written."),
) -> None:
    """Train the MNIST MLP (784-512-512-10, rmsprop, batch 128) and write model.keras."""
    from digitkit.toolkit.progress import EpochBar
    from digitkit.toolkit.training import TrainConfig, train as run_training

    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed)
    config.check()
    with EpochBar(config.epochs) as bar:
        record = run_training(config, out, data_dir=data_dir, on_epoch=bar.update)
    echo(
        f"Trained {config.epochs} epochs in {record['train_seconds']:.1f} s: "
        f"test accuracy {record['test_accuracy']:.4f}, loss {record['test_loss']:.4f}"
    )
    echo(f"Wrote {out / 'model.keras'} and {out / 'training.json'}")
    echo(f"Next: digitkit export --model {out / 'model.keras'} --int8")
