"""`dlcli batch` and what cron needs: a summary and exit codes, quiet output and a log file,
environment variables, and a lock that keeps two processes out of one run directory."""

from __future__ import annotations

import json
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

ONE_EPOCH = (
    "train:\n  epochs: 1\n  batch_size: 16\n  precision: float32\n"
    "  optimizer: {type: adam, learning_rate: 0.01}\n"
)


def test_batch_goes_past_a_broken_pipeline_and_lists_the_runs(tmp_path: Path, small_digits: Path):
    alpha = write_pipeline(tmp_path / "a.yaml", small_digits, head="name: alpha\n", train=ONE_EPOCH)
    beta = write_pipeline(tmp_path / "b.yaml", small_digits, head="name: beta\n", train=ONE_EPOCH)
    broken = write_pipeline(tmp_path / "broken.yaml", small_digits, train="train:\n  epohcs: 1\n")
    store = tmp_path / "store"
    env = {"DLCLI_RUNS_DIR": str(store)}
    args = ("batch", alpha, broken, beta, "--json", "--set", "train.batch_size=32")
    result = run_cli(*args, cwd=tmp_path, env=env)

    assert result.code == 2, result.stderr  # a config error, the largest code of the three
    assert_no_traceback(result)
    document = result.json()
    assert (document["exit_code"], document["passed"], document["failed"]) == (2, 2, 1)
    rows = {Path(row["pipeline"]).name: row for row in document["pipelines"]}
    assert [rows[n]["status"] for n in ("a.yaml", "broken.yaml", "b.yaml")] == [
        "ok",
        "config error",
        "ok",
    ]
    assert rows["broken.yaml"]["exit_code"] == 2 and rows["broken.yaml"]["run_dir"] is None
    assert "did you mean `epochs`?" in rows["broken.yaml"]["error"]
    for name, run in (("a.yaml", "alpha"), ("b.yaml", "beta")):
        row = rows[name]
        assert Path(row["run_dir"]) == store / run / "1"
        assert row["metric"]["name"] == "accuracy" and row["metric"]["split"] == "test"
        assert 0 <= row["metric"]["value"] <= 1 and row["seconds"] > 0
        saved = yaml.safe_load((store / run / "1" / "pipeline.yaml").read_text())
        assert saved["train"]["batch_size"] == 32  # --set applies to every pipeline
        assert (store / run / "1" / "export" / "model.keras").is_file()  # as `dlcli run` does
    lines = result.stderr.splitlines()
    table = lines[
        next(i for i, line in enumerate(lines) if line.split()[:2] == ["pipeline", "status"]) :
    ]
    assert table[0].split() == ["pipeline", "status", "run", "dir", "metric", "seconds"]
    assert "config error" in table[2] and "test accuracy" in table[1]
    assert table[-1] == "2 passed, 1 failed, 0 skipped"

    listed = run_cli("runs", "list", "--json", env=env)
    assert listed.code == 0, listed.stderr
    runs = listed.json()
    assert [r["name"] for r in runs] == ["beta/1", "alpha/1"]  # newest first
    assert {r["status"] for r in runs} == {"finished"} and runs[0]["epochs"] == 1
    assert runs[0]["key_metric"]["value"] == rows["b.yaml"]["metric"]["value"]
    compared = run_cli("runs", "compare", "alpha/1", "beta/1", "--json", env=env)
    assert compared.code == 0, compared.stderr
    diff = compared.json()
    assert diff["pipeline"]["changed"]["name"] == ["alpha", "beta"]
    accuracy = next(m for m in diff["metrics"] if m["metric"] == "test.accuracy")
    assert accuracy["delta"] == pytest.approx(accuracy["b"] - accuracy["a"])


def test_a_runtime_failure_exits_1_and_fail_fast_skips_the_rest(tmp_path: Path, small_digits: Path):
    nightly = tmp_path / "nightly"
    nightly.mkdir()
    nan = ONE_EPOCH.replace("{type: adam, learning_rate: 0.01}", "{type: sgd, learning_rate: 1e30}")
    write_pipeline(nightly / "1_nan.yaml", small_digits, head="name: nan\n", train=nan)
    write_pipeline(nightly / "2_good.yaml", small_digits, train=ONE_EPOCH)
    log = tmp_path / "logs" / "cron.log"
    env = {"DLCLI_QUIET": "1", "DLCLI_LOG_FILE": str(log)}
    result = run_cli("batch", "nightly/*.yaml", "--fail-fast", "--json", cwd=tmp_path, env=env)

    assert result.code == 1, result.stderr
    assert_no_traceback(result)
    first, second = result.json()["pipelines"]
    assert (first["status"], first["exit_code"], second["status"]) == ("failed", 1, "skipped")
    assert "loss became nan" in first["error"].lower()
    assert first["run_dir"] == str(Path("runs") / "nan" / "1")  # the run it left behind
    assert "run directory" not in result.stderr  # quiet: errors and the summary only
    assert "loss became nan" in result.stderr.lower() and "0 passed, 1 failed, 1 skipped" in (
        result.stderr
    )
    logged = log.read_text()
    assert "INFO run directory runs/nan/1" in logged and "ERROR" in logged

    listed = run_cli("runs", "list", "--json", cwd=tmp_path)
    (run,) = listed.json()
    assert run["status"] == "failed" and "loss became nan" in run["error"].lower()


def test_a_second_process_on_a_locked_run_exits_3_naming_the_pid(
    tmp_path: Path, small_digits: Path
):
    slow = "train:\n  epochs: 500\n  batch_size: 2\n  precision: float32\n"
    pipeline = write_pipeline(tmp_path / "p.yaml", small_digits, train=slow)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # One thread for the trainer: it is still training while the others meet its lock.
    one_thread = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    with (tmp_path / "first.log").open("w") as first_log:
        first = subprocess.Popen(
            [sys.executable, "-m", "dlcli", "train", str(pipeline), "-o", str(out), "-q"],
            cwd=tmp_path,
            env={**env, **one_thread},
            stdout=subprocess.DEVNULL,
            stderr=first_log,
        )
    try:
        deadline = time.monotonic() + 180
        while not (out / "run.json").is_file() and time.monotonic() < deadline:
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            time.sleep(0.5)
        # A fixed --output and a --resume of the same run, both while the first one trains:
        # each exits 3 before it imports TensorFlow.
        commands = [["train", str(pipeline), "-o", str(out)], ["train", "--resume", str(out)]]
        for args in commands:
            proc = run_light(args, env=env, exit_code=3)
            assert proc.returncode == 0, proc.stderr
            assert f"is in use: dlcli process PID {first.pid}" in proc.stderr
            assert "--wait-lock" in proc.stderr and "Traceback" not in proc.stderr
        listed = run_cli("runs", "list", "--json", "--runs-dir", tmp_path)
        assert [(r["name"], r["status"]) for r in listed.json()] == [("out", "running")]
    finally:
        first.send_signal(signal.SIGTERM)  # as `docker stop` or `timeout` would
        first.wait(timeout=120)
    assert first.returncode == 130
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["pid"] == first.pid
    assert json.loads((out / "run.lock").read_text())["pid"] == first.pid
