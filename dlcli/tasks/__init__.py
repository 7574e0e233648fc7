"""Tasks: each kind of problem owns its head, loss, steps, metrics, evaluation and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcli.registry import TASKS


def create_task(config: Any, spec: Any, run_dir: Path | None = None) -> Any:
    """The one public way to build a task for data described by `spec`; with `run_dir`, the
    task reads back what it saved there (labels, a threshold, a memory bank)."""
    task = TASKS.get(config.type).fn(config, spec)
    if run_dir is not None:
        task.load_artifacts(run_dir)
    return task
