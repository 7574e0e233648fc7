"""Evaluate a trained run on one of its splits: the task scores it and draws its pictures."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.data import create_dataset
from dlcli.tasks import create_task
from dlcli.tasks.base import EvalContext


@dataclass
class Evaluation:
    report: dict[str, Any]  # what metrics.json holds
    task: Any  # the task that wrote it: `task.report_lines(report)` is what a human reads

    def lines(self) -> list[Any]:
        return list(self.task.report_lines(self.report))


def evaluate_run(
    target: Path,
    *,
    pipeline: Path | None = None,
    split: str | None = None,
    overrides: list[str] | None = None,
    refresh_report: bool = True,
) -> Evaluation:
    """Score the model of a run (or a .keras file with `pipeline`) on a split of its data (or of
    other data given by `--set data.path=...`) and write the task's report under
    `RUN/evaluation/<split>/`; `refresh_report`: rewrite RUN/report.html with it (`run` writes
    the page once, at its end).

    With overrides the report goes to `RUN/evaluation/<split>-<digest>/` instead (the same
    overrides, the same folder) and names them: the run's own score of that split, which
    `runs list` and its metrics.json show, stays the one on the data it was trained with."""
    from dlcli.models.loading import load_keras_model
    from dlcli.report.html import write_run_report

    handle = runs.open_run(target, pipeline, overrides, require_pipeline=True)
    cfg = handle.config
    split = split or cfg.evaluate.split
    model = load_keras_model(handle.model_path)
    source = create_dataset(cfg.data, seed=cfg.seed)
    task = create_task(cfg.task, source.spec, run_dir=handle.directory)
    data = task.adapt_data(source)
    data.split(split)  # a clear error when that split is empty
    out_dir = handle.directory / "evaluation" / evaluation_folder(split, overrides)
    out_dir.mkdir(parents=True, exist_ok=True)
    batch_size = cfg.evaluate.batch_size or cfg.train.batch_size
    context = EvalContext(model, data, split, out_dir, batch_size, handle.directory)
    report = {"task": cfg.task.type, "split": split, **task.evaluate(context)}
    if overrides:
        report["overrides"] = list(overrides)
    report["output_dir"] = str(out_dir)
    runs.atomic_write_json(out_dir / "metrics.json", report)
    metrics_file = handle.directory / runs.METRICS_FILE
    if metrics_file.is_file() and target.is_dir() and not overrides:
        summary = json.loads(metrics_file.read_text())
        evaluations = summary.setdefault("evaluation", {})
        evaluations[split] = {k: v for k, v in report.items() if not isinstance(v, dict | list)}
        runs.atomic_write_json(metrics_file, summary)
    if target.is_dir() and refresh_report:
        write_run_report(handle.directory, samples=False)  # the page shows the new metrics
    return Evaluation(report, task)


def evaluation_folder(split: str, overrides: list[str] | None) -> str:
    """`test`, or `test-1f3a9c2e` for the test split under overrides: a digest of them, so the
    same overrides score into the same folder."""
    if not overrides:
        return split
    digest = hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
    return f"{split}-{digest}"
