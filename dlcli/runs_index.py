"""Reading runs back for `dlcli runs list` and `dlcli runs compare`: their status, epochs,
metrics and duration, and how two runs differ. JSON, CSV and YAML only, never TensorFlow, so
looking at runs stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlcli.errors import ConfigError
from dlcli.runs import (
    FAILED,
    FINISHED,
    HISTORY_FILE,
    LOG_FILE,
    META_FILE,
    METRICS_FILE,
    PIPELINE_FILE,
    RUNNING,
    read_history,
    read_run_json,
    read_run_pipeline,
)


@dataclass
class RunInfo:
    """What a run directory says about itself."""

    directory: Path
    name: str
    started_at: str | None
    status: str  # running, finished, failed, interrupted, killed or unknown
    epochs: int | None
    seconds: float | None
    metrics: dict[str, float]  # the last epoch's: `val_*` (and train metrics, unprefixed)
    evaluation: dict[str, dict[str, Any]]  # split -> the numbers of its evaluation report
    key_metric: dict[str, Any] | None
    error: str | None
    pid: int | None = None  # the process that started (or last resumed) it

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.directory),
            "name": self.name,
            "started_at": self.started_at,
            "status": self.status,
            "epochs": self.epochs,
            "seconds": self.seconds,
            "metrics": self.metrics,
            "evaluation": self.evaluation,
            "key_metric": self.key_metric,
            "error": self.error,
            "pid": self.pid,
        }


def list_runs(root: Path, pattern: str = "*") -> list[RunInfo]:
    """The runs under `root` whose folder name matches `pattern`, newest first: numbered runs
    (`root/<name>/<n>/`) and runs written with `--output root/<dir>`."""
    import fnmatch

    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir() or not fnmatch.fnmatch(folder.name, pattern):
            continue
        candidates = [folder] if _is_run(folder) else sorted(folder.iterdir())
        found += [read_run(d) for d in candidates if d.is_dir() and _is_run(d)]
    return sorted(found, key=lambda r: (r.started_at or "", _number(r.directory)), reverse=True)


def _is_run(folder: Path) -> bool:
    if (folder / "keras_tuner").is_dir():  # a `dlcli tune` folder: its trials are the runs
        return False
    return (folder / META_FILE).is_file() or (folder / PIPELINE_FILE).is_file()


def _number(run_dir: Path) -> int:
    return int(run_dir.name) if run_dir.name.isdigit() else -1


def read_run(run_dir: Path) -> RunInfo:
    meta = _read_json(run_dir / META_FILE)
    summary = _read_json(run_dir / METRICS_FILE)
    history = _read_history(run_dir / HISTORY_FILE)
    pipeline = _read_yaml(run_dir / PIPELINE_FILE)
    status = run_status(run_dir, meta, summary)
    last = history[-1] if history else {}
    if summary and status != RUNNING:
        metrics = {**summary.get("train", {}), **_prefixed(summary.get("validation", {}))}
    else:
        skip = ("epoch", "lr", "phase", "seconds")
        metrics = {k: v for k, v in last.items() if k not in skip and isinstance(v, float)}
    evaluation = _read_evaluations(run_dir)
    task = pipeline.get("task", {}) if isinstance(pipeline.get("task"), dict) else {}
    return RunInfo(
        directory=run_dir,
        name=f"{run_dir.parent.name}/{run_dir.name}" if run_dir.name.isdigit() else run_dir.name,
        started_at=meta.get("started_at"),
        status=status,
        epochs=len(history) if history else summary.get("epochs_run"),
        seconds=_duration(meta, history, status),
        metrics=metrics,
        evaluation=evaluation,
        key_metric=key_metric(task_metrics(task.get("type")), metrics, evaluation),
        error=meta.get("error"),
        pid=meta.get("pid"),
    )


def run_status(run_dir: Path, meta: dict[str, Any], summary: dict[str, Any]) -> str:
    from dlcli.run_lock import is_locked

    if is_locked(run_dir):
        return RUNNING
    status = meta.get("status")
    if status == RUNNING:
        return "killed"  # it said it was training, and no process holds its lock
    if status:
        return str(status)
    if summary:  # a run written before run.json had a status
        return FINISHED
    log = run_dir / LOG_FILE
    if log.is_file() and "Traceback (most recent call last)" in log.read_text(errors="replace"):
        return FAILED
    return "unknown"


def task_metrics(task_type: str | None) -> dict[str, str]:
    """The metrics a task reports, best first in its own order, with their direction."""
    from dlcli.errors import DlcliError
    from dlcli.registry import TASKS

    try:
        config = TASKS.get(task_type or "classification").config
    except DlcliError:
        return {"loss": "min"}
    return dict(getattr(config, "metrics", {"loss": "min"}))


def key_metric(
    declared: dict[str, str], metrics: dict[str, Any], evaluation: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The one number that says how good a run is: the task's first metric other than the
    loss (the loss when it has none), from the evaluation of the test split (else of another
    split), else from the last validation, else from training."""
    names = [n for n in declared if n != "loss"] + ["loss"]
    order = {"test": 0, "validation": 1, "train": 2}
    for split in sorted(evaluation, key=lambda name: order.get(name, len(order))):
        report = evaluation[split]
        for name in names:
            if isinstance(report.get(name), (int, float)):
                return _metric(name, report[name], split, declared)
    for prefix, split in (("val_", "validation"), ("", "train")):
        for name in names:
            if isinstance(metrics.get(prefix + name), (int, float)):
                return _metric(name, metrics[prefix + name], split, declared)
    return None


