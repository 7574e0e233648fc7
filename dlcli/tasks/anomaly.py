"""Anomaly detection on a class-folder tree: train on the normal classes only; every other class
is an anomaly in validation and test. Scores come from an autoencoder's reconstruction error or
from the distance of an image's patch features to those of the normal training images (kNN on
a pretrained backbone, anomalib's PatchCore idea). A threshold is calibrated on validation and
saved with the run, as anomalib keeps thresholds apart from models."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt

from dlcli.config.base import StrictModel
from dlcli.data.images import image_batch
from dlcli.errors import ConfigError, DataError
from dlcli.registry import TASKS, did_you_mean
from dlcli.tasks.base import Direction, EvalContext, Task, TaskConfig
from dlcli.tasks.reconstruction import per_example_errors

log = logging.getLogger("dlcli")
ANOMALY_FILE = "anomaly.json"
BANK_FILE = "memory_bank.npy"
NORMAL, ANOMALY = 0, 1


class KnnConfig(StrictModel):
    """`task.knn`: distances to the normal training images' features."""

    k: PositiveInt = Field(1, description="average distance to the k nearest normal features")
    patches: bool = Field(
        True, description="patch features at two depths (local defects); false: one vector"
    )
    aggregate: Literal["max", "mean"] = Field(
        "max",
        description="an image's score from its patches' scores: max finds small local "
        "defects (PatchCore); mean suits whole-image anomalies (another object or class)",
    )
    coreset: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="keep this fraction of the normal features, chosen by greedy k-center "
        "coreset (PatchCore): a smaller bank that still covers them; 1 keeps all",
    )
    max_bank: PositiveInt = Field(
        100_000, description="at most this many feature vectors in the memory bank"
    )


class ThresholdConfig(StrictModel):
    """`task.threshold`: where a score becomes an `anomaly` verdict."""

    method: Literal["auto", "f1", "percentile"] = Field(
        "auto",
        description="f1: best F1 on validation (needs anomalies there); percentile: of normal "
        "validation scores; auto: f1 when validation has anomalies, else percentile",
    )
    percentile: float = Field(99.0, gt=0.0, lt=100.0)


class AnomalyConfig(TaskConfig):
    """`task:` for `type: anomaly`."""

    type: Literal["anomaly"] = "anomaly"
    normal_classes: list[str] = Field(min_length=1, description="class folders that are normal")
    score: Literal["reconstruction", "knn"] = Field(
        "reconstruction",
        description="reconstruction: an autoencoder's error; knn: distance to normal features "
        "of a pretrained backbone (`model.type: transfer`)",
    )
    knn: KnnConfig = Field(default_factory=KnnConfig)
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)

    metrics: ClassVar[dict[str, Direction]] = {"loss": "min", "roc_auc": "max"}
    example: ClassVar[dict[str, Any]] = {"normal_classes": ["a"]}

    def resumable_keys(self) -> tuple[str, ...]:
        return ("task.threshold",)


