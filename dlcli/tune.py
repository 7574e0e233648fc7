"""`dlcli tune`: a KerasTuner search over a pipeline's keys, in which each trial is a dlcli run.

KerasTuner's oracle picks the values (random search, Bayesian optimisation, Hyperband) and keeps
its state in DIR/keras_tuner; dlcli's own trainer trains each trial into DIR/<n> through
`workflow.train` (never `model.fit`), and the objective is read back from that run's history at
its best epoch. A stopped tune resumes (`overwrite=False`): finished trials stay done, and the
trial that was running is run again, from its last checkpoint when it got that far.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.config.tune import TuneConfig, objective_direction, override_text
from dlcli.errors import ConfigError, DlcliError, TrainingError
from dlcli.run_lock import LOCK_FILE, RunLock

log = logging.getLogger("dlcli")

TUNER_DIR = "keras_tuner"  # KerasTuner's project: oracle.json and trial_*/trial.json
BEST_FILE = "best.yaml"
TRIALS_FILE = "trials.csv"


@dataclass
class TunePlan:
    """A checked pipeline with a `tune:` section and the directory its search lives in."""

    pipeline: Path
    overrides: list[str]
    config: Any
    directory: Path
    resumed: bool
    lock: RunLock | None = None  # held from the plan to the end of the search


@dataclass
class TrialRecord:
    trial: int  # 1, 2, ...: the trial's run directory is DIR/<trial>
    status: str  # completed, failed, ...
    values: dict[str, Any]  # the pipeline keys this trial set
    score: float | None
    best_epoch: int | None
    run_dir: Path
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "run_dir": str(self.run_dir.resolve())}


@dataclass
class TuneResult:
    directory: Path
    config: TuneConfig
    direction: str
    trials: list[TrialRecord]
    best: TrialRecord
    best_pipeline: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "tune_dir": str(self.directory.resolve()),
            "algorithm": self.config.algorithm,
            "objective": self.config.objective,
            "direction": self.direction,
            "best": {**self.best.to_json(), "pipeline": str(self.best_pipeline.resolve())},
            "trials": [t.to_json() for t in self.trials],
        }


def plan_tune(
    pipeline: Path,
    overrides: list[str] | None = None,
    *,
    output: Path | None = None,
    runs_dir: Path = Path("runs"),
    wait_lock: bool = False,
) -> TunePlan:
    """Check the pipeline and its tune directory (new, or the same search to resume), without
    TensorFlow: a mistake costs no start-up time."""
    from dlcli.config.loader import load_pipeline

    overrides = list(overrides or [])
    config = load_pipeline(pipeline, overrides).config
    if config.tune is None:
        raise ConfigError(
            f"{pipeline} has no `tune:` section: nothing to search.",
            hint="add `tune: {objective: val_accuracy, space: {model.dropout: "
            "{values: [0.1, 0.3]}}}` (see the README's Tuning section)",
        )
    directory = output or runs_dir / f"{config.name}-tune"
    resumed = _can_resume(directory, config)
    # One search per directory: a second `dlcli tune` on it (cron, a retry) exits 3, naming
    # the first, before it writes anything or imports TensorFlow.
    lock = RunLock.acquire(directory, wait=wait_lock, create=True)
    try:
        # The search's own pipeline, tune section included: a resume must match it.
        runs.atomic_write_text(directory / runs.PIPELINE_FILE, runs.dump_pipeline(config))
    except BaseException:
        lock.release()
        raise
    return TunePlan(pipeline, overrides, config, directory, resumed, lock)


def _can_resume(directory: Path, config: Any) -> bool:
    """False for a new search; True for the same search again (tune.max_trials may change)."""

    from dlcli.train.resume import changed_keys

    if not directory.exists() or not any(p.name != LOCK_FILE for p in directory.iterdir()):
        return False
    saved = directory / runs.PIPELINE_FILE
    if not saved.is_file():
        raise ConfigError(
            f"{directory} is not empty and holds no tune ({runs.PIPELINE_FILE} is missing).",
            hint="choose another --output",
        )
    before = runs.read_saved_pipeline(saved.read_text(encoding="utf-8"))
    changes = changed_keys(before, config.model_dump(mode="json"))
    unsafe = [k for k in changes if k != "tune.max_trials"]
    if unsafe:
        raise ConfigError(
            f"Cannot resume the tune in {directory}: the pipeline changed ({', '.join(unsafe)}), "
            "so its finished trials would not compare with new ones.",
            hint="resume with the same pipeline and --set options (--max-trials may change), "
            f"or start a new search with another --output or after deleting {directory}",
        )
    return True


def run_tune(plan: TunePlan, *, show_progress: bool = True) -> TuneResult:
    """Search until the oracle stops; write DIR/best.yaml and DIR/trials.csv."""
    try:
        return _search(plan, show_progress)
    finally:
        if plan.lock is not None:
            plan.lock.release()


def _search(plan: TunePlan, show_progress: bool) -> TuneResult:
    import keras_tuner

    runner = TrialRunner(plan, show_progress)
    # Each trial builds new tf.functions by design: TensorFlow's advice to stop is no news.
    logging.getLogger("tensorflow").addFilter(lambda r: "retracing" not in r.getMessage())
    with contextlib.suppress(ImportError):
        from keras_tuner.src import config as keras_tuner_config

        # On by default, it prints the traceback of every failed trial; dlcli logs one line,
        # and the trial's train.log keeps the traceback.
        keras_tuner_config.DEBUG = False
    with contextlib.redirect_stdout(io.StringIO()):  # "Reloading Tuner from ...": said below
        tuner = _make_tuner(plan, runner)
    # KerasTuner prints its own messages; stdout is kept for --json.
    with contextlib.redirect_stdout(sys.stderr):
        runner.max_trials = tuner.oracle.max_trials
        if plan.resumed:
            done = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
            log.info("resuming the tune in %s: %d trial(s) done", plan.directory, done)
        try:
            tuner.search()
        except keras_tuner.errors.FatalError:
            if runner.abort is not None:
                raise runner.abort from None
            raise
        except RuntimeError as exc:  # the oracle stops after consecutive failed trials
            first = str(exc).strip().splitlines()[0]
            raise TrainingError(
                f"The tune stopped: {first}", hint=f"see train.log in {plan.directory}/<trial>"
            ) from None
    trials = [_record(plan, trial) for trial in _sorted_trials(tuner.oracle)]
    return _finish(plan, trials, runner.direction)


def _make_tuner(plan: TunePlan, runner: TrialRunner) -> Any:
    import keras_tuner

    class DlcliTuner(keras_tuner.Tuner):
        """Trains each trial with dlcli's trainer instead of `model.fit`."""

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
            return runner.run(trial.trial_id, trial.hyperparameters.values)

    return DlcliTuner(
        oracle=make_oracle(plan.config),
        directory=str(plan.directory),
        project_name=TUNER_DIR,
        overwrite=False,
    )


