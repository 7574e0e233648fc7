"""Train a validated pipeline into a run directory, or resume one from its last checkpoint.

The Trainer knows nothing of the problem: the task builds the model's head, turns batches
into inputs and targets, computes losses and metrics (with their direction) and writes its own
artifacts. The Trainer owns the strategy, the phases, the epoch loop and the checkpoints.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.data import create_dataset
from dlcli.errors import ConfigError, TrainingError
from dlcli.registry import did_you_mean
from dlcli.tasks import create_task
from dlcli.tasks.base import metric_direction
from dlcli.train.config import TrainConfig
from dlcli.train.loop import StepRunner, distribute
from dlcli.train.optim import build_optimizer
from dlcli.train.policy import MonitorPolicy
from dlcli.train.progress import EpochProgress
from dlcli.train.state import Checkpoints, TrainerState
from dlcli.train.strategy import resolve_precision, select_strategy

log = logging.getLogger("dlcli")


class Trainer:
    """Owns one training run: data, model, optimizers, checkpoints and the epoch loop.

    Phase 1 trains what the model leaves trainable (a transfer model: its head); with
    `train.fine_tune`, phase 2 asks the model config to unfreeze its pretrained part and
    trains on with new optimizers.
    """

    def __init__(
        self,
        cfg: Any,
        run_dir: Path,
        *,
        show_progress: bool = True,
        restore_from: Path | None = None,
    ) -> None:
        import keras
        import tensorflow as tf

        self.cfg, self.run_dir = cfg, run_dir
        # Where a resume reads checkpoints: the run directory, or for a non-chief worker
        # (which writes to scratch) the chief's.
        self.restore_from = restore_from
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
        source = create_dataset(cfg.data, seed=cfg.seed)
        self.spec = source.spec
        self.task = create_task(cfg.task, self.spec)
        self.data = self.task.adapt_data(source)
        classes = f", classes: {', '.join(source.class_names)}" if source.class_names else ""
        log.info("data: %s%s", self.data.sizes, classes)
        self.monitor, direction = self._resolve_monitor()
        self.train_data = self.data.split("train")
        self.augment = self._augmenter()
        _, self.steps_per_epoch = self.epoch_dataset(0)
        self.task.on_train_begin(self.steps_per_epoch)
        self.val_data = None
        if self.data.has("validation"):
            self.val_data, _ = distribute(
                self.choice.strategy,
                self.data.splits["validation"],
                cfg.train.batch_size,
                training=False,
                batch=self.data.batch,
            )
        with self.choice.strategy.scope():
            self.model = self.task.build_model(cfg.model)
            self.lr_scale = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="lr_scale")
        self.direction = direction
        self.writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
        self.progress = EpochProgress(show_progress)
        self.phase = 0
        self._setup_phase(1)

    def _resolve_monitor(self) -> tuple[str, str]:
        """The metric early stopping, the best checkpoint and the plateau follow, checked before
        any training: a name the run will not report is an error now, not after epoch 1."""
        es = self.cfg.train.early_stopping
        has_val = self.data.has("validation")
        monitor = es.monitor if es else self.task.default_monitor(has_val)
        direction = metric_direction(self.cfg.task, monitor)
        reported = self.task.reported_metrics(has_val)
        if monitor.startswith("val_") and not has_val:
            raise ConfigError(
                f"train.early_stopping.monitor is `{monitor}`, but the validation split is "
                f"empty (split sizes: {self.data.sizes}).",
                hint=f"monitor `{monitor.removeprefix('val_')}`, or hold out validation data",
            )
        if direction is None or monitor not in reported:
            hint = did_you_mean(monitor, reported)
            raise ConfigError(
                f"train.early_stopping.monitor is `{monitor}`, which this run will not report "
                f"(split sizes: {self.data.sizes}). Expected one of: {', '.join(reported)}.",
                hint=hint,
            )
        return monitor, direction

    def _augmenter(self) -> Any:
        """The data source's own transform of training batches (augmentation), if any."""
        transform = getattr(self.cfg.data, "train_transform", None)
        return transform(max(len(self.data.class_names), 1), self.cfg.seed) if transform else None

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
            self.cfg.model.fine_tune(self.model, self.cfg.train.fine_tune)
        config = self.phase_config(phase)
        with self.choice.strategy.scope():
            self.optimizers = {}
            for name, variables in self.task.optimizer_variables(self.model).items():
                steps = self.steps_per_epoch * self.task.updates_per_step(name)
                optimizer = build_optimizer(config, steps, self.precision, self.lr_scale)
                optimizer.build(variables)  # before strategy.run: slots must exist up front
                self.optimizers[name] = optimizer
        self.runner = StepRunner(
            self.choice.strategy,
            self.model,
            self.optimizers,
            self.task,
            jit_compile=self.cfg.train.jit_compile,
        )
        self.checkpoints = Checkpoints(
            self.run_dir / "checkpoints",
            self.model,
            self.optimizers,
            self.cfg.train.checkpoint.keep,
            extra=self.task.checkpoint_objects(),
        )
        es, sched = self.cfg.train.early_stopping, config.lr_schedule
        self.policy = MonitorPolicy(
            self.monitor,
            self.direction,
            patience=es.patience if es else None,
            min_delta=es.min_delta if es else 0.0,
            plateau_patience=sched.patience if sched.type == "reduce_on_plateau" else None,
        )
        self.phase = phase

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
            batch=self.data.train_batch or self.data.batch,
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
        if not self.task.trains_weights:
            return True
        return self._phase_done(state) and (state.phase == 2 or self.cfg.train.fine_tune is None)

    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        state = TrainerState()
        if resume:
            state = self._restore()
        if not self.choice.is_chief:
            log.info("worker process: artifacts go to a temporary directory")
        self.spec.save(self.run_dir)
        self.task.save_artifacts(self.run_dir)
        while not self._complete(state):
            if self._phase_done(state):  # phase 1 is over and fine-tuning follows
                self._start_fine_tuning(state)
            else:
                self._train_epoch(state)
        self.writer.flush()
        return self._finish(state)

    def _restore(self) -> TrainerState:
        source = self.restore_from / "checkpoints" if self.restore_from else None
        peek = self.checkpoints.peek_latest(source)
        if peek is not None and peek.phase == 2:
            self._setup_phase(2)
        state = self.checkpoints.restore_latest(source)
        self.lr_scale.assign(state.lr_scale)
        planned = self.planned_epochs(state)
        log.info(
            "resuming after epoch %d, step %d (of %d epochs)", state.epoch, state.step, planned
        )
        if state.stopped_early and planned > state.planned:
            state.stopped_early, state.waited = False, 0  # extended: patience starts anew
        elif self._complete(state):
            log.info(
                "the run is already complete (%d/%d epochs%s); extend it with --set train.epochs=N",
                state.epoch,
                planned,
                ", stopped early" if state.stopped_early else "",
            )
        return state

    def _start_fine_tuning(self, state: TrainerState) -> None:
        es = self.cfg.train.early_stopping
        if state.stopped_early and es and es.restore_best:
            self.checkpoints.restore_best_weights()
        state.phase, state.phase_start = 2, state.epoch
        state.stopped_early, state.waited, state.plateau_waited = False, 0, 0
        state.lr_scale = 1.0
        self.lr_scale.assign(1.0)
        self._setup_phase(2)

    def _train_epoch(self, state: TrainerState) -> None:
        epoch, epochs = state.epoch + 1, self.planned_epochs(state)
        started = time.perf_counter()
        dist, steps = self.epoch_dataset(epoch - 1, skip_steps=state.step)
        iterator = iter(dist)
        every = self.cfg.train.checkpoint.every_n_steps
        try:  # the bar starts inside: a Ctrl-C while it starts must still close it
            self.progress.start(epoch, epochs, steps, done=state.step)
            while state.step < steps:
                n = min(self.cfg.train.steps_per_execution, steps - state.step)
                if every:
                    n = min(n, every - state.global_step % every)
                sums = self.runner.train(iterator, n)
                state.totals = {k: state.totals.get(k, 0.0) + v for k, v in sums.items()}
                state.step += n
                state.global_step += n
                running = self.task.metrics(state.totals)
                if not math.isfinite(running["loss"]):
                    raise self._nan_error(running["loss"], epoch, state.step)
                self.progress.advance(n, running)
                if every and state.step < steps and state.global_step % every == 0:
                    self.checkpoints.save(state, number=state.global_step)
            self._end_epoch(state, epoch, epochs, started)
        finally:
            self.progress.close()  # also on errors: never leave a live bar on the terminal

    def _nan_error(self, loss: float, epoch: int, step: int) -> TrainingError:
        last = self.checkpoints.last.latest_checkpoint
        return TrainingError(
            f"The training loss became {loss} at epoch {epoch}, step {step}. Training stopped.",
            hint="lower train.optimizer.learning_rate or set train.optimizer.clipnorm; "
            f"the last good checkpoint is {last or 'none (no epoch finished)'}",
        )

    def _end_epoch(self, state: TrainerState, epoch: int, epochs: int, started: float) -> None:
        import keras
        import tensorflow as tf

        logs: dict[str, Any] = {"epoch": epoch, **self.task.metrics(state.totals)}
        if self.val_data is not None:
            keys = self.task.eval_keys(list(state.totals))
            val_sums = self.runner.evaluate(self.val_data, keys)
            logs.update({f"val_{k}": v for k, v in self.task.metrics(val_sums).items()})
        with self.writer.as_default(step=epoch):  # the task may log pictures
            logs.update(self.task.on_epoch_end(self.model, epoch, self.run_dir))
        first = next(iter(self.optimizers.values()))
        logs["lr"] = float(keras.ops.convert_to_numpy(first.learning_rate))
        logs["phase"] = state.phase
        logs["seconds"] = round(time.perf_counter() - started, 3)
        state.history.append(logs)
        state.epoch, state.step, state.totals = epoch, 0, {}
        state.planned = epochs
        verdict = self.policy.update(state, logs)
        if verdict.reduce_lr:
            state.lr_scale *= self.phase_config(state.phase).lr_schedule.factor
            self.lr_scale.assign(state.lr_scale)
            log.info("reduce on plateau: learning rate x%.3g", state.lr_scale)
        with self.writer.as_default(step=epoch):
            for key, value in logs.items():
                if key not in ("epoch", "phase"):
                    tf.summary.scalar(key, value)
        self.checkpoints.save(state, number=state.global_step, best=verdict.improved)
        runs.atomic_write_csv(self.run_dir / runs.HISTORY_FILE, state.history)
        # The epoch's line comes last: when it shows, the epoch is safely on disk.
        shown = {k: v for k, v in logs.items() if k not in ("seconds", "phase")}
        self.progress.end(epoch, epochs, shown, logs["seconds"])

    def _finish(self, state: TrainerState) -> dict[str, Any]:
        es = self.cfg.train.early_stopping
        final_epoch = state.history[-1]["epoch"] if state.history else 0
        restore = es and es.restore_best and state.best_epoch != final_epoch
        if restore and self.checkpoints.restore_best_weights():
            final_epoch = state.best_epoch
        runs.save_model_atomic(self.model, self.run_dir / runs.MODEL_FILE)
        self.task.after_training(self.model, self.data, self.run_dir, self.cfg.train.batch_size)
        final = next((h for h in state.history if h["epoch"] == final_epoch), {})
        skip = ("epoch", "lr", "seconds", "phase")
        summary = {
            "task": self.cfg.task.type,
            "parameters": int(self.model.count_params()),
            "epochs_run": len(state.history),
            "best_epoch": final_epoch,
            "stopped_early": state.stopped_early,
            "monitor": self.monitor,
            "train": {k: v for k, v in final.items() if not k.startswith("val_") and k not in skip},
            "validation": {k[4:]: v for k, v in final.items() if k.startswith("val_")},
            "strategy": self.choice.name,
            "replicas": self.choice.replicas,
            "precision_requested": self.cfg.train.precision,
            "precision": self.precision,
            "jit_compile": self.cfg.train.jit_compile,
            "data": self.data.sizes,
            "skipped_files": len(self.data.skipped),
        }
        runs.atomic_write_json(self.run_dir / runs.METRICS_FILE, summary)
        return summary


def train_pipeline(
    cfg: Any,
    run_dir: Path,
    *,
    resume: Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Fit `cfg` and write model, spec, task artifacts, history, metrics, checkpoints and
    TensorBoard events into `run_dir`; with `resume`, continue the run there first."""
    restore_from = resume if resume is not None and resume != run_dir else None
    trainer = Trainer(cfg, run_dir, show_progress=show_progress, restore_from=restore_from)
    return trainer.fit(resume=resume is not None)
