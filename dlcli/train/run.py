"""Train a validated pipeline into a run directory, or resume one from its last checkpoint."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.data import create_dataset
from dlcli.errors import ConfigError, TrainingError
from dlcli.models import create_model
from dlcli.tasks import create_task
from dlcli.train.config import TrainConfig
from dlcli.train.loop import StepRunner, distribute
from dlcli.train.optim import build_optimizer
from dlcli.train.progress import EpochProgress
from dlcli.train.state import Checkpoints, TrainerState
from dlcli.train.strategy import resolve_precision, select_strategy

log = logging.getLogger("dlcli")


class Trainer:
    """Owns one training run: data, model, optimizer, checkpoints and the epoch loop.

    Phase 1 trains what the model leaves trainable (a transfer model: its head); with
    `train.fine_tune`, phase 2 unfreezes the backbone and trains on with a new optimizer.
    """

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
        self.augment = self._augmenter()
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
        self.task = create_task(
            cfg.task, class_names=self.data.class_names, class_counts=self.data.class_counts
        )
        self.writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
        self.progress = EpochProgress(show_progress)
        es = cfg.train.early_stopping
        self.monitor = es.monitor if es else ("val_loss" if self.val_data else "loss")
        # Losses go down; everything else (accuracy) goes up.
        self.sign = 1.0 if "loss" in self.monitor else -1.0
        self.phase = 0
        self._setup_phase(1)

    def _augmenter(self) -> Any:
        augment = getattr(self.cfg.data, "augment", None)
        if augment is None or not augment.active():
            return None
        from dlcli.data.augment import build_augmenter

        log.info("augmentation: %s", augment.model_dump(exclude_defaults=True))
        return build_augmenter(augment, len(self.data.class_names), self.cfg.seed)

    def phase_config(self, phase: int) -> TrainConfig:
        train, ft = self.cfg.train, self.cfg.train.fine_tune
        if phase == 1 or ft is None:
            return train
        optimizer = train.optimizer.model_copy(update={"learning_rate": ft.learning_rate})
        return train.model_copy(
            update={"optimizer": optimizer, "lr_schedule": ft.lr_schedule, "epochs": ft.epochs}
        )

    def _setup_phase(self, phase: int) -> None:
        if phase == 2:
            self._unfreeze_backbone()
        with self.choice.strategy.scope():
            self.optimizer = build_optimizer(
                self.phase_config(phase), self.steps_per_epoch, self.precision
            )
            self.optimizer.build(self.model.trainable_variables)
        self.runner = StepRunner(
            self.choice.strategy,
            self.model,
            self.optimizer,
            self.task,
            jit_compile=self.cfg.train.jit_compile,
        )
        self.checkpoints = Checkpoints(
            self.run_dir / "checkpoints",
            self.model,
            self.optimizer,
            self.cfg.train.checkpoint.keep,
        )
        self.phase = phase

    def _unfreeze_backbone(self) -> None:
        try:
            backbone = self.model.get_layer("backbone")
        except ValueError:
            raise ConfigError(
                f"train.fine_tune needs a model with a pretrained backbone; "
                f"`{self.cfg.model.type}` has none.",
                hint="use `model.type: transfer`, or remove train.fine_tune",
            ) from None
        from keras import layers

        ft = self.cfg.train.fine_tune
        backbone.trainable = True
        for index, layer in enumerate(backbone.layers):
            below = ft.unfreeze != "all" and index < len(backbone.layers) - ft.unfreeze
            frozen_bn = ft.batch_norm == "frozen" and isinstance(layer, layers.BatchNormalization)
            layer.trainable = not (below or frozen_bn)
        trainable = sum(1 for layer in backbone.layers if layer.trainable and layer.weights)
        log.info(
            "fine-tuning: %d backbone layers with weights now train (batch norm %s), "
            "learning rate %g",
            trainable,
            ft.batch_norm,
            ft.learning_rate,
        )

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
            batch_map=self.augment,
        )

    def planned_epochs(self, state: TrainerState) -> int:
        ft = self.cfg.train.fine_tune
        if ft is None:
            return int(self.cfg.train.epochs)
        first = state.phase_start if state.phase == 2 else self.cfg.train.epochs
        return int(first + ft.epochs)

    def _phase_done(self, state: TrainerState) -> bool:
        if state.stopped_early:
            return True
        if state.phase == 1:
            return bool(state.epoch >= self.cfg.train.epochs)
        return bool(state.epoch >= state.phase_start + self.cfg.train.fine_tune.epochs)

    def _complete(self, state: TrainerState) -> bool:
        return self._phase_done(state) and (state.phase == 2 or self.cfg.train.fine_tune is None)

    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        state = TrainerState()
        if resume:
            peek = self.checkpoints.peek_latest()
            if peek is not None and peek.phase == 2:
                self._setup_phase(2)
            state = self.checkpoints.restore_latest()
            planned = self.planned_epochs(state)
            log.info(
                "resuming after epoch %d, step %d (of %d epochs)", state.epoch, state.step, planned
            )
            if state.stopped_early and planned > state.planned:
                state.stopped_early, state.waited = False, 0  # extended: patience starts anew
            elif self._complete(state):
                log.info(
                    "the run is already complete (%d/%d epochs%s); extend it with "
                    "--set train.epochs=N",
                    state.epoch,
                    planned,
                    ", stopped early" if state.stopped_early else "",
                )
        if not self.choice.is_chief:
            log.info("worker process: artifacts go to a temporary directory")
        runs.atomic_write_json(self.run_dir / runs.LABELS_FILE, self.data.class_names)
        while not self._complete(state):
            if self._phase_done(state):  # phase 1 is over and fine-tuning follows
                self._start_fine_tuning(state)
            else:
                self._train_epoch(state)
        self.writer.flush()
        return self._finish(state)

    def _start_fine_tuning(self, state: TrainerState) -> None:
        es = self.cfg.train.early_stopping
        if state.stopped_early and es and es.restore_best:
            self.checkpoints.restore_best_weights()
        state.phase, state.phase_start = 2, state.epoch
        state.stopped_early, state.waited, state.plateau_waited = False, 0, 0
        self._setup_phase(2)

    def _train_epoch(self, state: TrainerState) -> None:
        epoch, epochs = state.epoch + 1, self.planned_epochs(state)
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
                self.checkpoints.save(state, number=self._checkpoint_number())
        self._end_epoch(state, epoch, epochs, started)

    def _checkpoint_number(self) -> int:
        # Unique across phases: phase 2 has a fresh optimizer whose step count restarts.
        return int(self.optimizer.iterations.numpy()) + 10_000_000 * (self.phase - 1)

    def _end_epoch(self, state: TrainerState, epoch: int, epochs: int, started: float) -> None:
        import keras
        import tensorflow as tf

        logs: dict[str, Any] = {"epoch": epoch, **self.task.metrics(state.totals)}
        if self.val_data is not None:
            val_sums = self.runner.evaluate(self.val_data, list(state.totals))
            logs.update({f"val_{k}": v for k, v in self.task.metrics(val_sums).items()})
        logs["lr"] = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
        logs["phase"] = state.phase
        logs["seconds"] = round(time.perf_counter() - started, 3)
        state.history.append(logs)
        state.epoch, state.step, state.totals = epoch, 0, {}
        state.planned = epochs
        improved = self._track(state, logs)
        with self.writer.as_default(step=epoch):
            for key, value in logs.items():
                if key not in ("epoch", "phase"):
                    tf.summary.scalar(key, value)
        self.checkpoints.save(state, number=self._checkpoint_number(), best=improved)
        runs.atomic_write_csv(self.run_dir / runs.HISTORY_FILE, state.history)
        # The epoch's line comes last: when it shows, the epoch is safely on disk.
        shown = {k: v for k, v in logs.items() if k not in ("seconds", "phase")}
        self.progress.end(epoch, epochs, shown, logs["seconds"])

    def _track(self, state: TrainerState, logs: dict[str, Any]) -> bool:
        """Update best / early stopping / reduce-on-plateau; return whether this epoch is best."""
        if self.monitor not in logs:
            raise TrainingError(
                f"train.early_stopping.monitor is `{self.monitor}`, which this run does not "
                f"report. Expected one of: {', '.join(k for k in logs if k != 'epoch')}."
            )
        value = self.sign * logs[self.monitor]
        es, sched = self.cfg.train.early_stopping, self.phase_config(state.phase).lr_schedule
        improved = value < state.best - (es.min_delta if es else 0.0)
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
        skip = ("epoch", "lr", "seconds", "phase")
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
            "skipped_files": len(self.data.skipped),
        }
        runs.atomic_write_json(self.run_dir / runs.METRICS_FILE, summary)
        return summary


def train_pipeline(
    cfg: Any, run_dir: Path, *, resume: bool = False, show_progress: bool = True
) -> dict[str, Any]:
    """Fit `cfg` and write model, labels, history, metrics, checkpoints and TensorBoard events."""
    return Trainer(cfg, run_dir, show_progress=show_progress).fit(resume=resume)
