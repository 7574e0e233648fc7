"""Single-label classification: cross-entropy loss, accuracy and top-k accuracy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from dlcli.config.base import StrictModel
from dlcli.registry import TASKS


class ClassificationConfig(StrictModel):
    """`task:` for `type: classification` (the default)."""

    type: Literal["classification"] = "classification"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


class ClassificationTask:
    """Everything the trainer needs to know about the problem, as strategy-agnostic sums.

    Steps return per-replica *sums* (loss, correct, count); the trainer adds them across
    replicas and steps and divides at the end, so partial batches and any number of
    replicas give exact epoch metrics.
    """

    monitor = "val_loss"

    def __init__(self, config: ClassificationConfig, num_classes: int) -> None:
        self.config = config
        self.num_classes = num_classes

    def per_example_loss(self, labels: Any, probabilities: Any) -> Any:
        import keras
        import tensorflow as tf

        probabilities = tf.cast(probabilities, tf.float32)
        if self.config.label_smoothing:
            one_hot = tf.one_hot(labels, self.num_classes)
            return keras.losses.categorical_crossentropy(
                one_hot, probabilities, label_smoothing=self.config.label_smoothing
            )
        return keras.losses.sparse_categorical_crossentropy(labels, probabilities)

    def batch_sums(self, labels: Any, probabilities: Any, per_example_loss: Any) -> dict[str, Any]:
        import tensorflow as tf

        labels = tf.cast(labels, tf.int64)
        predicted = tf.argmax(probabilities, axis=-1)
        return {
            "loss": tf.reduce_sum(per_example_loss),
            "correct": tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32)),
            "count": tf.cast(tf.size(labels), tf.float32),
        }

    @staticmethod
    def metrics(sums: dict[str, float]) -> dict[str, float]:
        count = max(sums["count"], 1.0)
        return {"loss": sums["loss"] / count, "accuracy": sums["correct"] / count}


@TASKS.register("classification", config=ClassificationConfig)
def classification(config: ClassificationConfig, *, num_classes: int) -> ClassificationTask:
    """Single-label classification with cross-entropy."""
    return ClassificationTask(config, num_classes)
