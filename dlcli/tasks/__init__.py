"""Tasks: the loss, the per-batch statistics and the metrics of a kind of problem."""

from __future__ import annotations

from typing import Any

from dlcli.registry import TASKS


def create_task(config: Any, *, class_names: list[str], class_counts: list[int]) -> Any:
    """The one public way to build a task from its validated config."""
    return TASKS.get(config.type).fn(config, class_names=class_names, class_counts=class_counts)
