"""`dlcli generate`: images from a trained generative run (VAE decoder, GAN generator), one PNG
each plus a grid, all written through temporary names."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcli import runs
from dlcli.errors import ConfigError
from dlcli.registry import did_you_mean

GRID_FILE = "grid.png"
GRID_MAX = 100  # images in the grid: the first ones, in a near-square layout


@dataclass
class Generated:
    files: list[str]
    grid: str
    classes: list[str] | None  # the class of each file (conditional runs)


def generate_images(
    target: Path, count: int, output: Path, *, class_name: str | None = None, seed: int = 0
) -> Generated:
    """Write `count` generated images into `output` (`0000.png`, ... or `0000_<class>.png`)
    and `grid.png`; a conditional run spreads them over its classes unless `class_name`."""
    from dlcli.models.loading import load_keras_model
    from dlcli.tasks import create_task
    from dlcli.tasks.generation import GenerativeTask, tile, write_png

    handle = runs.open_run(target, require_pipeline=True)
    task = create_task(handle.config.task, handle.spec, run_dir=handle.directory)
    if not isinstance(task, GenerativeTask):
        raise ConfigError(
            f"{handle.directory} is a `{handle.config.task.type}` run; `dlcli generate` needs "
            "a generative one (task type vae or gan).",
            hint="`dlcli predict` is the command for this run",
        )
    names = handle.spec.class_names or []
    labels = None
    if class_name is not None:
        if not task.config.conditional:
            raise ConfigError(
                f"Invalid value for option `--class`: the run {handle.directory} is not "
                "class-conditional (task.conditional: false), so it cannot be asked for a class.",
                hint="leave out --class, or train with task.conditional: true",
            )
        if class_name not in names:
            raise ConfigError(
                f"Invalid value for option `--class`. Received: {class_name!r}. Expected one "
                f"of: {', '.join(names)}.",
                hint=did_you_mean(class_name, names),
            )
        labels = np.full(count, names.index(class_name), np.int32)
    elif task.config.conditional:
        labels = np.arange(count, dtype=np.int32) % len(names)
    model = load_keras_model(handle.model_path)
    images = task.generate(model, count, labels=labels, seed=seed)
    output.mkdir(parents=True, exist_ok=True)
    width = len(str(max(count - 1, 1)))
    files, classes = [], None if labels is None else [names[i] for i in labels]
    for i, image in enumerate(images):
        suffix = f"_{classes[i]}" if classes else ""
        path = output / f"{i:0{width}d}{suffix}.png"
        write_png(np.rint(image).astype(np.uint8), path)
        files.append(str(path))
    shown = images[:GRID_MAX]
    columns = max(1, math.ceil(math.sqrt(len(shown))))
    if labels is not None and class_name is None:
        columns = min(len(names), len(shown))  # a column per class
    rows = max(1, math.ceil(len(shown) / columns))
    write_png(tile(shown, rows, columns), output / GRID_FILE)
    return Generated(files, str(output / GRID_FILE), classes)