def make_oracle(config: Any) -> Any:
    """The KerasTuner oracle of `tune.algorithm`, over the space of `tune.space`."""
    import keras_tuner

    tune: TuneConfig = config.tune
    seed = tune.seed if tune.seed is not None else config.seed
    common: dict[str, Any] = {
        "objective": keras_tuner.Objective(tune.objective, objective_direction(config)),
        "hyperparameters": search_space(tune),
        "allow_new_entries": False,
        "seed": seed or 1,  # KerasTuner takes a seed of 0 for "pick one at random"
    }
    oracles = keras_tuner.oracles
    if tune.algorithm == "hyperband":
        max_epochs = tune.max_epochs or config.train.epochs
        oracle = oracles.HyperbandOracle(max_epochs=max_epochs, factor=tune.factor, **common)
        oracle.max_trials = tune.trials_wanted()  # the base Oracle's cap; Hyperband sets none
    elif tune.algorithm == "bayesian":
        oracle = oracles.BayesianOptimizationOracle(max_trials=tune.trials_wanted(), **common)
    else:
        oracle = oracles.RandomSearchOracle(max_trials=tune.trials_wanted(), **common)
    oracle.verbose = 0  # dlcli logs each trial itself
    return oracle


def search_space(tune: TuneConfig) -> Any:
    """KerasTuner hyperparameters named by the dotted pipeline keys."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for key, dim in tune.space.items():
        sampling = "log" if dim.log else "linear"
        if dim.values is not None:
            hp.Choice(key, dim.choices())
        elif dim.whole:
            hp.Int(key, int(dim.min or 0), int(dim.max or 0), step=dim.step, sampling=sampling)
        else:
            low, high = float(dim.min or 0), float(dim.max or 0)
            hp.Float(key, low, high, step=dim.step, sampling=sampling)
    return hp


def trial_values(tune: TuneConfig, values: dict[str, Any]) -> dict[str, Any]:
    """The pipeline keys a trial sets, from KerasTuner's values (Hyperband's `tuner/epochs`
    is the trial's train.epochs)."""
    chosen = {key: dim.decode(values[key]) for key, dim in tune.space.items() if key in values}
    if "tuner/epochs" in values:
        chosen["train.epochs"] = int(values["tuner/epochs"])
    return chosen