def _metric(name: str, value: float, split: str, declared: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "value": value, "split": split, "direction": declared.get(name)}


def compare_runs(a: Path, b: Path) -> dict[str, Any]:
    """How two runs differ: their resolved pipelines, key by dotted key, and their numbers."""
    from dlcli.train.resume import flatten

    pipe_a, pipe_b = (flatten(_read_yaml(d / PIPELINE_FILE)) for d in (a, b))
    nums_a, nums_b = run_numbers(a), run_numbers(b)
    metrics = [
        {
            "metric": key,
            "a": nums_a.get(key),
            "b": nums_b.get(key),
            "delta": nums_b[key] - nums_a[key] if key in nums_a and key in nums_b else None,
        }
        for key in [*nums_a, *(k for k in nums_b if k not in nums_a)]
    ]
    return {
        "a": str(a),
        "b": str(b),
        "pipeline": {
            "only_in_a": {k: v for k, v in pipe_a.items() if k not in pipe_b},
            "only_in_b": {k: v for k, v in pipe_b.items() if k not in pipe_a},
            "changed": {
                k: [pipe_a[k], pipe_b[k]] for k in pipe_a if k in pipe_b and pipe_a[k] != pipe_b[k]
            },
        },
        "metrics": metrics,
    }


def run_numbers(run_dir: Path) -> dict[str, float]:
    """Every number a run reports, by dotted name: `validation.accuracy`, `test.accuracy`..."""
    summary = _read_json(run_dir / METRICS_FILE)
    numbers: dict[str, float] = {
        k: summary[k] for k in ("epochs_run", "best_epoch", "parameters") if k in summary
    }
    for section in ("train", "validation"):
        numbers.update({f"{section}.{k}": v for k, v in summary.get(section, {}).items()})
    for split, report in _read_evaluations(run_dir).items():
        numbers.update({f"{split}.{k}": v for k, v in report.items()})
    seconds = _duration(_read_json(run_dir / META_FILE), _read_history(run_dir / HISTORY_FILE), "")
    if seconds is not None:
        numbers["seconds"] = seconds
    return {k: v for k, v in numbers.items() if _is_number(v)}


def resolve_run(target: str, root: Path) -> Path:
    """A run given as a path (`runs/tiny/2`) or relative to the runs folder (`tiny/2`)."""
    for candidate in (Path(target), root / target):
        if (candidate / PIPELINE_FILE).is_file() or (candidate / META_FILE).is_file():
            return candidate
    raise ConfigError(
        f"Not a run directory: {target} (looked in . and in {root}).",
        hint="`dlcli runs list` shows the runs; pass one as NAME/N or as its path",
    )


def _read_evaluations(run_dir: Path) -> dict[str, dict[str, Any]]:
    folder = run_dir / "evaluation"
    reports = {}
    for split_dir in sorted(folder.iterdir()) if folder.is_dir() else []:
        report = _read_json(split_dir / METRICS_FILE)
        if report.get("overrides"):  # scored with other data or settings: not the run's score
            continue
        numbers = {k: v for k, v in report.items() if _is_number(v)}
        for key, value in report.items():  # macro_avg.f1 and the like, not per-class tables
            if isinstance(value, dict) and key != "per_class":
                numbers.update({f"{key}.{k}": v for k, v in value.items() if _is_number(v)})
        if numbers:
            reports[split_dir.name] = numbers
    return reports


def _duration(meta: dict[str, Any], history: list[dict[str, Any]], status: str) -> float | None:
    start, end = _timestamp(meta.get("started_at")), _timestamp(meta.get("finished_at"))
    if start is not None and status == RUNNING:
        end = datetime.now(timezone.utc)
    if start is not None and end is not None and not meta.get("resumes"):
        return round((end - start).total_seconds(), 1)
    seconds = [row["seconds"] for row in history if _is_number(row.get("seconds"))]
    return round(sum(seconds), 1) if seconds else None  # time spent in epochs


def _timestamp(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _prefixed(validation: dict[str, Any]) -> dict[str, Any]:
    return {f"val_{k}": v for k, v in validation.items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_json(path: Path) -> dict[str, Any]:
    return read_run_json(path) or {}


def _read_yaml(path: Path) -> dict[str, Any]:
    return read_run_pipeline(path) or {}


def _read_history(path: Path) -> list[dict[str, Any]]:
    return [{k: _float(v) for k, v in row.items()} for row in read_history(path) or []]


def _float(text: str | None) -> Any:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return text
