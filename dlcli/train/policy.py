"""When a run improves, waits, lowers its learning rate or stops: plain Python, no TensorFlow.

The direction of the monitored metric comes from the task (`TaskConfig.metrics`), so early
stopping on `val_mse` or `val_cer` minimises them and on `val_roc_auc` maximises it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from dlcli.train.state import TrainerState

log = logging.getLogger("dlcli")


@dataclass
class EpochVerdict:
    improved: bool  # this epoch is the best so far: save it as the best checkpoint
    reduce_lr: bool  # reduce_on_plateau fired: multiply the learning rate by its factor


class MonitorPolicy:
    """Tracks `monitor` (with its direction) for best checkpoint, early stopping and plateau."""

    def __init__(
        self,
        monitor: str,
        direction: str,
        *,
        patience: int | None,
        min_delta: float = 0.0,
        plateau_patience: int | None = None,
    ) -> None:
        self.monitor = monitor
        self.sign = 1.0 if direction == "min" else -1.0  # state.best holds sign * value
        self.patience, self.min_delta = patience, min_delta
        self.plateau_patience = plateau_patience

    def update(self, state: TrainerState, logs: dict[str, Any]) -> EpochVerdict:
        if self.monitor not in logs:
            from dlcli.errors import TrainingError

            raise TrainingError(
                f"The monitored metric `{self.monitor}` is missing from epoch "
                f"{logs.get('epoch')}'s logs. Received: {', '.join(sorted(logs))}.",
                hint="set train.early_stopping.monitor to one of those",
            )
        value = self.sign * float(logs[self.monitor])
        if value < state.best - self.min_delta:
            state.best, state.best_epoch = value, int(logs["epoch"])
            state.waited = state.plateau_waited = 0
            return EpochVerdict(improved=True, reduce_lr=False)
        state.waited += 1
        state.plateau_waited += 1
        reduce = self.plateau_patience is not None and state.plateau_waited >= self.plateau_patience
        if reduce:
            state.plateau_waited = 0
        if self.patience is not None and state.waited >= self.patience:
            state.stopped_early = True
            log.info(
                "early stopping: `%s` has not improved for %d epochs (best: epoch %d)",
                self.monitor,
                self.patience,
                state.best_epoch,
            )
        return EpochVerdict(improved=False, reduce_lr=reduce)