@TASKS.register("anomaly", config=AnomalyConfig)
class AnomalyTask(Task):
    """Anomaly detection: reconstruction error or kNN feature distance, calibrated threshold."""

    config: AnomalyConfig
    artifact_files = (ANOMALY_FILE, BANK_FILE)

    def __init__(self, config: AnomalyConfig, spec: Any) -> None:
        super().__init__(config, spec)
        self.trains_weights = config.score == "reconstruction"
        self.threshold: float | None = None
        self.bank: np.ndarray | None = None
        self._validation: Any = None  # (dataset, labels) for the per-epoch ROC AUC

    # ---- data -----------------------------------------------------------------------------
    def adapt_data(self, data: Any) -> Any:
        """Train on normal images only; label validation and test 0 (normal) / 1 (anomaly)."""
        import dataclasses

        import tensorflow as tf

        names = data.class_names
        unknown = [c for c in self.config.normal_classes if c not in names]
        if unknown:
            raise ConfigError(
                f"task.normal_classes names {', '.join(unknown)}, not a class of the data. "
                f"Expected some of: {', '.join(names)}.",
                hint=did_you_mean(unknown[0], names),
            )
        normal = {names.index(c) for c in self.config.normal_classes}
        if len(normal) == len(names):
            raise ConfigError("task.normal_classes lists every class: nothing is anomalous.")
        splits, sizes, labels = {}, {}, {}
        for split, dataset in data.splits.items():
            flags = [NORMAL if y in normal else ANOMALY for y in data.split_labels(split)]
            if split == "train":
                dataset = _keep_normal(dataset, flags) if flags else dataset
                flags = [f for f in flags if f == NORMAL]
            elif flags:
                dataset = _relabel(
                    dataset, [NORMAL if i in normal else ANOMALY for i in range(len(names))]
                )
            if dataset is not None and flags:
                dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(flags)))
            splits[split], sizes[split], labels[split] = dataset, len(flags), flags
        if not sizes.get("train"):
            raise DataError(
                f"No training images of the normal classes {self.config.normal_classes}."
            )
        if self.config.score == "knn" and not sizes.get("validation"):
            raise DataError(
                "task.score `knn` calibrates its threshold on validation images, and the "
                "validation split is empty.",
                hint="hold out some data: data.split.validation: 0.1",
            )
        calibration = labels.get("validation") or labels["train"]
        self._check_calibration(calibration, "validation" if sizes.get("validation") else "train")
        if sizes.get("validation") and ANOMALY in labels["validation"]:
            self._validation = (splits["validation"], np.asarray(labels["validation"]))
        log.info(
            "anomaly: normal %s; train %d normal, validation %s, test %s (normal/anomaly)",
            ", ".join(self.config.normal_classes),
            sizes["train"],
            _counts(labels.get("validation", [])),
            _counts(labels.get("test", [])),
        )
        return dataclasses.replace(
            data,
            class_names=["normal", "anomaly"],
            class_counts=[sizes["train"], 0],
            splits=splits,
            sizes=sizes,
            labels=labels,
        )

    def _check_calibration(self, labels: list[int], split: str) -> None:
        """The threshold method must be possible on the split that calibrates it: said now,
        not after training."""
        method = self.config.threshold.method
        if method == "f1" and ANOMALY not in labels:
            raise DataError(
                f"task.threshold.method `f1` needs anomalies in the {split} split; it has none.",
                hint="use `method: percentile`, or hold out validation data of other classes",
            )
        if method == "percentile" and NORMAL not in labels:
            raise DataError(
                f"task.threshold.method `percentile` needs normal images in the {split} split.",
                hint="raise data.split.validation",
            )

    def default_monitor(self, has_validation: bool) -> str:
        if self._validation is not None:
            return "val_roc_auc"  # what the task is for, and what validation can measure
        return "val_loss" if has_validation else "loss"

    def reported_metrics(self, has_validation: bool) -> list[str]:
        # ROC AUC needs both kinds of image: only validation with anomalies gives it.
        names = ["loss", "val_loss"] if has_validation else ["loss"]
        return names + ["val_roc_auc"] * (self._validation is not None)

    # ---- model and loss -------------------------------------------------------------------
    def head(self) -> Any:
        from dlcli.models.heads import FeaturesHead, ReconstructionHead

        if self.config.score == "knn":
            return FeaturesHead(patches=self.config.knn.patches)
        return ReconstructionHead(tuple(self.spec.input_shape))

    def build_model(self, model_config: Any) -> Any:
        if self.config.score == "knn":
            if model_config.type != "transfer":
                raise ConfigError(
                    f"task.score `knn` measures distances between pretrained features; model "
                    f"`{model_config.type}` would give untrained ones.",
                    hint="use `model.type: transfer` with a backbone and its weights, or "
                    "`task.score: reconstruction` with an autoencoder",
                )
            if model_config.dense:
                raise ConfigError(
                    "task.score `knn` uses the backbone's features; model.dense would put "
                    "untrained layers in front of them.",
                    hint="remove model.dense",
                )
            if model_config.weights is None:
                log.warning("kNN on a backbone without pretrained weights: random features")
        return super().build_model(model_config)

    def prepare(self, batch: Any, *, training: bool) -> tuple[Any, Any]:
        features, _ = batch
        return features, features  # an autoencoder's target is its input

    def per_example_loss(self, targets: Any, outputs: Any) -> Any:
        return per_example_errors(targets, outputs)[0]  # the MSE that is also the score

    # ---- scores ---------------------------------------------------------------------------
    def _forward(self, model: Any, inputs: Any) -> np.ndarray:
        """The model on one batch, as plain arrays: called directly, not through
        `predict_on_batch`, which a model built in a MirroredStrategy scope runs per replica."""
        import tensorflow as tf

        if getattr(self, "_forward_model", None) is not model:
            self._forward_model = model
            self._forward_fn = tf.function(lambda x: model(x, training=False))
        return np.asarray(self._forward_fn(tf.convert_to_tensor(inputs)), dtype=np.float32)

    def predict_outputs(self, model: Any, inputs: Any) -> Any:
        """Anomaly scores of one batch: higher is more anomalous."""
        outputs = self._forward(model, inputs)
        if self.config.score == "reconstruction":
            return np.asarray(per_example_errors(inputs, outputs)[0])
        if self.bank is None:
            raise ConfigError("This anomaly run has no memory bank: was training finished?")
        return _knn_scores(outputs, self.bank, self.config.knn.k, self.config.knn.aggregate)

    def scores(self, model: Any, dataset: Any, batch_size: int) -> np.ndarray:
        parts = [self.predict_outputs(model, x) for x, _ in image_batch(dataset, batch_size, False)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def on_epoch_end(self, model: Any, epoch: int, run_dir: Path) -> dict[str, float]:
        if self._validation is None:
            return {}
        from sklearn.metrics import roc_auc_score

        dataset, labels = self._validation
        return {"val_roc_auc": float(roc_auc_score(labels, self.scores(model, dataset, 64)))}

    # ---- after training: memory bank and threshold ----------------------------------------
    def after_training(self, model: Any, data: Any, run_dir: Path, batch_size: int) -> None:
        from dlcli import runs

        if self.config.score == "knn":
            self.bank = self._memory_bank(model, data.splits["train"], batch_size)
            _save_npy(run_dir / BANK_FILE, self.bank)
        split = "validation" if data.has("validation") else "train"
        labels = np.asarray(data.split_labels(split))
        scores = self.scores(model, data.splits[split], batch_size)
        self.threshold, method = calibrate(scores, labels, self.config.threshold)
        runs.atomic_write_json(
            run_dir / ANOMALY_FILE,
            {
                "score": self.config.score,
                "normal_classes": self.config.normal_classes,
                "threshold": self.threshold,
                "threshold_method": method,
                "calibrated_on": split,
                "calibration_examples": _counts(labels.tolist()),
            },
        )
        log.info("anomaly threshold %.6g (%s on %s)", self.threshold, method, split)

    def _memory_bank(self, model: Any, dataset: Any, batch_size: int) -> np.ndarray:
        parts = []
        for x, _ in image_batch(dataset, batch_size, False):
            features = self._forward(model, x)
            parts.append(features.reshape(-1, features.shape[-1]))
        features = np.concatenate(parts)
        wanted = min(
            self.config.knn.max_bank, max(1, round(len(features) * self.config.knn.coreset))
        )
        bank = features[greedy_coreset(features, wanted)] if wanted < len(features) else features
        log.info(
            "memory bank: %d of %d feature vectors (greedy coreset), %d features each",
            len(bank),
            len(features),
            bank.shape[1],
        )
        return bank

    def load_artifacts(self, run_dir: Path) -> None:
        path = run_dir / ANOMALY_FILE
        if not path.is_file():
            raise DataError(
                f"No {ANOMALY_FILE} in {run_dir}: the run has no calibrated threshold.",
                hint="did training finish? train it again, or resume it",
            )
        self.threshold = float(json.loads(path.read_text())["threshold"])
        if (run_dir / BANK_FILE).is_file():
            self.bank = np.load(run_dir / BANK_FILE)

    # ---- evaluation and prediction --------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> dict[str, Any]:
        from dlcli.report.anomaly import anomaly_report, plot_score_histogram

        labels = np.asarray(ctx.data.split_labels(ctx.split))
        scores = self.scores(ctx.model, ctx.data.split(ctx.split), ctx.batch_size)
        report = anomaly_report(scores, labels, float(self.threshold or 0.0))
        report["score"] = self.config.score
        report["normal_classes"] = self.config.normal_classes
        plot_score_histogram(
            scores, labels, report["threshold"], ctx.out_dir / "score_histogram.png"
        )
        return report

    def report_lines(self, report: dict[str, Any]) -> Iterator[Any]:
        auc = report.get("roc_auc")
        shown = "n/a (one class only)" if auc is None else f"{auc:.4f}"
        yield (
            f"{report['split']} split: {report['examples']} images "
            f"({report['anomalies']} anomalies), score {report['score']}"
        )
        yield (
            f"[bold]roc_auc {shown}[/]  pr_auc {report.get('pr_auc') or 0:.4f}  at threshold "
            f"{report['threshold']:.4g}: precision {report['precision']:.4f} recall "
            f"{report['recall']:.4f} f1 {report['f1']:.4f}  (report in {report['output_dir']})"
        )

    def predict_rows(
        self, outputs: Any, paths: list[str], *, top_k: int
    ) -> Iterator[dict[str, Any]]:
        threshold = float(self.threshold or 0.0)
        for path, score in zip(paths, np.asarray(outputs), strict=True):
            anomalous = bool(score > threshold)
            yield {
                "path": path,
                "score": float(score),
                "verdict": "anomaly" if anomalous else "normal",
                "threshold": threshold,
            }


def _keep_normal(dataset: Any, flags: list[int]) -> Any:
    import tensorflow as tf

    keep = tf.constant([f == NORMAL for f in flags])
    kept = dataset.enumerate().filter(lambda i, xy: keep[i])
    return kept.map(lambda i, xy: (xy[0], tf.constant(NORMAL, tf.int32)))


def _relabel(dataset: Any, table: list[int]) -> Any:
    import tensorflow as tf

    lookup = tf.constant(table, tf.int32)
    return dataset.map(lambda x, y: (x, tf.gather(lookup, tf.cast(y, tf.int32))))


def _knn_scores(
    features: np.ndarray, bank: np.ndarray, k: int, aggregate: str = "max"
) -> np.ndarray:
    """Per image: over its patches (`max` or `mean`), the mean distance of a patch to its k
    nearest bank vectors (a single vector per image without patches)."""
    import tensorflow as tf

    per_image = features.reshape(len(features), -1, features.shape[-1])
    queries = tf.constant(per_image.reshape(-1, per_image.shape[-1]))
    bank_t = tf.constant(bank)
    bank_sq = tf.reduce_sum(tf.square(bank_t), axis=1)
    out = []
    for start in range(0, int(queries.shape[0]), 1024):
        chunk = queries[start : start + 1024]
        d2 = (
            tf.reduce_sum(tf.square(chunk), axis=1, keepdims=True)
            - 2.0 * tf.matmul(chunk, bank_t, transpose_b=True)
            + bank_sq[None, :]
        )
        if k == 1:  # a plain minimum is far cheaper than top-k over the whole bank
            nearest = tf.reduce_min(d2, axis=1, keepdims=True)
        else:
            nearest = -tf.math.top_k(-d2, k=min(k, int(bank_t.shape[0]))).values
        out.append(tf.reduce_mean(tf.sqrt(tf.maximum(nearest, 0.0)), axis=1).numpy())
    distances = np.concatenate(out).reshape(len(features), -1)
    return distances.mean(axis=1) if aggregate == "mean" else distances.max(axis=1)


def greedy_coreset(features: np.ndarray, size: int, projection: int = 128) -> np.ndarray:
    """Indices of `size` vectors chosen by greedy k-center: each pick is the vector farthest
    from all picked so far, so the subset covers the whole set (PatchCore). Distances are taken
    in a seeded random projection to `projection` dimensions, which keeps them close enough."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    points = features
    if features.shape[1] > projection:
        matrix = rng.normal(size=(features.shape[1], projection)) / np.sqrt(projection)
        points = features @ matrix.astype(np.float32)
    points_t = tf.constant(points, tf.float32)
    first = int(rng.integers(len(points)))

    squares = tf.reduce_sum(tf.square(points_t), axis=1)

    def distances(index: Any) -> Any:  # |p - c|^2 with one pass over the points
        centre = points_t[index]
        return squares - 2.0 * tf.linalg.matvec(points_t, centre) + squares[index]

    @tf.function
    def select(start: Any) -> Any:
        nearest = distances(start)
        chosen = tf.TensorArray(tf.int32, size=size).write(0, start)
        for i in tf.range(1, size):
            pick = tf.cast(tf.argmax(nearest), tf.int32)
            chosen = chosen.write(i, pick)
            nearest = tf.minimum(nearest, distances(pick))
        return chosen.stack()

    return np.sort(select(tf.constant(first, tf.int32)).numpy())


def calibrate(scores: np.ndarray, labels: np.ndarray, config: ThresholdConfig) -> tuple[float, str]:
    """The threshold above which a score is an anomaly, and how it was chosen."""
    method = config.method
    has_anomalies = bool((labels == ANOMALY).any())
    if method == "auto":
        method = "f1" if has_anomalies else "percentile"
    if method == "f1":
        if not has_anomalies:
            raise DataError(
                "task.threshold.method `f1` needs anomalies in the validation split; it has none.",
                hint="use `percentile`, or put anomalous classes in validation",
            )
        from sklearn.metrics import precision_recall_curve

        precision, recall, thresholds = precision_recall_curve(labels, scores)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1[:-1])) if len(thresholds) else 0
        # Midway to the next lower score: a score equal to the cut-off counts as anomalous.
        cut = float(thresholds[best]) if len(thresholds) else float(scores.max())
        below = scores[scores < cut]
        return (cut + float(below.max())) / 2 if len(below) else cut, "f1"
    normal = scores[labels == NORMAL]
    return float(np.percentile(normal, config.percentile)), f"percentile {config.percentile:g}"


def _counts(labels: list[int]) -> str:
    anomalies = sum(1 for y in labels if y == ANOMALY)
    return f"{len(labels) - anomalies}/{anomalies}"


def _save_npy(path: Path, array: np.ndarray) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npy", dir=path.parent)
    os.close(fd)
    np.save(tmp, array)
    os.replace(tmp, path)
