from __future__ import annotations

import pytest

from dlcli.train.config import TrainConfig
from dlcli.train.optim import build_optimizer, build_schedule


def lr_at(config: TrainConfig, step: int, steps_per_epoch: int = 10) -> float:
    schedule = build_schedule(config, steps_per_epoch)
    return float(schedule(step)) if callable(schedule) else float(schedule)


def test_constant():
    assert lr_at(TrainConfig(optimizer={"learning_rate": 0.1}), 50) == pytest.approx(0.1)


def test_cosine_with_warmup():
    config = TrainConfig(
        epochs=10,
        optimizer={"learning_rate": 1.0},
        lr_schedule={"type": "cosine", "warmup_epochs": 1},
    )
    assert lr_at(config, 0) == pytest.approx(0.1)  # (step + 1) / warmup_steps
    assert lr_at(config, 9) == pytest.approx(1.0)
    assert lr_at(config, 10) == pytest.approx(1.0)
    assert lr_at(config, 55) == pytest.approx(0.5)  # half way through the decay
    assert lr_at(config, 100) == pytest.approx(0.0, abs=1e-6)


def test_step_and_exponential():
    step = TrainConfig(
        optimizer={"learning_rate": 1.0},
        lr_schedule={"type": "step", "step_epochs": 2, "factor": 0.5},
    )
    assert lr_at(step, 19) == pytest.approx(1.0)
    assert lr_at(step, 20) == pytest.approx(0.5)
    assert lr_at(step, 45) == pytest.approx(0.25)
    exp = TrainConfig(
        optimizer={"learning_rate": 1.0}, lr_schedule={"type": "exponential", "factor": 0.5}
    )
    assert lr_at(exp, 10) == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_builds(name: str):
    optimizer = build_optimizer(
        TrainConfig(optimizer={"type": name, "clipnorm": 1.0}), 10, "float32"
    )
    assert type(optimizer).__name__.lower() == name
    assert optimizer.clipnorm == 1.0


def test_float16_wraps_the_optimizer_for_loss_scaling():
    optimizer = build_optimizer(TrainConfig(), 10, "mixed_float16")
    assert type(optimizer).__name__ == "LossScaleOptimizer"