def trial_dir(directory: Path, trial_id: str) -> Path:
    return directory / str(int(trial_id) + 1)


class TrialRunner:
    """Runs one KerasTuner trial as a dlcli run in DIR/<n> and reads its objective back."""

    def __init__(self, plan: TunePlan, show_progress: bool) -> None:
        self.plan, self.show_progress = plan, show_progress
        self.direction = objective_direction(plan.config)
        self.max_trials: int | None = None
        self.abort: DlcliError | None = None  # why the search stopped before its end

    def run(self, trial_id: str, values: dict[str, Any]) -> dict[str, float]:
        import keras
        import keras_tuner

        from dlcli import workflow

        tune: TuneConfig = self.plan.config.tune
        number, chosen = int(trial_id) + 1, trial_values(tune, values)
        of = f"/{self.max_trials}" if self.max_trials else ""
        shown = ", ".join(f"{k}={_show(v)}" for k, v in chosen.items())
        log.info("trial %d%s: %s", number, of, shown)
        run_dir = trial_dir(self.plan.directory, trial_id)
        past = values.get("tuner/trial_id")
        sets = [*self.plan.overrides, "tune=null", *(override_text(*kv) for kv in chosen.items())]
        try:
            keras.backend.clear_session()  # each trial starts from a clean Keras state
            resume = prepare_trial_dir(run_dir, trial_dir(run_dir.parent, past) if past else None)
            workflow.train(
                None if resume else self.plan.pipeline,
                sets,
                output=None if resume else run_dir,
                resume=run_dir if resume else None,
                show_progress=self.show_progress,
            )
            score, epoch = read_objective(run_dir, tune.objective, self.direction)
        except TrainingError as exc:  # a NaN loss: this trial failed, the search goes on
            log.warning("trial %d failed: %s", number, exc.message)
            raise keras_tuner.errors.FailedTrialError(exc.message) from exc
        except DlcliError as exc:  # a pipeline or data mistake, a locked run: stop the search
            self.abort = exc
            raise keras_tuner.errors.FatalError(exc.message) from exc
        except Exception as exc:  # out of memory, say: this trial failed, the search goes on
            message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
            log.warning("trial %d failed: %s (traceback in %s)", number, message, run_dir)
            raise keras_tuner.errors.FailedTrialError(message) from exc
        log.info("trial %d: %s %.4g at epoch %d", number, tune.objective, score, epoch)
        return {tune.objective: score}


def _show(value: Any) -> str:
    """A value as YAML reads it back: 0.003, 16, [16, 32], "adam"."""
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value)


def _has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "checkpoints" / "checkpoint").is_file()


