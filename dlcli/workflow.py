"""Run orchestration as a library: start or resume training, and `run` = train + evaluate +
export. The CLI commands are thin wrappers over these functions.

Only the chief (worker 0 of a cluster, or the only process) writes the run directory and
evaluates and exports; other workers train into a scratch directory that is removed at the end.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.errors import ConfigError, as_interrupt

log = logging.getLogger("dlcli")


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]
    config: Any
    chief: bool
    lock: Any = None  # with `hold_lock`: the run's lock, for the caller to finish


@dataclass
class RunResult:
    train: TrainResult
    evaluation: Any = None  # dlcli.evaluate.Evaluation, or None when skipped
    exported: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was skipped, and why


def train(
    pipeline: Path | None,
    overrides: list[str] | None = None,
    *,
    output: Path | None = None,
    runs_dir: Path = Path("runs"),
    resume: Path | None = None,
    show_progress: bool = True,
    wait_lock: bool = False,
    hold_lock: bool = False,
) -> TrainResult:
    """Train `pipeline` into a new run directory, or resume the run `resume`.

    The chief holds the run directory's lock while it trains: a second process meeting it
    stops with RunLockedError (exit 3), or with `wait_lock` waits for it. `hold_lock`: a
    trained run keeps it, in the result, for the caller's later steps (`run`: evaluate, export).
    """
    from dlcli.train.strategy import is_chief_process

    chief = is_chief_process()
    fresh = False  # this call made the run directory: a config error removes it again
    lock: runs.RunLock | None = None
    try:
        if resume is not None:
            lock = runs.lock_run(resume, wait=wait_lock) if chief else None
            config, run_dir = _prepare_resume(resume, pipeline, overrides, write=chief)
        else:
            config = _load(pipeline, overrides)
            if chief:
                fresh = output is None or not output.exists() or not any(output.iterdir())
                run_dir, lock = runs.claim_run_dir(config.name, runs_dir, output, wait=wait_lock)
                runs.write_run_header(run_dir, config, pipeline)
    except BaseException:
        if lock is not None:  # refused before training: let go, and leave no half-made run
            lock.release()
            if fresh and not (lock.run_dir / "checkpoints").exists():
                shutil.rmtree(lock.run_dir, ignore_errors=True)
        raise
    if not chief:
        # Only the chief writes artifacts; other workers keep theirs in a scratch directory.
        run_dir = Path(tempfile.mkdtemp(prefix="dlcli-worker-"))
    handler: Any = log_to_file(run_dir / runs.LOG_FILE)
    discard: Path | None = None
    error: BaseException | None = None
    try:
        log.info("run directory %s", run_dir)
        from dlcli.train.run import train_pipeline

        summary = train_pipeline(config, run_dir, resume=resume, show_progress=show_progress)
    except BaseException as exc:
        error = as_interrupt(exc)
        # The run log keeps the full story; the terminal gets the short message.
        handler.stream.write("".join(traceback.format_exception(exc)))
        if isinstance(exc, ConfigError) and fresh:
            # A pipeline or data mistake found before training: leave no half-made run behind.
            discard = run_dir
        if error is not exc:
            raise error from exc
        raise
    finally:
        logging.getLogger("dlcli").removeHandler(handler)
        handler.close()
        if not chief:
            shutil.rmtree(run_dir, ignore_errors=True)
        elif discard is not None and not (discard / "checkpoints").exists():
            shutil.rmtree(discard, ignore_errors=True)
        if lock is not None and (error is not None or not hold_lock):
            lock.finish(error)
    if chief and not hold_lock:  # after run.json says how training ended (`run` writes its
        # own at its end); a report never fails the run
        from dlcli.report.html import write_run_report

        write_run_report(run_dir)
    return TrainResult(run_dir, summary, config, chief, lock if hold_lock else None)


def log_to_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("dlcli").addHandler(handler)
    return handler


def run(
    pipeline: Path,
    overrides: list[str] | None = None,
    *,
    output: Path | None = None,
    runs_dir: Path = Path("runs"),
    show_progress: bool = True,
    wait_lock: bool = False,
) -> RunResult:
    """Train, evaluate (on `evaluate.split`, or validation when that split is empty) and export.

    A non-chief worker only trains: the chief evaluates and exports the shared result.
    """
    from dlcli.report.html import write_run_report

    trained = train(
        pipeline,
        overrides,
        output=output,
        runs_dir=runs_dir,
        show_progress=show_progress,
        wait_lock=wait_lock,
        hold_lock=True,
    )
    result = RunResult(trained)
    if not trained.chief:
        result.notes.append("worker process: the chief evaluates and exports")
        return result
    error: BaseException | None = None
    try:  # the run stays locked (and `running`) until its exports are written
        _evaluate_and_export(trained, result)
    except BaseException as exc:
        error = as_interrupt(exc)
        if error is not exc:
            raise error from exc
        raise
    finally:
        if trained.lock is not None:
            trained.lock.finish(error)
        write_run_report(trained.run_dir)  # once: data, metrics, exports and status
    return result


def _evaluate_and_export(trained: TrainResult, result: RunResult) -> None:
    from dlcli.evaluate import evaluate_run
    from dlcli.export import export_run

    split = _evaluation_split(trained)
    if split is None:
        result.notes.append("evaluation skipped: the test and validation splits are empty")
    else:
        if split != trained.config.evaluate.split:
            result.notes.append(
                f"the `{trained.config.evaluate.split}` split is empty: evaluated on `{split}`"
            )
        result.evaluation = evaluate_run(trained.run_dir, split=split, refresh_report=False)
    result.exported = export_run(trained.run_dir, trained.config.export.formats)


def _evaluation_split(trained: TrainResult) -> str | None:
    sizes = trained.summary.get("data", {})
    wanted = trained.config.evaluate.split
    for split in (wanted, "validation"):
        if sizes.get(split, 0) > 0:
            return str(split)
    return None


def _load(pipeline: Path | None, overrides: list[str] | None) -> Any:
    from dlcli.config.loader import load_pipeline

    if pipeline is None:
        raise ConfigError("Missing argument PIPELINE.", hint="dlcli train PIPELINE.yaml")
    return load_pipeline(pipeline, overrides).config


def _prepare_resume(
    run_dir: Path, pipeline: Path | None, overrides: list[str] | None, *, write: bool
) -> tuple[Any, Path]:
    """The run's own pipeline (or PIPELINE) with overrides applied, checked against the
    original: changes the checkpoint cannot follow are refused."""
    from dlcli.config.loader import load_pipeline
    from dlcli.train.resume import check_resume_changes

    saved = run_dir / runs.PIPELINE_FILE
    if not saved.is_file() or not (run_dir / "checkpoints").is_dir():
        raise ConfigError(
            f"Cannot resume {run_dir}: expected a run directory with {runs.PIPELINE_FILE} and "
            "checkpoints/.",
            hint="pass a directory written by `dlcli train`, e.g. runs/NAME/N",
        )
    config = load_pipeline(pipeline or saved, overrides).config
    before = runs.read_saved_pipeline(saved.read_text())
    changes = check_resume_changes(
        before, config.model_dump(mode="json"), extra_safe=config.task.resumable_keys()
    )
    if write:
        runs.record_resume(run_dir, config, changes)
    return config, run_dir
