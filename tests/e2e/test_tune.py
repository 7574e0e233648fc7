"""`dlcli tune` for real: KerasTuner picks the values, dlcli's trainer trains every trial."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, assert_no_traceback, run_cli, run_light, write_pipeline

pytestmark = pytest.mark.e2e

TUNE = """tune:
  algorithm: random
  objective: val_accuracy
  max_trials: 3
  space:
    train.optimizer.learning_rate: {min: 1.0e-3, max: 3.0e-2, log: true}
    model.dropout: {values: [0.1, 0.3]}
    model.dense: {values: [[16], [32]]}
"""
ONE_EPOCH = (
    "train:\n  epochs: 1\n  batch_size: 16\n  precision: float32\n"
    "  optimizer: {type: adam, learning_rate: 0.01}\n"
)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, small_digits: Path) -> dict:
    work = tmp_path_factory.mktemp("tune")
    pipeline = write_pipeline(work / "tiny.yaml", small_digits, train=ONE_EPOCH, tune=TUNE)
    result = run_cli("tune", pipeline, "--json", cwd=work)
    assert result.code == 0, result.stderr
    assert_no_traceback(result)
    return {"work": work, "pipeline": pipeline, "result": result, "dir": work / "runs/tiny-tune"}


@pytest.mark.slow
def test_each_trial_is_a_run_directory_with_its_values(tuned: dict):
    doc = tuned["result"].json()
    assert doc["algorithm"] == "random" and doc["direction"] == "max"
    trials = doc["trials"]
    assert [t["trial"] for t in trials] == [1, 2, 3]
    for trial in trials:
        run = tuned["dir"] / str(trial["trial"])
        assert Path(trial["run_dir"]) == run.resolve()
        assert trial["status"] == "completed" and 0.0 <= trial["score"] <= 1.0
        for name in ("pipeline.yaml", "model.keras", "history.csv", "metrics.json"):
            assert (run / name).is_file(), (run, name)
        resolved = yaml.safe_load((run / "pipeline.yaml").read_text())
        assert "tune" not in resolved  # a trial is a plain run
        values = trial["values"]
        assert resolved["model"]["dropout"] == values["model.dropout"] in (0.1, 0.3)
        assert resolved["model"]["dense"] == values["model.dense"] in ([16], [32])
        lr = resolved["train"]["optimizer"]["learning_rate"]
        assert lr == pytest.approx(values["train.optimizer.learning_rate"])
        assert 1e-3 <= lr <= 3e-2
        history = list(csv.DictReader((run / "history.csv").open()))
        assert float(history[0]["val_accuracy"]) == pytest.approx(trial["score"])
    assert doc["best"]["score"] == max(t["score"] for t in trials)
    # KerasTuner's own state, which a resume reloads
    assert (tuned["dir"] / "keras_tuner" / "oracle.json").is_file()


@pytest.mark.slow
def test_best_pipeline_is_a_plain_pipeline_that_validates(tuned: dict):
    doc = tuned["result"].json()
    best_file = tuned["dir"] / "best.yaml"
    assert Path(doc["best"]["pipeline"]) == best_file.resolve()
    best = yaml.safe_load(best_file.read_text())
    assert "tune" not in best
    assert best["model"]["dropout"] == doc["best"]["values"]["model.dropout"]
    assert best["model"]["dense"] == doc["best"]["values"]["model.dense"]
    result = run_cli("validate", best_file, cwd=tuned["work"])
    assert result.code == 0, result.stderr


@pytest.mark.slow
def test_table_of_trials_is_printed_and_saved(tuned: dict):
    stderr = tuned["result"].stderr
    lines = stderr.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["trial"] and "status" in line)
    for column in ("learning_rate", "dropout", "dense", "val_accuracy", "epoch"):
        assert column in header
    rows = [line.split() for line in lines[lines.index(header) + 1 :]]
    assert [r[0] for r in rows[:3]] == ["1", "2", "3"]
    assert "best trial" in stderr and "best.yaml" in stderr
    saved = list(csv.DictReader((tuned["dir"] / "trials.csv").open()))
    assert [r["trial"] for r in saved] == ["1", "2", "3"]


@pytest.mark.slow
def test_a_killed_tune_resumes_without_rerunning_finished_trials(tuned: dict):
    work, tune_dir = tuned["work"], tuned["dir"]
    finished = {n: (tune_dir / str(n) / "metrics.json").stat().st_mtime_ns for n in (1, 2, 3)}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlcli", "tune", tuned["pipeline"], "--max-trials", "4"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = tune_dir / "4" / "pipeline.yaml"  # trial 4 is under way
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the tune ended before it could be killed"
    proc.send_signal(signal.SIGKILL)  # no clean-up at all
    proc.wait()
    assert not (tune_dir / "4" / "model.keras").exists()

    result = run_cli("tune", tuned["pipeline"], "--max-trials", "4", "--json", cwd=work)
    assert result.code == 0, result.stderr
    assert_no_traceback(result)
    assert "3 trial(s) done" in result.stderr
    assert "trial 4/4" in result.stderr and "trial 1/" not in result.stderr
    doc = result.json()
    assert [t["status"] for t in doc["trials"]] == ["completed"] * 4
    assert (tune_dir / "4" / "model.keras").is_file()
    for number, mtime in finished.items():  # untouched: not trained again
        assert (tune_dir / str(number) / "metrics.json").stat().st_mtime_ns == mtime


def test_a_second_tune_on_a_busy_directory_exits_3_before_tensorflow(
    tmp_path: Path, small_digits: Path
):
    from dlcli.run_lock import RunLock

    pipeline = write_pipeline(tmp_path / "tiny.yaml", small_digits, train=ONE_EPOCH, tune=TUNE)
    busy = tmp_path / "busy-tune"
    lock = RunLock.acquire(busy, create=True)  # as a first `dlcli tune` on it holds it
    try:
        proc = run_light(["tune", str(pipeline), "-o", str(busy)], exit_code=3)
    finally:
        lock.release()
    assert proc.returncode == 0, proc.stderr
    assert f"{busy} is in use" in proc.stderr and "--wait-lock" in proc.stderr
    assert [p.name for p in busy.iterdir()] == ["run.lock"]  # nothing written meanwhile


def test_unknown_space_key_is_a_config_error(tmp_path: Path, small_digits: Path):
    bad_tune = TUNE.replace("model.dropout:", "model.dropotu:")
    pipeline = write_pipeline(tmp_path / "bad.yaml", small_digits, tune=bad_tune)
    for command in ("validate", "tune"):
        result = run_cli(command, pipeline, cwd=tmp_path)
        assert result.code == 2, result.stderr
        assert_no_traceback(result)
        assert "model.dropotu" in result.stderr and "did you mean `dropout`" in result.stderr
        assert f"{pipeline}:" in result.stderr  # points at the line
    plain = write_pipeline(tmp_path / "plain.yaml", small_digits)
    result = run_cli("tune", plain, cwd=tmp_path)
    assert result.code == 2 and "no `tune:` section" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_tune_help_and_validate_stay_light():
    example = REPO / "pipelines" / "quickstart_tune.yaml"
    proc = run_light(["tune", "--help"], ["validate", example])
    assert proc.returncode == 0, proc.stderr
