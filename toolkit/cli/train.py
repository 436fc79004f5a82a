"""`digitkit train`: a recipe (the seed MLP or a CNN), optionally augmented, deterministic, with a
progress bar and a training record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    DEFAULT_TRAIN_DIR,
    JSON_HELP,
    echo,
    emit_json,
    json_output,
    plural,
    to_stdout,
)


def train(
    recipe: Annotated[
        str, typer.Option(help="mlp: the seed MLP (784-512-512-10); cnn: a small convnet for other writers.")
    ] = "mlp",
    augment: Annotated[
        Optional[bool],
        typer.Option(
            "--augment/--no-augment",
            help="Random rotation, scale, shift, stroke thickness and elastic distortion "
            "(default: on for cnn, off for mlp).",
        ),
    ] = None,
    epochs: Annotated[
        Optional[int], typer.Option(help="Training epochs (default: 4 for mlp, 8 for cnn).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size (the seed recipe uses 128).")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives bit-identical weights.")] = 0,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Directory with the four MNIST .gz files [env: DIGITKIT_DATA].")
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Where model.keras and training.json are written.")
    ] = DEFAULT_TRAIN_DIR,
    json_path: Annotated[Optional[str], typer.Option("--json", help=JSON_HELP)] = None,
) -> None:
    """Train a recipe (default: the MNIST MLP 784-512-512-10, rmsprop, batch 128) and write model.keras."""
    from digitkit.export.tf_env import require_tensorflow
    from digitkit.runtime.files import ensure_writable_dir
    from digitkit.toolkit.cli.progress import EpochBar
    from digitkit.toolkit.training import recipe_defaults
    from digitkit.toolkit.training import train as run_training

    config = recipe_defaults(recipe, epochs=epochs, batch_size=batch_size, seed=seed, augment=augment)
    config.check()
    json_target = json_output(json_path)
    require_tensorflow()
    ensure_writable_dir(out, "training", "--out")
    with EpochBar(config.epochs) as bar:  # on a terminal, live from here: TensorFlow takes seconds to load
        record = run_training(
            config, out, data_dir=data_dir, on_epoch=bar.update, on_batch=bar.batch if bar.live else None
        )
    if to_stdout(json_target):
        emit_json(json_target, record)
        return
    augmented = "augmented" if config.augment else "not augmented"
    echo(
        f"Trained {config.recipe} ({augmented}) {plural(config.epochs, 'epoch')} in {record['train_seconds']:.1f} s: "
        f"test accuracy {record['test_accuracy']:.4f}, loss {record['test_loss']:.4f}"
    )
    emit_json(json_target, record)
    echo(f"Wrote {out / 'model.keras'} and {out / 'training.json'}")
    echo(f"Next: digitkit export --model {out / 'model.keras'} --int8")
