"""Evaluate a trained run on one of its splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dlcli import runs
from dlcli.config.loader import load_pipeline
from dlcli.data import create_dataset
from dlcli.errors import ConfigError
from dlcli.report.classification import (
    classification_report,
    plot_confusion_matrix,
    plot_misclassified,
)

MISCLASSIFIED_SHOWN = 16


def predict_probabilities(model: Any, images: Any, tta: str) -> np.ndarray:
    """Class probabilities; with `tta: flip`, averaged with those of the mirrored images."""
    probabilities = model.predict(images, verbose=0)
    if tta == "flip":
        import tensorflow as tf

        flipped = model.predict(images.map(tf.image.flip_left_right), verbose=0)
        probabilities = (probabilities + flipped) / 2.0
    return np.asarray(probabilities)


def evaluate_run(
    target: Path,
    *,
    pipeline: Path | None = None,
    split: str | None = None,
    top_k: int | None = None,
    tta: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Score the model of a run (or a .keras file with `pipeline`) and write its report."""
    model_path, directory = runs.find_model(target)
    pipeline = pipeline or directory / runs.PIPELINE_FILE
    if not pipeline.is_file():
        raise ConfigError(
            f"No pipeline found for {model_path}: expected {pipeline}.",
            hint="pass --pipeline PIPELINE.yaml to say which data to evaluate on",
        )
    cfg = load_pipeline(pipeline, overrides).config
    split = split or cfg.evaluate.split
    top_k = top_k or cfg.evaluate.top_k
    tta = tta or cfg.evaluate.tta
    batch_size = cfg.evaluate.batch_size or cfg.train.batch_size

    from dlcli.models.layers import load_keras_model

    model = load_keras_model(model_path)
    data = create_dataset(cfg.data, seed=cfg.seed)
    labels = runs.read_labels(directory, len(data.class_names))
    if labels != data.class_names and (directory / runs.LABELS_FILE).is_file():
        raise ConfigError(
            f"The model was trained on classes {labels}, but the data has {data.class_names}."
        )
    dataset = data.split(split).batch(batch_size)
    y_true = np.concatenate([y.numpy() for _, y in dataset]).astype(int)
    probabilities = predict_probabilities(model, dataset.map(lambda x, y: x), tta)
    report = classification_report(y_true, probabilities, data.class_names, top_k)
    report["split"] = split
    report["tta"] = tta

    out_dir = directory / "evaluation" / split
    out_dir.mkdir(parents=True, exist_ok=True)
    runs.atomic_write_json(out_dir / "metrics.json", report)
    runs.atomic_write_json(out_dir / "confusion_matrix.json", report["confusion_matrix"])
    plot_confusion_matrix(
        report["confusion_matrix"]["matrix"], data.class_names, out_dir / "confusion_matrix.png"
    )
    _write_misclassified(dataset, y_true, probabilities, data.class_names, out_dir)
    metrics_file = directory / runs.METRICS_FILE
    if metrics_file.is_file() and target.is_dir():
        summary = json.loads(metrics_file.read_text())
        evaluations = summary.setdefault("evaluation", {})
        evaluations[split] = {k: v for k, v in report.items() if not isinstance(v, dict)}
        runs.atomic_write_json(metrics_file, summary)
    report["output_dir"] = str(out_dir)
    return report


def _write_misclassified(
    dataset: Any, y_true: np.ndarray, probabilities: np.ndarray, names: list[str], out: Path
) -> None:
    """A grid of the most confidently wrong predictions: where to look first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    path = out / "misclassified.png"
    if len(wrong) == 0:
        path.unlink(missing_ok=True)
        return
    worst = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:MISCLASSIFIED_SHOWN]
    wanted = set(worst.tolist())
    images: dict[int, np.ndarray] = {}
    index = 0
    for batch, _ in dataset:
        for image in batch.numpy():
            if index in wanted:
                images[index] = image
            index += 1
    captions = [
        f"true {names[y_true[i]]}\npred {names[predicted[i]]} {probabilities[i, predicted[i]]:.2f}"
        for i in worst
    ]
    plot_misclassified([images[i] for i in worst], captions, path)
