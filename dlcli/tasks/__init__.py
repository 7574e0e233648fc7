"""Tasks: the loss, the per-batch statistics and the metrics of a kind of problem."""

from __future__ import annotations

from typing import Any

from dlcli.registry import TASKS


def create_task(config: Any, *, num_classes: int) -> Any:
    """The one public way to build a task from its validated config."""
    return TASKS.get(config.type).fn(config, num_classes=num_classes)
