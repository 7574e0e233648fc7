"""Several pipelines in turn, each as `dlcli run` does it (train, evaluate, export), in one
process: what a nightly cron job runs. A failed pipeline is recorded and the next one starts,
unless `fail_fast`; the batch's exit code is the largest of its pipelines'."""

from __future__ import annotations

import glob
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli.errors import ConfigError, DlcliError

log = logging.getLogger("dlcli")

OK, FAILED, CONFIG_ERROR, LOCKED, INTERRUPTED, SKIPPED = (
    "ok",
    "failed",
    "config error",
    "locked",
    "interrupted",
    "skipped",
)
PIPELINE_SUFFIXES = (".yaml", ".yml")


@dataclass
class PipelineOutcome:
    """How one pipeline of a batch went; `exit_code` is what `dlcli run` would have exited."""

    pipeline: Path
    status: str = SKIPPED
    exit_code: int = 0
    run_dir: Path | None = None
    metric: dict[str, Any] | None = None  # runs_index.key_metric: name, value, split, direction
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": str(self.pipeline),
            "status": self.status,
            "exit_code": self.exit_code,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "metric": self.metric,
            "seconds": round(self.seconds, 2),
            "error": self.error,
        }


@dataclass
class BatchResult:
    outcomes: list[PipelineOutcome] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every pipeline passed; else the largest code: 1 a failure at run time,
        2 a config error, 3 a locked run, 130 interrupted."""
        return max((o.exit_code for o in self.outcomes), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "passed": sum(o.status == OK for o in self.outcomes),
            "failed": sum(o.status not in (OK, SKIPPED) for o in self.outcomes),
            "skipped": sum(o.status == SKIPPED for o in self.outcomes),
            "pipelines": [o.to_json() for o in self.outcomes],
        }


def expand_pipelines(patterns: list[str]) -> list[Path]:
    """Files as given (a missing one is reported by its run), folders as their YAML files,
    globs as what they match, in order, each once. A glob matching nothing is a usage error."""
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.suffix in PIPELINE_SUFFIXES)
        elif not path.exists() and glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            matches = [p for p in matches if p.is_file()]
        else:
            matches = [path]
        if not matches:
            raise ConfigError(
                f"No pipeline file matches {pattern!r}.",
                hint="give pipeline files, a folder of them, or a quoted glob: 'pipelines/*.yaml'",
            )
        found.extend(p for p in matches if p not in found)
    return found


def run_batch(
    pipelines: list[Path],
    overrides: list[str] | None = None,
    *,
    runs_dir: Path = Path("runs"),
    show_progress: bool = True,
    fail_fast: bool = False,
    wait_lock: bool = False,
) -> BatchResult:
    """`workflow.run` each pipeline with the same overrides; Ctrl-C stops the batch."""
    result = BatchResult([PipelineOutcome(p) for p in pipelines])
    for outcome in result.outcomes:
        log.info("pipeline %s", outcome.pipeline)
        _run_one(outcome, overrides, runs_dir, show_progress, wait_lock)
        if outcome.status == INTERRUPTED or (fail_fast and outcome.status != OK):
            break
    return result


def _run_one(
    outcome: PipelineOutcome,
    overrides: list[str] | None,
    runs_dir: Path,
    show_progress: bool,
    wait_lock: bool,
) -> None:
    from dlcli import runs_index, workflow

    started = time.perf_counter()
    try:
        done = workflow.run(
            outcome.pipeline,
            overrides,
            runs_dir=runs_dir,
            show_progress=show_progress,
            wait_lock=wait_lock,
        )
        outcome.status, outcome.run_dir = OK, done.train.run_dir
        declared = dict(done.train.config.task.metrics)
        validation = done.train.summary.get("validation") or {}
        evaluation = done.evaluation.report if done.evaluation is not None else {}
        outcome.metric = runs_index.key_metric(
            declared,
            {f"val_{k}": v for k, v in validation.items()},
            {evaluation["split"]: evaluation} if evaluation.get("split") else {},
        )
    except KeyboardInterrupt:
        outcome.status, outcome.exit_code, outcome.error = INTERRUPTED, 130, "interrupted"
    except DlcliError as exc:
        outcome.exit_code = exc.exit_code
        outcome.status = {2: CONFIG_ERROR, 3: LOCKED}.get(exc.exit_code, FAILED)
        outcome.error = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    except Exception as exc:  # a runtime failure (TensorFlow, I/O): recorded, the batch goes on
        if os.environ.get("DLCLI_DEBUG"):
            raise  # the traceback, as every command gives it with DLCLI_DEBUG=1
        first = (str(exc).strip().splitlines() or [""])[0][:500]
        outcome.status, outcome.exit_code = FAILED, 1
        outcome.error = f"{type(exc).__name__}: {first}"
    outcome.seconds = time.perf_counter() - started
    if outcome.run_dir is None and outcome.status in (FAILED, INTERRUPTED):
        outcome.run_dir = _run_dir_of_this_process(outcome.pipeline, overrides, runs_dir)
    if outcome.status == OK:
        log.info("%s: ok in %.1fs, %s", outcome.pipeline, outcome.seconds, outcome.run_dir)
    else:
        log.error("%s: %s: %s", outcome.pipeline, outcome.status, outcome.error)


def _run_dir_of_this_process(
    pipeline: Path, overrides: list[str] | None, runs_dir: Path
) -> Path | None:
    """The run a failed pipeline left behind (its run.json names this process), if any."""
    from dlcli.config.loader import load_pipeline
    from dlcli.runs_index import list_runs

    try:
        name = load_pipeline(pipeline, overrides).config.name
    except DlcliError:
        return None
    for info in list_runs(runs_dir, name):
        if info.pid == os.getpid():
            return info.directory
    return None
