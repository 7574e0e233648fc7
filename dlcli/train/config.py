"""The `train:` section of a pipeline."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from dlcli.config.base import StrictModel


class OptimizerConfig(StrictModel):
    """`train.optimizer`: which optimizer and its hyper-parameters."""

    type: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    learning_rate: PositiveFloat = 1e-3
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd and rmsprop only")
    nesterov: bool = Field(False, description="sgd only")
    beta_1: float = Field(
        0.9, ge=0.0, lt=1.0, description="adam/adamw: first moment decay (GANs: 0.5)"
    )
    beta_2: float = Field(0.999, ge=0.0, lt=1.0, description="adam/adamw: second moment decay")
    weight_decay: float | None = Field(
        None, ge=0.0, description="decoupled weight decay (default 1e-4 for adamw)"
    )
    clipnorm: PositiveFloat | None = Field(None, description="clip each gradient to this norm")
    global_clipnorm: PositiveFloat | None = Field(None, description="clip the global norm")


class ScheduleConfig(StrictModel):
    """`train.lr_schedule`: how the learning rate moves over training."""

    type: Literal["constant", "cosine", "step", "exponential", "reduce_on_plateau"] = "constant"
    warmup_epochs: float = Field(0.0, ge=0.0, description="linear warm-up from 0")
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="cosine floor, x learning_rate")
    step_epochs: PositiveInt = Field(10, description="step: decay every this many epochs")
    factor: float = Field(0.1, gt=0.0, lt=1.0, description="step/exponential/plateau factor")
    patience: PositiveInt = Field(3, description="reduce_on_plateau: epochs without progress")


class EarlyStoppingConfig(StrictModel):
    """`train.early_stopping`: stop when the monitored metric stops improving."""

    monitor: str = "val_loss"
    patience: PositiveInt = 5
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = Field(True, description="end with the best epoch's weights")


class CheckpointConfig(StrictModel):
    """`train.checkpoint`: when to save and how many to keep."""

    keep: PositiveInt = Field(3, description="keep the last K checkpoints (plus the best)")
    every_n_steps: PositiveInt | None = Field(None, description="also save every N steps")


class FineTuneConfig(StrictModel):
    """`train.fine_tune`: a second phase that unfreezes the model's pretrained backbone."""

    epochs: PositiveInt = Field(description="epochs of this phase, after the first")
    unfreeze: Literal["all"] | PositiveInt = Field(
        "all", description="`all`, or the number of backbone layers to unfreeze from the top"
    )
    learning_rate: PositiveFloat = Field(1e-4, description="usually 10-100x lower")
    batch_norm: Literal["frozen", "train"] = Field(
        "frozen",
        description="frozen: batch norm keeps its pretrained statistics (Keras's advice); "
        "train: it adapts to the new data",
    )
    lr_schedule: ScheduleConfig = Field(
        default_factory=lambda: ScheduleConfig(type="cosine"),
        description="the schedule of this phase",
    )


class TrainConfig(StrictModel):
    """`train:` how to fit the model."""

    epochs: PositiveInt = 10
    batch_size: PositiveInt = Field(32, description="global batch size, over all replicas")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    lr_schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig | None = None
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    fine_tune: FineTuneConfig | None = Field(
        None, description="then unfreeze the backbone (transfer models) for more epochs"
    )
    strategy: Literal["auto", "cpu", "gpu", "mirrored", "multi_worker", "tpu"] = "auto"
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    jit_compile: bool = False
    steps_per_execution: PositiveInt = Field(1, description="train steps per tf.function call")
    shuffle_buffer: PositiveInt = 10_000
    deterministic: bool = Field(False, description="bit-identical runs on CPU (slower)")

    @model_validator(mode="after")
    def _check_monitor(self) -> TrainConfig:
        es = self.early_stopping
        if es is not None and not es.monitor.replace("val_", "").isidentifier():
            raise ValueError(f"early_stopping.monitor must name a metric, got {es.monitor!r}")
        return self
