"""A grid of a run's training examples, for the run report: a few of each class, decoded as
training decoded them (log spectrograms for audio), drawn by `plot_misclassified`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.errors import DataError

log = logging.getLogger("dlcli")

SAMPLES_FILE = "data_samples.png"
SCANNED = 4000  # training examples read at most to find some of each class


def draw_data_samples(run_dir: Path, limit: int = 16) -> Path:
    """Up to `limit` training examples, a few of each class, drawn into `RUN/data_samples.png`."""
    from dlcli.config.loader import load_pipeline
    from dlcli.data import create_dataset
    from dlcli.report.classification import plot_misclassified

    cfg = load_pipeline(run_dir / runs.PIPELINE_FILE).config
    data = cfg.data
    if "cache" in type(data).model_fields:  # a few examples: neither fill nor cut short a cache
        data = data.model_copy(update={"cache": "none"})
    with _quiet_log():  # the data source logs again what training logged already
        bundle = create_dataset(data, seed=cfg.seed)
        examples, captions = _training_examples(bundle, limit)
    if not examples:
        raise DataError("the training split is empty")
    path = run_dir / SAMPLES_FILE
    plot_misclassified(examples, captions, path, bundle.sample_rate)
    return path


def _training_examples(bundle: Any, limit: int) -> tuple[list[Any], list[str]]:
    """Examples of the training split in turn by class, found among its first `SCANNED`, so
    a large split is never read through; with their captions."""
    import numpy as np

    names, labels = bundle.class_names, bundle.labels.get("train") or []
    texts, paths = bundle.transcripts.get("train") or [], bundle.paths.get("train") or []
    if names and labels:
        picks = _spread(labels[:SCANNED], limit)
    else:
        picks = list(range(min(limit, bundle.sizes.get("train", 0))))
    if not picks:
        return [], []
    found: dict[int, tuple[Any, str]] = {}
    elements = bundle.split("train").take(max(picks) + 1).as_numpy_iterator()
    for index, (x, y, *_) in enumerate(elements):
        if index in picks:
            parts = [str(names[int(y)]) if names and np.ndim(y) == 0 else ""]
            parts.append(texts[index] if index < len(texts) else "")
            parts.append(Path(paths[index]).name if index < len(paths) else "")
            found[index] = (np.asarray(x), "\n".join(_clip(p) for p in parts if p))
    return [found[i][0] for i in picks], [found[i][1] for i in picks]


def _spread(labels: list[int], limit: int) -> list[int]:
    """Indices of the first example of each class, then of the second, ... until `limit`."""
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    rounds = max((len(v) for v in by_class.values()), default=0)
    order = [v[r] for r in range(rounds) for _, v in sorted(by_class.items()) if r < len(v)]
    return order[:limit]


@contextmanager
def _quiet_log() -> Iterator[None]:
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _clip(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
