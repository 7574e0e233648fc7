"""Optimizers and learning-rate schedules from the `train:` section."""

from __future__ import annotations

import math
from typing import Any

from dlcli.train.config import TrainConfig


def build_schedule(config: TrainConfig, steps_per_epoch: int, scale: Any = None) -> Any:
    """A Keras LearningRateSchedule (or a float for a constant rate without warm-up).

    `scale` (a variable) multiplies the rate: reduce_on_plateau lowers it, which works with
    or without warm-up because the schedule, not the optimizer, owns the rate.
    """
    opt, sched = config.optimizer, config.lr_schedule
    base = opt.learning_rate
    total = max(1, config.epochs * steps_per_epoch)
    warmup = int(sched.warmup_epochs * steps_per_epoch)
    if sched.type == "constant" and not warmup:
        return base
    schedule = schedule_class()(
        kind=sched.type,
        base=base,
        warmup_steps=warmup,
        total_steps=total,
        min_ratio=sched.min_lr_ratio,
        step_size=sched.step_epochs * steps_per_epoch,
        factor=sched.factor,
        steps_per_epoch=steps_per_epoch,
    )
    schedule.scale = scale
    return schedule


def build_optimizer(
    config: TrainConfig, steps_per_epoch: int, precision: str, lr_scale: Any = None
) -> Any:
    import keras

    opt = config.optimizer
    lr = build_schedule(config, steps_per_epoch, lr_scale)
    common: dict[str, Any] = {"learning_rate": lr}
    if opt.clipnorm:
        common["clipnorm"] = opt.clipnorm
    if opt.global_clipnorm:
        common["global_clipnorm"] = opt.global_clipnorm
    if opt.type == "sgd":
        optimizer = keras.optimizers.SGD(momentum=opt.momentum, nesterov=opt.nesterov, **common)
    elif opt.type == "adam":
        optimizer = keras.optimizers.Adam(
            weight_decay=opt.weight_decay, beta_1=opt.beta_1, beta_2=opt.beta_2, **common
        )
    elif opt.type == "adamw":
        decay = opt.weight_decay if opt.weight_decay is not None else 1e-4
        optimizer = keras.optimizers.AdamW(
            weight_decay=decay, beta_1=opt.beta_1, beta_2=opt.beta_2, **common
        )
    else:
        optimizer = keras.optimizers.RMSprop(momentum=opt.momentum, **common)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


_SCHEDULE_CLASS: Any = None


def schedule_class() -> Any:
    """Define the schedule class lazily: Keras must not load when the config is only checked."""
    global _SCHEDULE_CLASS
    if _SCHEDULE_CLASS is not None:
        return _SCHEDULE_CLASS
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="dlcli")
    class DlcliSchedule(keras.optimizers.schedules.LearningRateSchedule):
        """Linear warm-up, then constant, cosine, step or exponential decay."""

        def __init__(
            self,
            kind: str,
            base: float,
            warmup_steps: int,
            total_steps: int,
            min_ratio: float,
            step_size: int,
            factor: float,
            steps_per_epoch: int,
        ):
            self.kind, self.base, self.warmup_steps = kind, base, warmup_steps
            self.total_steps, self.min_ratio = total_steps, min_ratio
            self.step_size, self.factor, self.steps_per_epoch = step_size, factor, steps_per_epoch
            self.scale: Any = None  # a variable set by the trainer (reduce_on_plateau)

        def __call__(self, step: Any) -> Any:
            step = ops.cast(step, "float32")
            warm = float(max(self.warmup_steps, 1))
            after = ops.maximum(step - self.warmup_steps, 0.0)
            if self.kind == "cosine":
                span = float(max(self.total_steps - self.warmup_steps, 1))
                progress = ops.minimum(after / span, 1.0)
                cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
                decayed = self.base * (self.min_ratio + (1 - self.min_ratio) * cosine)
            elif self.kind == "step":
                decayed = self.base * ops.power(self.factor, ops.floor(after / self.step_size))
            elif self.kind == "exponential":
                decayed = self.base * ops.power(self.factor, after / self.steps_per_epoch)
            else:
                decayed = ops.convert_to_tensor(self.base, "float32")
            if self.warmup_steps:
                decayed = ops.where(
                    step < self.warmup_steps, self.base * (step + 1) / warm, decayed
                )
            if self.scale is not None:
                decayed = decayed * ops.cast(self.scale, "float32")
            return decayed

        def get_config(self) -> dict[str, Any]:
            return {
                "kind": self.kind,
                "base": self.base,
                "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps,
                "min_ratio": self.min_ratio,
                "step_size": self.step_size,
                "factor": self.factor,
                "steps_per_epoch": self.steps_per_epoch,
            }

    _SCHEDULE_CLASS = DlcliSchedule
    return DlcliSchedule
