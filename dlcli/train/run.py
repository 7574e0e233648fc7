"""Train a validated pipeline into a run directory, or resume one from its last checkpoint."""

from __future__ import annotations

import logging
import math
import time
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
from dlcli.train.state import Checkpoints, TrainerState
from dlcli.train.strategy import resolve_precision, select_strategy

log = logging.getLogger("dlcli")


class Trainer:
    """Owns one training run: data, model, optimizer, checkpoints and the epoch loop."""

    def __init__(self, cfg: Any, run_dir: Path, *, show_progress: bool = True) -> None:
        import keras
        import tensorflow as tf

        self.cfg, self.run_dir = cfg, run_dir
        self.choice = select_strategy(cfg.train.strategy)
        self.precision = resolve_precision(cfg.train.precision, self.choice.name)
        keras.mixed_precision.set_global_policy(self.precision)
        keras.utils.set_random_seed(cfg.seed)
        if cfg.train.deterministic:
            tf.config.experimental.enable_op_determinism()
        log.info(
            "strategy %s (%s), %d replica(s), precision %s",
            self.choice.name,
            self.choice.reason,
            self.choice.replicas,
            self.precision,
        )
        self.data = create_dataset(cfg.data, seed=cfg.seed)
        log.info("data: %s, classes: %s", self.data.sizes, ", ".join(self.data.class_names))
        self.train_data = self.data.split("train")
        _, self.steps_per_epoch = self.epoch_dataset(0)
        self.val_data = None
        if self.data.sizes.get("validation", 0) > 0:
            self.val_data, _ = distribute(
                self.choice.strategy,
                self.data.splits["validation"],
                cfg.train.batch_size,
                training=False,
            )
        with self.choice.strategy.scope():
            self.model = create_model(
                cfg.model,
                input_shape=self.data.input_shape,
                num_classes=len(self.data.class_names),
            )
            self.optimizer = build_optimizer(cfg.train, self.steps_per_epoch, self.precision)
            self.optimizer.build(self.model.trainable_variables)
        self.task = create_task(cfg.task, num_classes=len(self.data.class_names))
        self.runner = StepRunner(
            self.choice.strategy,
            self.model,
            self.optimizer,
            self.task,
            jit_compile=cfg.train.jit_compile,
        )
        self.checkpoints = Checkpoints(
            run_dir / "checkpoints", self.model, self.optimizer, cfg.train.checkpoint.keep
        )
        self.writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
        self.progress = EpochProgress(show_progress)
        es = cfg.train.early_stopping
        self.monitor = es.monitor if es else ("val_loss" if self.val_data else "loss")
        # Losses go down; everything else (accuracy) goes up.
        self.sign = 1.0 if "loss" in self.monitor else -1.0

    def epoch_dataset(self, epoch_index: int, skip_steps: int = 0) -> tuple[Any, int]:
        """Epoch `epoch_index` (0-based) always sees the same order: shuffled by seed + epoch."""
        buffer = min(self.cfg.train.shuffle_buffer, self.data.sizes["train"])
        shuffled = self.train_data.shuffle(
            buffer, seed=self.cfg.seed + epoch_index, reshuffle_each_iteration=False
        )
        return distribute(
            self.choice.strategy,
            shuffled,
            self.cfg.train.batch_size,
            training=True,
            skip_steps=skip_steps,
        )

    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        state = self.checkpoints.restore_latest() if resume else TrainerState()
        epochs = self.cfg.train.epochs
        if resume:
            log.info(
                "resuming after epoch %d, step %d (of %d epochs)", state.epoch, state.step, epochs
            )
            if state.stopped_early and epochs > state.epoch:
                state.stopped_early, state.waited = False, 0  # extended: patience starts over
        if resume and (state.epoch >= epochs or state.stopped_early):
            log.info(
                "the run is already complete (%d/%d epochs%s); extend it with --set train.epochs=N",
                state.epoch,
                epochs,
                ", stopped early" if state.stopped_early else "",
            )
        if not self.choice.is_chief:
            log.info("worker process: artifacts go to a temporary directory")
        runs.atomic_write_json(self.run_dir / runs.LABELS_FILE, self.data.class_names)
        while state.epoch < epochs and not state.stopped_early:
            self._train_epoch(state, epochs)
        self.writer.flush()
        return self._finish(state)

    def _train_epoch(self, state: TrainerState, epochs: int) -> None:
        epoch = state.epoch + 1
        started = time.perf_counter()
        dist, steps = self.epoch_dataset(epoch - 1, skip_steps=state.step)
        iterator = iter(dist)
        every = self.cfg.train.checkpoint.every_n_steps
        self.progress.start(epoch, epochs, steps, done=state.step)
        while state.step < steps:
            n = min(self.cfg.train.steps_per_execution, steps - state.step)
            if every:
                n = min(n, every - int(self.optimizer.iterations.numpy()) % every)
            sums = self.runner.train(iterator, n)
            state.totals = {k: state.totals.get(k, 0.0) + v for k, v in sums.items()}
            state.step += n
            running = self.task.metrics(state.totals)
            if not math.isfinite(running["loss"]):
                self.progress.end(epoch, epochs, running, time.perf_counter() - started)
                last = self.checkpoints.last.latest_checkpoint
                raise TrainingError(
                    f"The training loss became {running['loss']} at epoch {epoch}, "
                    f"step {state.step}. Training stopped.",
                    hint="lower train.optimizer.learning_rate or set train.optimizer.clipnorm; "
                    f"the last good checkpoint is {last or 'none (no epoch finished)'}",
                )
            self.progress.advance(n, running)
            if every and state.step < steps and self.optimizer.iterations.numpy() % every == 0:
                self.checkpoints.save(state, number=int(self.optimizer.iterations.numpy()))
        logs = self._epoch_logs(epoch, state.totals, started)
        state.history.append(logs)
        state.epoch, state.step, state.totals = epoch, 0, {}
        improved = self._track(state, logs)
        self.progress.end(
            epoch, epochs, {k: v for k, v in logs.items() if k != "seconds"}, logs["seconds"]
        )
        with self.writer.as_default(step=epoch):
            import tensorflow as tf

            for key, value in logs.items():
                if key != "epoch":
                    tf.summary.scalar(key, value)
        self.checkpoints.save(state, number=int(self.optimizer.iterations.numpy()), best=improved)
        runs.atomic_write_csv(self.run_dir / runs.HISTORY_FILE, state.history)

    def _epoch_logs(self, epoch: int, totals: dict[str, float], started: float) -> dict[str, Any]:
        import keras

        logs: dict[str, Any] = {"epoch": epoch, **self.task.metrics(totals)}
        if self.val_data is not None:
            val_sums = self.runner.evaluate(self.val_data, list(totals))
            logs.update({f"val_{k}": v for k, v in self.task.metrics(val_sums).items()})
        logs["lr"] = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
        logs["seconds"] = round(time.perf_counter() - started, 3)
        return logs

    def _track(self, state: TrainerState, logs: dict[str, Any]) -> bool:
        """Update best / early stopping / reduce-on-plateau; return whether this epoch is best."""
        if self.monitor not in logs:
            raise TrainingError(
                f"train.early_stopping.monitor is `{self.monitor}`, which this run does not "
                f"report. Expected one of: {', '.join(k for k in logs if k != 'epoch')}."
            )
        value = self.sign * logs[self.monitor]
        es, sched = self.cfg.train.early_stopping, self.cfg.train.lr_schedule
        min_delta = es.min_delta if es else 0.0
        improved = value < state.best - min_delta
        if improved:
            state.best, state.best_epoch = value, logs["epoch"]
            state.waited = state.plateau_waited = 0
            return True
        state.waited += 1
        state.plateau_waited += 1
        if sched.type == "reduce_on_plateau" and state.plateau_waited >= sched.patience:
            new_lr = float(self.optimizer.learning_rate.numpy()) * sched.factor
            self.optimizer.learning_rate.assign(new_lr)
            state.plateau_waited = 0
            log.info("reduce on plateau: learning rate -> %.3g", new_lr)
        if es and state.waited >= es.patience:
            state.stopped_early = True
            log.info(
                "early stopping: `%s` has not improved for %d epochs (best: epoch %d)",
                self.monitor,
                es.patience,
                state.best_epoch,
            )
        return False

    def _finish(self, state: TrainerState) -> dict[str, Any]:
        es = self.cfg.train.early_stopping
        final_epoch = state.history[-1]["epoch"]
        restore = es and es.restore_best and state.best_epoch != final_epoch
        if restore and self.checkpoints.restore_best_weights():
            final_epoch = state.best_epoch
        runs.save_model_atomic(self.model, self.run_dir / runs.MODEL_FILE)
        final = next(h for h in state.history if h["epoch"] == final_epoch)
        skip = ("epoch", "lr", "seconds")
        summary = {
            "epochs_run": len(state.history),
            "best_epoch": final_epoch,
            "stopped_early": state.stopped_early,
            "train": {k: v for k, v in final.items() if not k.startswith("val_") and k not in skip},
            "validation": {k[4:]: v for k, v in final.items() if k.startswith("val_")},
            "strategy": self.choice.name,
            "replicas": self.choice.replicas,
            "precision": self.precision,
            "data": self.data.sizes,
        }
        runs.atomic_write_json(self.run_dir / runs.METRICS_FILE, summary)
        return summary


def train_pipeline(
    cfg: Any, run_dir: Path, *, resume: bool = False, show_progress: bool = True
) -> dict[str, Any]:
    """Fit `cfg` and write model, labels, history, metrics, checkpoints and TensorBoard events."""
    return Trainer(cfg, run_dir, show_progress=show_progress).fit(resume=resume)
