"""Predict labels for image files, folders and globs with a trained model."""

from __future__ import annotations

import glob
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.data.images import IMAGE_EXTENSIONS, image_dataset, scan_images
from dlcli.errors import ConfigError


@dataclass
class Predictions:
    rows: list[dict[str, Any]]
    seconds: float
    skipped: list[str]

    @property
    def per_second(self) -> float:
        return len(self.rows) / self.seconds if self.seconds else 0.0


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files as given, folders searched recursively for images, globs expanded; order kept."""
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            found.append(str(path))
        elif any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            found += [m for m in matches if Path(m).suffix.lower() in IMAGE_EXTENSIONS]
        else:
            raise ConfigError(f"Input not found: {item}", hint="give image files, folders or globs")
    if not found:
        raise ConfigError(
            f"No images found in: {', '.join(inputs)}",
            hint=f"supported extensions: {', '.join(IMAGE_EXTENSIONS)}",
        )
    return found


def predict_files(
    target: Path, inputs: list[str], *, top_k: int = 3, batch_size: int = 64
) -> Predictions:
    from dlcli.models.layers import load_keras_model

    model_path, directory = runs.find_model(target)
    files = expand_inputs(inputs)
    model = load_keras_model(model_path)
    _, height, width, channels = model.input_shape
    labels = runs.read_labels(directory, int(model.output_shape[-1]))
    scan = scan_images(files, [0] * len(files), on_bad_file="skip")
    if not scan.good:
        raise ConfigError(f"None of the {len(files)} input files is a readable image.")
    files = scan.good
    dataset = image_dataset(files, scan.labels, (height, width), channels)
    dataset = dataset.map(lambda x, y: x).batch(batch_size)

    import numpy as np

    started = time.perf_counter()
    probabilities = model.predict(dataset, verbose=0)
    seconds = time.perf_counter() - started
    k = min(top_k, len(labels))
    top = np.argsort(-probabilities, axis=1)[:, :k]
    rows = [
        {
            "path": path,
            "label": labels[int(indices[0])],
            "probability": float(probs[indices[0]]),
            "top_k": [{"label": labels[int(i)], "probability": float(probs[i])} for i in indices],
        }
        for path, probs, indices in zip(files, probabilities, top, strict=True)
    ]
    return Predictions(rows, seconds, skipped=[path for path, _ in scan.bad])


def write_predictions(predictions: Predictions, path: Path) -> None:
    """CSV (label_1, probability_1, ... columns) or JSONL, chosen by the file's extension."""
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(row) + "\n" for row in predictions.rows)
        runs.atomic_write_text(path, text)
        return
    if path.suffix.lower() != ".csv":
        raise ConfigError(
            f"Invalid value for option `--output`. Received: {path}. "
            "Expected a file ending in .csv or .jsonl."
        )
    flat = []
    for row in predictions.rows:
        item: dict[str, Any] = {"path": row["path"]}
        for rank, entry in enumerate(row["top_k"], start=1):
            item[f"label_{rank}"] = entry["label"]
            item[f"probability_{rank}"] = round(entry["probability"], 6)
        flat.append(item)
    runs.atomic_write_csv(path, flat)