def prepare_trial_dir(run_dir: Path, past: Path | None) -> bool:
    """True: resume `run_dir` from its last checkpoint (a trial stopped half-way, or Hyperband
    taking the `past` trial further); False: train it from scratch."""
    if _has_checkpoint(run_dir):
        return True
    if run_dir.exists():  # stopped before its first checkpoint: nothing worth keeping
        shutil.rmtree(run_dir)
    if past is None or not _has_checkpoint(past):
        return False
    partial = run_dir.with_name(f".{run_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(past, partial)
    partial.rename(run_dir)  # whole or not at all: a kill while copying leaves no half run
    return True


def read_objective(run_dir: Path, objective: str, direction: str) -> tuple[float, int]:
    """The objective at the run's best epoch (history.csv), or from its final metrics when it
    trained no epochs (a model fitted from features)."""
    rows = runs.read_history(run_dir / runs.HISTORY_FILE) or []
    scored = [(float(r[objective]), int(r["epoch"])) for r in rows if r.get(objective)]
    scored = [s for s in scored if math.isfinite(s[0])]
    if scored:
        pick = min if direction == "min" else max
        return pick(scored, key=lambda s: s[0])
    summary = json.loads((run_dir / runs.METRICS_FILE).read_text(encoding="utf-8"))
    final = {**summary.get("train", {})}
    final.update({f"val_{k}": v for k, v in summary.get("validation", {}).items()})
    if objective in final:
        return float(final[objective]), int(summary.get("best_epoch", 0))
    raise ConfigError(
        f"Trial {run_dir} did not report the objective `{objective}`. "
        f"It reported: {', '.join(final) or 'nothing'}.",
        hint="val_* metrics need a validation split (data.split.validation > 0)",
    )


def _sorted_trials(oracle: Any) -> list[Any]:
    return [oracle.trials[i] for i in sorted(oracle.trials, key=int)]


def _record(plan: TunePlan, trial: Any) -> TrialRecord:
    tune: TuneConfig = plan.config.tune
    run_dir = trial_dir(plan.directory, trial.trial_id)
    score = epoch = None
    if trial.status == "COMPLETED":
        score, epoch = read_objective(run_dir, tune.objective, objective_direction(plan.config))
    lines = (trial.message or "").strip().splitlines()
    return TrialRecord(
        trial=int(trial.trial_id) + 1,
        status=str(trial.status).lower(),
        values=trial_values(tune, trial.hyperparameters.values),
        score=score,
        best_epoch=epoch,
        run_dir=run_dir,
        message=lines[-1].split(": ", 1)[-1] if lines else None,
    )


def _finish(plan: TunePlan, trials: list[TrialRecord], direction: str) -> TuneResult:
    tune: TuneConfig = plan.config.tune
    done = [t for t in trials if t.score is not None]
    if not done:
        raise TrainingError(
            f"No trial of the tune in {plan.directory} finished.",
            hint=next((t.message for t in trials if t.message), None),
        )
    best = (min if direction == "min" else max)(done, key=lambda t: t.score or 0.0)
    header = (
        f"# The best pipeline of `dlcli tune` in {plan.directory}: trial {best.trial}, "
        f"{tune.objective} {best.score:.4g} at epoch {best.best_epoch}.\n"
        f"# Values: {', '.join(f'{k}={_show(v)}' for k, v in best.values.items())}\n"
    )
    best_file = plan.directory / BEST_FILE
    text = (best.run_dir / runs.PIPELINE_FILE).read_text(encoding="utf-8")
    runs.atomic_write_text(best_file, header + text)
    keys = list(dict.fromkeys(k for t in trials for k in t.values))
    rows = [
        {
            "trial": t.trial,
            "status": t.status,
            **{k: _csv_cell(t.values.get(k)) for k in keys},
            tune.objective: t.score,
            "best_epoch": t.best_epoch,
            "run_dir": str(t.run_dir),
        }
        for t in trials
    ]
    runs.atomic_write_csv(plan.directory / TRIALS_FILE, rows)
    return TuneResult(plan.directory, tune, direction, trials, best, best_file)


def _csv_cell(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str)) else json.dumps(value)
