"""Single-label classification: cross-entropy, accuracy, class weights, soft labels (mixup),
per-class report, confusion matrix and the most confidently wrong examples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt

from dlcli.errors import ConfigError
from dlcli.registry import TASKS
from dlcli.tasks.base import Direction, EvalContext, Task, TaskConfig

LABELS_FILE = "labels.json"
MISCLASSIFIED_SHOWN = 16


class ClassificationConfig(TaskConfig):
    """`task:` for `type: classification` (the default)."""

    type: Literal["classification"] = "classification"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    class_weight: Literal["balanced"] | dict[str, float] | None = Field(
        None, description="`balanced` (n / (classes * n_class)) or {class name: weight}"
    )
    top_k: PositiveInt = Field(3, description="evaluation also reports top-k accuracy")
    tta: Literal["none", "flip"] = Field(
        "none", description="test-time augmentation: average with mirrored images"
    )

    metrics: ClassVar[dict[str, Direction]] = {"loss": "min", "accuracy": "max"}
    example: ClassVar[dict[str, Any]] = {"label_smoothing": 0.1}

    def resumable_keys(self) -> tuple[str, ...]:
        return ("task.top_k", "task.tta")


def class_weights(
    config: ClassificationConfig, class_names: list[str], counts: list[int]
) -> list[float] | None:
    if config.class_weight is None:
        return None
    if config.class_weight == "balanced":
        total, k = sum(counts), len(counts)
        return [total / (k * c) if c else 0.0 for c in counts]
    unknown = sorted(set(config.class_weight) - set(class_names))
    if unknown:
        raise ConfigError(
            f"task.class_weight names unknown classes: {', '.join(unknown)}. "
            f"Expected some of: {', '.join(class_names)}."
        )
    return [float(config.class_weight.get(name, 1.0)) for name in class_names]


@TASKS.register("classification", config=ClassificationConfig)
class ClassificationTask(Task):
    """Single-label classification with cross-entropy."""

    config: ClassificationConfig
    artifact_files = (LABELS_FILE,)

    def __init__(self, config: ClassificationConfig, spec: Any) -> None:
        super().__init__(config, spec)
        if spec.num_classes < 2:
            raise ConfigError(
                f"Classification needs at least 2 classes. Received: {spec.class_names}.",
            )
        self.class_names: list[str] = list(spec.class_names)
        self.num_classes = len(self.class_names)
        self.weights = class_weights(config, self.class_names, spec.class_counts)

    def head(self) -> Any:
        from dlcli.models.heads import ClassesHead

        return ClassesHead(self.num_classes)

    # Labels are class indices, or soft one-hot rows when mixup or cutmix made them.
    def per_example_loss(self, targets: Any, outputs: Any) -> Any:
        import keras
        import tensorflow as tf

        probabilities = tf.cast(outputs, tf.float32)
        soft = targets.shape.rank == 2
        one_hot = tf.cast(targets, tf.float32) if soft else tf.one_hot(targets, self.num_classes)
        loss = keras.losses.categorical_crossentropy(
            one_hot, probabilities, label_smoothing=self.config.label_smoothing
        )
        if self.weights is not None:
            loss *= tf.reduce_sum(one_hot * tf.constant(self.weights, tf.float32), axis=-1)
        return loss

    def batch_sums(self, targets: Any, outputs: Any, per_example_loss: Any) -> dict[str, Any]:
        import tensorflow as tf

        truth = tf.argmax(targets, -1) if targets.shape.rank == 2 else tf.cast(targets, tf.int64)
        predicted = tf.argmax(outputs, axis=-1)
        return {
            "loss": tf.reduce_sum(per_example_loss),
            "correct": tf.reduce_sum(tf.cast(tf.equal(predicted, truth), tf.float32)),
            "count": tf.cast(tf.shape(truth)[0], tf.float32),
        }

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums["count"], 1.0)
        return {"loss": sums["loss"] / count, "accuracy": sums["correct"] / count}

    # ---- run artifacts --------------------------------------------------------------------
    def save_artifacts(self, run_dir: Path) -> None:
        from dlcli.runs import atomic_write_json

        atomic_write_json(run_dir / LABELS_FILE, self.class_names)

    def load_artifacts(self, run_dir: Path) -> None:
        import json

        path = run_dir / LABELS_FILE
        if path.is_file():
            saved = [str(x) for x in json.loads(path.read_text())]
            if self.spec.class_names is not None and saved != self.class_names:
                raise ConfigError(
                    f"The model was trained on classes {saved}, "
                    f"but the data has {self.class_names}."
                )

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> dict[str, Any]:
        from dlcli import runs
        from dlcli.report.classification import classification_report, plot_confusion_matrix

        dataset = ctx.data.batch(ctx.data.split(ctx.split), ctx.batch_size, False)
        y_true = np.concatenate([y.numpy() for _, y in dataset]).astype(int)
        probabilities = self._probabilities(ctx.model, dataset.map(lambda x, y: x))
        report = classification_report(y_true, probabilities, self.class_names, self.config.top_k)
        report["tta"] = self.config.tta
        runs.atomic_write_json(ctx.out_dir / "confusion_matrix.json", report["confusion_matrix"])
        plot_confusion_matrix(
            report["confusion_matrix"]["matrix"],
            self.class_names,
            ctx.out_dir / "confusion_matrix.png",
        )
        self._write_misclassified(dataset, y_true, probabilities, ctx.out_dir)
        return report

    def _probabilities(self, model: Any, images: Any) -> np.ndarray:
        """With `tta: flip`, averaged with the probabilities of the mirrored images."""
        probabilities = model.predict(images, verbose=0)
        if self.config.tta == "flip":
            import tensorflow as tf

            flipped = model.predict(images.map(tf.image.flip_left_right), verbose=0)
            probabilities = (probabilities + flipped) / 2.0
        return np.asarray(probabilities)

    def _write_misclassified(
        self, dataset: Any, y_true: np.ndarray, probabilities: np.ndarray, out: Path
    ) -> None:
        """A grid of the most confidently wrong predictions: where to look first."""
        from dlcli.report.classification import plot_misclassified

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
        names = self.class_names
        captions = [
            f"true {names[y_true[i]]}\npred {names[predicted[i]]} "
            f"{probabilities[i, predicted[i]]:.2f}"
            for i in worst
        ]
        plot_misclassified([images[i] for i in worst], captions, path, self.spec.sample_rate)

    def report_lines(self, report: dict[str, Any]) -> Iterator[Any]:
        from rich.table import Table

        table = Table(title=f"{report['split']} split: {report['examples']} examples", box=None)
        for column in ("class", "precision", "recall", "f1", "support"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for name, row in report["per_class"].items():
            table.add_row(
                name,
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            )
        for avg in ("macro_avg", "weighted_avg"):
            row = report[avg]
            table.add_row(
                avg.replace("_", " "),
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(report["examples"]),
                style="bold",
            )
        yield table
        top = next(k for k in report if k.startswith("top_"))
        yield (
            f"[bold]accuracy {report['accuracy']:.4f}[/]  {top} {report[top]:.4f}  "
            f"(report in {report['output_dir']})"
        )

    # ---- prediction -----------------------------------------------------------------------
    def predict_rows(
        self, outputs: Any, paths: list[str], *, top_k: int
    ) -> Iterator[dict[str, Any]]:
        probabilities = np.asarray(outputs)
        k = min(top_k, self.num_classes)
        top = np.argsort(-probabilities, axis=1)[:, :k]
        labels = self.class_names
        for path, probs, indices in zip(paths, probabilities, top, strict=True):
            yield {
                "path": path,
                "label": labels[int(indices[0])],
                "probability": float(probs[indices[0]]),
                "top_k": [
                    {"label": labels[int(i)], "probability": float(probs[i])} for i in indices
                ],
            }

    def flat_row(self, row: dict[str, Any]) -> dict[str, Any]:
        # path (and a window's start and end), then label_1, probability_1, ...
        item = {k: v for k, v in row.items() if k not in ("label", "probability", "top_k")}
        for rank, entry in enumerate(row["top_k"], start=1):
            item[f"label_{rank}"] = entry["label"]
            item[f"probability_{rank}"] = round(entry["probability"], 6)
        return item
