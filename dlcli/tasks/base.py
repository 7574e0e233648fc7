"""What a task is: one kind of problem, owning its whole lifecycle.

A task says which head its model needs, how a batch becomes (inputs, targets), its loss and
per-replica sums, its metrics with their direction, its train and eval steps, what it keeps in
the run directory, how it evaluates, and what a prediction row holds. The trainer, `evaluate`,
`predict` and the CLI only dispatch to it (SpeechBrain's `Brain`, Keras's `train_step`).

Steps return per-replica *sums*; the trainer adds them over replicas and steps and `metrics`
divides at the end, so partial batches and any number of replicas give exact epoch metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from dlcli.config.base import StrictModel

Direction = Literal["min", "max"]


class TaskConfig(StrictModel):
    """Base of every `task:` config.

    `metrics` names what the task reports each epoch and which way is better; early stopping,
    the best checkpoint and reduce-on-plateau read the direction from here (`val_` + name for
    the validation split). `example` is a small config the registry tests use.
    """

    type: str
    metrics: ClassVar[dict[str, Direction]] = {"loss": "min"}
    example: ClassVar[dict[str, Any]] = {}
    # What the data must give per example: a label (or nothing), or a transcript.
    targets: ClassVar[str] = "label"
    # False: a blend of two images (mixup, cutmix) is not a valid example for this task.
    mixes_labels: ClassVar[bool] = True

    def default_monitor(self, has_validation: bool) -> str:
        return "val_loss" if has_validation else "loss"

    def resumable_keys(self) -> tuple[str, ...]:
        """`task.*` keys a resumed run may change (they do not touch what is trained)."""
        return ()


def metric_direction(task_config: TaskConfig, monitor: str) -> Direction | None:
    """`min` or `max` for a monitor name like `val_accuracy`; None if the task never reports it."""
    return task_config.metrics.get(monitor.removeprefix("val_"))


@dataclass
class EvalContext:
    """What `Task.evaluate` gets: the model, one split, where to write, how to batch."""

    model: Any
    data: Any  # DataBundle, already adapted by the task
    split: str
    out_dir: Path
    batch_size: int
    run_dir: Path


class Task(ABC):
    """Default behaviour of a supervised task; subclasses override what differs."""

    config: TaskConfig
    # False: nothing to fit by gradient descent (a frozen backbone's features for kNN).
    trains_weights: bool = True
    # Files this task keeps in the run directory; `export` copies them beside the model.
    artifact_files: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: TaskConfig, spec: Any) -> None:
        self.config = config
        self.spec = spec

    def default_monitor(self, has_validation: bool) -> str:
        """What early stopping and the best checkpoint follow unless the pipeline names one."""
        return self.config.default_monitor(has_validation)

    def reported_metrics(self, has_validation: bool) -> list[str]:
        """The names each epoch's logs will hold, known before training (for the monitor)."""
        names = list(self.config.metrics)
        return names + [f"val_{m}" for m in names] * has_validation

    def eval_keys(self, train_keys: list[str]) -> list[str]:
        """The sums an eval step returns; a task whose `eval_step` adds its own (an edit
        distance, say) lists them here."""
        return train_keys

    # ---- data and model -------------------------------------------------------------------
    def adapt_data(self, data: Any) -> Any:
        """The data this task trains and evaluates on (an anomaly task keeps normal training
        images only and turns labels into normal/anomaly)."""
        return data

    @abstractmethod
    def head(self) -> Any:
        """The head (`dlcli.models.heads`) the model must end in."""

    def build_model(self, model_config: Any) -> Any:
        from dlcli.models import create_model

        return create_model(model_config, self.spec, head=self.head())

    def prepare(self, batch: Any, *, training: bool) -> tuple[Any, Any]:
        """A batch from the data source to (model inputs, targets)."""
        features, labels = batch
        return features, labels

    # ---- loss and metrics (TensorFlow, per replica) ----------------------------------------
    def per_example_loss(self, targets: Any, outputs: Any) -> Any:
        """A float32 loss per example; the trainer's default steps average it over the global
        batch. A task with its own `train_step` and `eval_step` (VAE, GAN) needs none."""
        raise TypeError(
            f"task `{self.config.type}` defines neither per_example_loss nor its own "
            "train_step and eval_step"
        )

    def batch_sums(self, targets: Any, outputs: Any, per_example_loss: Any) -> dict[str, Any]:
        import tensorflow as tf

        return {
            "loss": tf.reduce_sum(per_example_loss),
            "count": tf.cast(tf.shape(per_example_loss)[0], tf.float32),
        }

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums["loss"] / count}

    # A task with its own steps defines `train_step(model, optimizers, batch) -> sums` and/or
    # `eval_step(model, batch) -> sums` (a GAN's two optimizers, CTC decoding); otherwise the
    # trainer's default steps call prepare / per_example_loss / batch_sums above.

    def optimizer_variables(self, model: Any) -> dict[str, list[Any]]:
        """One optimizer per entry, built on those variables and checkpointed: `model` for
        most tasks; a GAN returns its generator's and its discriminator's."""
        return {"model": model.trainable_variables}

    def checkpoint_objects(self) -> dict[str, Any]:
        """Trackables to save with every checkpoint besides model and optimizers."""
        return {}

    # ---- hooks around training -------------------------------------------------------------
    def on_train_begin(self, steps_per_epoch: int) -> None:
        """Called once the number of steps per epoch is known (a warm-up over epochs)."""
        return None  # nothing by default

    def on_epoch_end(self, model: Any, epoch: int, run_dir: Path) -> dict[str, float]:
        """Called after each epoch's validation; may write pictures and return extra logs."""
        return {}

    def after_training(self, model: Any, data: Any, run_dir: Path, batch_size: int) -> None:
        """Called once the final weights are in place (calibrate a threshold, fit a memory
        bank); write what evaluation and prediction will need into `run_dir`."""
        return None  # nothing by default

    def save_artifacts(self, run_dir: Path) -> None:
        """Write what this task needs at prediction time (labels, a threshold) into the run."""
        return None  # nothing by default

    def load_artifacts(self, run_dir: Path) -> None:
        """Read back what `save_artifacts` / `after_training` wrote."""
        return None  # nothing by default

    # ---- evaluation, prediction, summaries -------------------------------------------------
    @abstractmethod
    def evaluate(self, ctx: EvalContext) -> dict[str, Any]:
        """Score one split; write `metrics.json` and pictures into `ctx.out_dir`; return the
        report (its scalar entries also go into the run's `metrics.json`)."""

    def report_lines(self, report: dict[str, Any]) -> Iterator[Any]:
        """What the CLI prints after evaluation: strings or Rich renderables."""
        scalars = {k: v for k, v in report.items() if isinstance(v, float)}
        yield "  ".join(f"{k} {v:.4f}" for k, v in scalars.items())

    def predict_outputs(self, model: Any, inputs: Any) -> Any:
        """The model's outputs for one batch of inputs, as `predict_rows` wants them (an
        anomaly task turns reconstructions or features into scores here): an array with one
        row per input, in input order."""
        return model.predict_on_batch(inputs)

    @abstractmethod
    def predict_rows(
        self, outputs: Any, paths: list[str], *, top_k: int
    ) -> Iterator[dict[str, Any]]:
        """One row per input: JSON-ready values. `outputs` are the model's batch outputs."""

    def updates_per_step(self, optimizer: str) -> int:
        """How many times optimizer `optimizer` steps per train step (a WGAN critic: 5), so its
        learning-rate schedule spans the same epochs as the others'."""
        return 1

    def serving_model(self, model: Any) -> Any:
        """The network `export` writes as SavedModel/TFLite (a GAN: its generator)."""
        return model

    def flat_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A prediction row as CSV columns (nested values flattened)."""
        return {k: v for k, v in row.items() if not isinstance(v, list | dict)}
