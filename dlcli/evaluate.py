"""Evaluate a trained run on one of its splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.config.loader import load_pipeline
from dlcli.data import create_dataset
from dlcli.errors import ConfigError
from dlcli.report.classification import classification_report, plot_confusion_matrix


def load_model(path: Path) -> Any:
    import keras

    # Importing the registries registers dlcli's serializable layers before loading.
    from dlcli.registry import load_components

    load_components()
    return keras.saving.load_model(path, compile=False)


def evaluate_run(
    target: Path,
    *,
    pipeline: Path | None = None,
    split: str | None = None,
    top_k: int | None = None,
    batch_size: int | None = None,
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
    batch_size = batch_size or cfg.evaluate.batch_size or cfg.train.batch_size

    model = load_model(model_path)
    data = create_dataset(cfg.data, seed=cfg.seed)
    labels = runs.read_labels(directory, len(data.class_names))
    if labels != data.class_names and (directory / runs.LABELS_FILE).is_file():
        raise ConfigError(
            f"The model was trained on classes {labels}, but the data has {data.class_names}."
        )
    dataset = data.split(split).batch(batch_size)
    import numpy as np

    y_true = np.concatenate([y.numpy() for _, y in dataset]) if data.sizes[split] else np.zeros(0)
    probabilities = model.predict(dataset.map(lambda x, y: x), verbose=0)
    report = classification_report(y_true.astype(int), probabilities, data.class_names, top_k)
    report["split"] = split

    out_dir = directory / "evaluation" / split
    out_dir.mkdir(parents=True, exist_ok=True)
    runs.atomic_write_json(out_dir / "metrics.json", report)
    runs.atomic_write_json(out_dir / "confusion_matrix.json", report["confusion_matrix"])
    plot_confusion_matrix(
        report["confusion_matrix"]["matrix"], data.class_names, out_dir / "confusion_matrix.png"
    )
    metrics_file = directory / runs.METRICS_FILE
    if metrics_file.is_file() and target.is_dir():
        import json

        summary = json.loads(metrics_file.read_text())
        evaluations = summary.setdefault("evaluation", {})
        evaluations[split] = {k: v for k, v in report.items() if not isinstance(v, dict)}
        runs.atomic_write_json(metrics_file, summary)
    report["output_dir"] = str(out_dir)
    return report
