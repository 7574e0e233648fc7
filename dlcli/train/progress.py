"""Per-epoch progress: a Rich bar on a terminal, one plain line per epoch elsewhere."""

from __future__ import annotations

import logging
from typing import Any

from dlcli import console

log = logging.getLogger("dlcli")


def format_metrics(logs: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if k not in ("epoch",))


class EpochProgress:
    def __init__(self, enabled: bool = True) -> None:
        self.live = enabled and console.interactive()
        self._progress: Any = None
        self._task: Any = None

    def start(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        if not self.live:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=console.err(),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=steps, completed=done, metrics="")

    def advance(self, steps: int, metrics: dict[str, float]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, metrics=format_metrics(metrics))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def end(self, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None:
        self.close()
        log.info("epoch %d/%d  %s  (%.1fs)", epoch, epochs, format_metrics(logs), seconds)
