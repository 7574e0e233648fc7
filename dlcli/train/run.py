"""Train a validated pipeline into a run directory."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.data import create_dataset
from dlcli.errors import TrainingError
from dlcli.models import create_model
from dlcli.tasks import create_task
from dlcli.train.loop import StepRunner, distribute
from dlcli.train.optim import build_optimizer
from dlcli.train.progress import EpochProgress
from dlcli.train.strategy import resolve_precision, select_strategy

log = logging.getLogger("dlcli")


@dataclass
class EarlyStopper:
    monitor: str
    patience: int
    min_delta: float
    best: float = math.inf
    best_epoch: int = 0
    waited: int = 0
    best_weights: Any = None
    mode: float = field(init=False)

    def __post_init__(self) -> None:
        # Losses go down, everything else (accuracy) goes up.
        self.mode = 1.0 if "loss" in self.monitor else -1.0
        self.best = math.inf

    def update(self, epoch: int, logs: dict[str, float], model: Any) -> bool:
        """Record this epoch; return True when training should stop."""
        if self.monitor not in logs:
            raise TrainingError(
                f"train.early_stopping.monitor is `{self.monitor}`, which this run does not "
                f"report. Expected one of: {', '.join(sorted(logs))}."
            )
        value = self.mode * logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.waited = value, epoch, 0
            self.best_weights = model.get_weights()
            return False
        self.waited += 1
        return self.waited >= self.patience


def train_pipeline(cfg: Any, run_dir: Path, *, show_progress: bool = True) -> dict[str, Any]:
    """Fit `cfg` and write model, labels, history, metrics, checkpoints and TensorBoard events."""
    import keras
    import tensorflow as tf

    choice = select_strategy(cfg.train.strategy)
    precision = resolve_precision(cfg.train.precision, choice.name)
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    log.info(
        "strategy %s (%s), %d replica(s), precision %s",
        choice.name,
        choice.reason,
        choice.replicas,
        precision,
    )

    data = create_dataset(cfg.data, seed=cfg.seed)
    log.info("data: %s, classes: %s", data.sizes, ", ".join(data.class_names))
    train_data = data.split("train")
    has_validation = data.sizes.get("validation", 0) > 0
    batch = cfg.train.batch_size
    shuffle_buffer = min(cfg.train.shuffle_buffer, data.sizes["train"])

    def epoch_dataset(epoch: int) -> tuple[Any, int]:
        shuffled = train_data.shuffle(
            shuffle_buffer, seed=cfg.seed + epoch, reshuffle_each_iteration=False
        )
        return distribute(choice.strategy, shuffled, batch, training=True)

    _, steps_per_epoch = epoch_dataset(0)
    val_dist = (
        distribute(choice.strategy, data.splits["validation"], batch, training=False)[0]
        if has_validation
        else None
    )

    with choice.strategy.scope():
        model = create_model(
            cfg.model, input_shape=data.input_shape, num_classes=len(data.class_names)
        )
        optimizer = build_optimizer(cfg.train, steps_per_epoch, precision)
        optimizer.build(model.trainable_variables)
    task = create_task(cfg.task, num_classes=len(data.class_names))
    runner = StepRunner(choice.strategy, model, optimizer, task, jit_compile=cfg.train.jit_compile)

    runs.atomic_write_json(run_dir / runs.LABELS_FILE, data.class_names)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(
        checkpoint, str(run_dir / "checkpoints"), max_to_keep=cfg.train.checkpoint.keep
    )
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
    es = cfg.train.early_stopping
    stopper = EarlyStopper(es.monitor, es.patience, es.min_delta) if es else None

    progress = EpochProgress(show_progress)
    history: list[dict[str, Any]] = []
    spe = cfg.train.steps_per_execution
    epochs = cfg.train.epochs
    stopped_early = False
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        dist, steps = epoch_dataset(epoch - 1)
        iterator = iter(dist)
        totals: dict[str, float] = {}
        progress.start(epoch, epochs, steps)
        done = 0
        while done < steps:
            n = min(spe, steps - done)
            sums = runner.train(iterator, n)
            totals = {k: totals.get(k, 0.0) + v for k, v in sums.items()}
            done += n
            running = task.metrics(totals)
            if not math.isfinite(running["loss"]):
                progress.end(epoch, epochs, running, time.perf_counter() - started)
                raise TrainingError(
                    f"The training loss became {running['loss']} at epoch {epoch}, step {done}.",
                    hint="lower train.optimizer.learning_rate or set train.optimizer.clipnorm; "
                    f"the last good checkpoint is in {manager.latest_checkpoint or 'none yet'}",
                )
            progress.advance(n, running)
        logs: dict[str, Any] = {"epoch": epoch, **task.metrics(totals)}
        if val_dist is not None:
            val_sums = runner.evaluate(val_dist, list(totals))
            logs.update({f"val_{k}": v for k, v in task.metrics(val_sums).items()})
        logs["lr"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        logs["seconds"] = round(time.perf_counter() - started, 3)
        history.append(logs)
        progress.end(
            epoch, epochs, {k: v for k, v in logs.items() if k != "seconds"}, logs["seconds"]
        )
        with writer.as_default(step=epoch):
            for key, value in logs.items():
                if key != "epoch":
                    tf.summary.scalar(key, value)
        manager.save(checkpoint_number=epoch)
        runs.atomic_write_csv(run_dir / runs.HISTORY_FILE, history)
        if stopper is not None and stopper.update(epoch, logs, model):
            log.info(
                "early stopping: `%s` has not improved for %d epochs (best: epoch %d)",
                stopper.monitor,
                stopper.patience,
                stopper.best_epoch,
            )
            stopped_early = True
            break
    writer.flush()

    best_epoch = history[-1]["epoch"]
    if stopper is not None and stopper.best_weights is not None and es and es.restore_best:
        model.set_weights(stopper.best_weights)
        best_epoch = stopper.best_epoch
    runs.save_model_atomic(model, run_dir / runs.MODEL_FILE)
    final = next(h for h in history if h["epoch"] == best_epoch)
    summary = {
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "stopped_early": stopped_early,
        "train": {
            k: final[k]
            for k in final
            if not k.startswith("val_") and k not in ("epoch", "lr", "seconds")
        },
        "validation": {k[4:]: v for k, v in final.items() if k.startswith("val_")},
        "strategy": choice.name,
        "replicas": choice.replicas,
        "precision": precision,
        "data": data.sizes,
    }
    runs.atomic_write_json(run_dir / runs.METRICS_FILE, summary)
    return summary
