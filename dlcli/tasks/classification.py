"""Single-label classification: cross-entropy loss, accuracy, class weights, soft labels."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from dlcli.config.base import StrictModel
from dlcli.errors import ConfigError
from dlcli.registry import TASKS


class ClassificationConfig(StrictModel):
    """`task:` for `type: classification` (the default)."""

    type: Literal["classification"] = "classification"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    class_weight: Literal["balanced"] | dict[str, float] | None = Field(
        None, description="`balanced` (n / (classes * n_class)) or {class name: weight}"
    )


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


class ClassificationTask:
    """Everything the trainer needs to know about the problem, as strategy-agnostic sums.

    Steps return per-replica *sums* (loss, correct, count); the trainer adds them across
    replicas and steps and divides at the end, so partial batches and any number of
    replicas give exact epoch metrics. Labels are class indices, or soft one-hot rows when
    mixup or cutmix made them.
    """

    monitor = "val_loss"

    def __init__(
        self, config: ClassificationConfig, num_classes: int, weights: list[float] | None = None
    ) -> None:
        self.config = config
        self.num_classes = num_classes
        self.weights = weights

    def per_example_loss(self, labels: Any, probabilities: Any) -> Any:
        import keras
        import tensorflow as tf

        probabilities = tf.cast(probabilities, tf.float32)
        soft = labels.shape.rank == 2
        one_hot = tf.cast(labels, tf.float32) if soft else tf.one_hot(labels, self.num_classes)
        loss = keras.losses.categorical_crossentropy(
            one_hot, probabilities, label_smoothing=self.config.label_smoothing
        )
        if self.weights is not None:
            loss *= tf.reduce_sum(one_hot * tf.constant(self.weights, tf.float32), axis=-1)
        return loss

    def batch_sums(self, labels: Any, probabilities: Any, per_example_loss: Any) -> dict[str, Any]:
        import tensorflow as tf

        truth = tf.argmax(labels, -1) if labels.shape.rank == 2 else tf.cast(labels, tf.int64)
        predicted = tf.argmax(probabilities, axis=-1)
        return {
            "loss": tf.reduce_sum(per_example_loss),
            "correct": tf.reduce_sum(tf.cast(tf.equal(predicted, truth), tf.float32)),
            "count": tf.cast(tf.shape(truth)[0], tf.float32),
        }

    @staticmethod
    def metrics(sums: dict[str, float]) -> dict[str, float]:
        count = max(sums["count"], 1.0)
        return {"loss": sums["loss"] / count, "accuracy": sums["correct"] / count}


@TASKS.register("classification", config=ClassificationConfig)
def classification(
    config: ClassificationConfig, *, class_names: list[str], class_counts: list[int]
) -> ClassificationTask:
    """Single-label classification with cross-entropy."""
    weights = class_weights(config, class_names, class_counts)
    return ClassificationTask(config, len(class_names), weights)
