"""`dlcli runs list`/`compare`, run locks and run statuses, on run directories written by hand:
fast, and never TensorFlow."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from dlcli import runs
from dlcli.cli.options import Precision, Strategy
from dlcli.errors import ConfigError, RunLockedError
from dlcli.run_lock import RunLock, is_locked
from dlcli.runs_index import compare_runs, list_runs
from tests.conftest import REPO, assert_no_traceback, run_cli, run_light


def make_run(
    root: Path,
    name: str,
    number: int,
    *,
    started: str,
    status: str | None = "finished",
    pipeline: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
    history: list[dict[str, float]] | None = None,
    evaluation: dict[str, Any] | None = None,
    **meta: Any,
) -> Path:
    run_dir = root / name / str(number)
    run_dir.mkdir(parents=True)
    pipe = {"name": name, "task": {"type": "classification"}, "train": {"epochs": 2}}
    (run_dir / runs.PIPELINE_FILE).write_text(yaml.safe_dump(pipeline or pipe))
    header = {"started_at": started, "pid": 1, **meta}
    if status is not None:
        header["status"] = status
    (run_dir / runs.META_FILE).write_text(json.dumps(header))
    if summary is not None:
        (run_dir / runs.METRICS_FILE).write_text(json.dumps(summary))
    if history:
        runs.atomic_write_csv(run_dir / runs.HISTORY_FILE, history)
    if evaluation is not None:
        (run_dir / "evaluation" / "test").mkdir(parents=True)
        (run_dir / "evaluation" / "test" / runs.METRICS_FILE).write_text(json.dumps(evaluation))
    return run_dir


EPOCHS = [
    {"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.2, "val_accuracy": 0.4, "seconds": 2},
    {"epoch": 2, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.9, "val_accuracy": 0.7, "seconds": 3},
]
SUMMARY = {
    "epochs_run": 2,
    "best_epoch": 2,
    "parameters": 100,
    "train": {"loss": 0.5, "accuracy": 0.8},
    "validation": {"loss": 0.9, "accuracy": 0.7},
}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    make_run(
        root,
        "digits",
        1,
        started="2026-01-01T10:00:00+00:00",
        finished_at="2026-01-01T10:01:30+00:00",
        summary=SUMMARY,
        history=EPOCHS,
        evaluation={"split": "test", "examples": 10, "accuracy": 0.75, "per_class": {"0": {}}},
    )
    make_run(
        root,
        "digits",
        2,
        started="2026-01-02T10:00:00+00:00",
        status="failed",
        error="TrainingError: The training loss became nan",
        history=EPOCHS[:1],
    )
    make_run(root, "digits", 3, started="2026-01-03T10:00:00+00:00", status="running")
    make_run(root, "speech", 1, started="2026-01-04T10:00:00+00:00", status=None, summary=SUMMARY)
    return root


def test_list_reads_status_epochs_metrics_and_time_newest_first(store: Path):
    found = {info.name: info for info in list_runs(store)}
    assert list(found) == ["speech/1", "digits/3", "digits/2", "digits/1"]
    done = found["digits/1"]
    assert (done.status, done.epochs, done.seconds) == ("finished", 2, 90.0)
    assert done.metrics["val_accuracy"] == 0.7
    assert done.key_metric == {
        "name": "accuracy",
        "value": 0.75,
        "split": "test",
        "direction": "max",
    }
    failed = found["digits/2"]
    assert failed.status == "failed" and failed.error is not None and "nan" in failed.error
    assert failed.epochs == 1 and failed.metrics["val_accuracy"] == 0.4  # the last epoch's
    assert failed.key_metric is not None and failed.key_metric["split"] == "validation"
    # It said `running`, and no process holds its lock: killed (SIGKILL, out of memory).
    assert found["digits/3"].status == "killed"
    assert found["speech/1"].status == "finished"  # before run.json had a status
    assert [i.name for i in list_runs(store, "speech*")] == ["speech/1"]


def test_damaged_run_files_read_as_missing_in_the_list_and_the_report(tmp_path: Path):
    """A run cut short or edited by hand: `runs list` and the report show what is readable."""
    from dlcli.report.run_files import RunFiles

    run_dir = make_run(tmp_path, "digits", 1, started="2026-01-01T10:00:00+00:00", history=EPOCHS)
    (run_dir / runs.METRICS_FILE).write_text('{"train": {"loss": 0.')  # cut mid-write
    history = (run_dir / runs.HISTORY_FILE).read_bytes()
    (run_dir / runs.HISTORY_FILE).write_bytes(history + b"3,\xff,0.9,0.8,0.6,4\n")  # not UTF-8
    (run_dir / runs.PIPELINE_FILE).write_text("name: [digits\n")  # does not parse

    [info] = list_runs(tmp_path)
    assert info.epochs == len(EPOCHS) + 1 and info.metrics["val_accuracy"] == 0.6
    files = RunFiles.read(run_dir)
    assert files.summary is None and files.pipeline == {}
    assert files.pipeline_text is not None and files.meta is not None
    assert files.history is not None and len(files.history) == len(EPOCHS) + 1
    assert runs.read_run_json(run_dir / "absent.json") is None
    assert runs.read_history(run_dir / "absent.csv") is None


def test_a_tune_folder_lists_its_trials_not_itself(store: Path):
    tune = store / "digits-tune"
    make_run(store, "digits-tune", 1, started="2026-01-05T10:00:00+00:00", summary=SUMMARY)
    (tune / "keras_tuner").mkdir()
    (tune / "pipeline.yaml").write_text("name: digits\n")  # what `dlcli tune` keeps there
    names = [info.name for info in list_runs(store)]
    assert names[0] == "digits-tune/1" and "digits-tune" not in names


def test_a_run_whose_lock_is_held_is_running(store: Path):
    run_dir = store / "digits" / "3"
    lock = RunLock.acquire(run_dir)
    try:
        assert is_locked(run_dir)
        assert {i.name: i.status for i in list_runs(store)}["digits/3"] == "running"
    finally:
        lock.release()
    assert not is_locked(run_dir)


def test_list_and_compare_commands_json_and_tables(store: Path):
    env = {"DLCLI_RUNS_DIR": str(store)}
    listed = run_cli("runs", "list", "--json", env=env)
    assert listed.code == 0, listed.stderr
    assert [r["name"] for r in listed.json()] == ["speech/1", "digits/3", "digits/2", "digits/1"]
    table = run_cli("runs", "list", "digits", env=env)
    assert table.code == 0, table.stderr
    lines = table.stdout.splitlines()
    header = ["run", "started", "status", "epochs", "key", "metric", "validation", "time"]
    assert lines[0].split() == header
    assert "digits/1" in lines[-1] and "finished" in lines[-1] and "test accuracy 0.75" in lines[-1]
    assert "1m30s" in lines[-1] and "\x1b[" not in table.stdout  # a pipe: no colour
    compare = run_cli("runs", "compare", "digits/1", store / "digits" / "2", "--json", env=env)
    assert compare.code == 0, compare.stderr
    missing = run_cli("runs", "compare", "digits/1", "digits/9", env=env)
    assert missing.code == 2 and "Not a run directory: digits/9" in missing.stderr
    assert_no_traceback(missing)


def test_compare_flattens_pipelines_and_subtracts_metrics(tmp_path: Path):
    base = {"name": "a", "train": {"epochs": 2, "optimizer": {"lr": 0.1}}, "seed": 1}
    other = {"name": "a", "train": {"epochs": 5, "optimizer": {"lr": 0.1}}, "tags": [1, 2]}
    a = make_run(tmp_path, "a", 1, started="2026-01-01T00:00:00", pipeline=base, summary=SUMMARY)
    better = {**SUMMARY, "validation": {"loss": 0.5, "accuracy": 0.9}}
    b = make_run(tmp_path, "a", 2, started="2026-01-02T00:00:00", pipeline=other, summary=better)
    diff = compare_runs(a, b)
    assert diff["pipeline"] == {
        "only_in_a": {"seed": 1},
        "only_in_b": {"tags": [1, 2]},
        "changed": {"train.epochs": [2, 5]},
    }
    deltas = {row["metric"]: row for row in diff["metrics"]}
    assert deltas["validation.accuracy"]["delta"] == pytest.approx(0.2)
    assert deltas["validation.loss"]["a"] == 0.9 and deltas["validation.loss"]["b"] == 0.5
    assert deltas["epochs_run"]["delta"] == 0


def test_runs_commands_do_not_import_tensorflow(store: Path):
    where = ["--runs-dir", str(store)]
    proc = run_light(["runs", "list", *where], ["runs", "compare", "digits/1", "digits/2", *where])
    assert proc.returncode == 0, proc.stderr


HOLD = """
import sys, time
from pathlib import Path
from dlcli.run_lock import RunLock
lock = RunLock.acquire(Path(sys.argv[1]), create=True)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_lock(run_dir: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that takes the lock of `run_dir` and keeps it `seconds`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_lock_held_by_another_process_fails_at_once_or_is_waited_for(tmp_path: Path):
    run_dir = tmp_path / "out"
    holder = hold_lock(run_dir, 60)
    try:
        started = time.monotonic()
        with pytest.raises(RunLockedError) as info:
            RunLock.acquire(run_dir)
        assert time.monotonic() - started < 5
        assert info.value.exit_code == 3
        assert f"PID {holder.pid}" in info.value.message and "--wait-lock" in (
            info.value.hint or ""
        )
        # A fixed --output: the second process meets the lock before looking inside.
        with pytest.raises(RunLockedError):
            runs.claim_run_dir("x", tmp_path, run_dir)
    finally:
        holder.kill()
        holder.wait()
    # The kernel let go when the holder died; its files are there now, so --output refuses.
    (run_dir / runs.META_FILE).write_text("{}")
    with pytest.raises(ConfigError, match="not empty"):
        runs.claim_run_dir("x", tmp_path, run_dir)

    waiter = hold_lock(run_dir, 1.5)
    got: list[RunLock] = []
    thread = threading.Thread(target=lambda: got.append(RunLock.acquire(run_dir, wait=True)))
    thread.start()
    thread.join(timeout=30)
    waiter.wait()
    assert got, "--wait-lock never got the lock"
    got[0].finish(None)
    assert json.loads((run_dir / runs.META_FILE).read_text())["status"] == "finished"


def test_a_full_output_folder_is_refused_without_a_lock_file_left_in_it(tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"not yours to touch")
    with pytest.raises(ConfigError, match="not empty"):
        runs.claim_run_dir("x", tmp_path, folder)
    assert [p.name for p in folder.iterdir()] == ["cat.jpg"]


def test_run_json_records_how_training_ended(tmp_path: Path):
    for error, status in [
        (None, "finished"),
        (RuntimeError("disk full\nmore"), "failed"),
        (KeyboardInterrupt(), "interrupted"),
    ]:
        run_dir, lock = runs.claim_run_dir("p", tmp_path)
        (run_dir / runs.META_FILE).write_text(json.dumps({"status": "running"}))
        lock.finish(error)
        meta = json.loads((run_dir / runs.META_FILE).read_text())
        assert meta["status"] == status and meta["finished_at"]
        expected = "RuntimeError: disk full" if isinstance(error, RuntimeError) else None
        assert meta.get("error") == expected


def test_strategy_and_precision_options_list_the_schema_values():
    from dlcli.train.config import TrainConfig

    fields = TrainConfig.model_fields
    assert typing.get_args(Strategy) == typing.get_args(fields["strategy"].annotation)
    assert typing.get_args(Precision) == typing.get_args(fields["precision"].annotation)


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {type: image_folder, path: .}\nmodel: {type: small_cnn}\nz: 1\n")
    piped = run_cli("validate", bad)
    assert piped.code == 2 and "error:" in piped.stderr and "\x1b[" not in piped.stderr

    def on_a_terminal(**env: str) -> bytes:
        parent, child = pty.openpty()
        full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
        full_env.update(PYTHONPATH=str(REPO), TERM="xterm", **env)
        proc = subprocess.Popen(
            [sys.executable, "-m", "dlcli", "validate", str(bad)],
            stdin=child,
            stdout=child,
            stderr=child,
            env=full_env,
        )
        os.close(child)
        seen = b""
        while proc.poll() is None or select.select([parent], [], [], 0.2)[0]:
            try:
                seen += os.read(parent, 65536)
            except OSError:
                break
        os.close(parent)
        assert proc.wait(timeout=30) == 2
        return seen

    assert b"\x1b[" in on_a_terminal()
    assert b"\x1b[" not in on_a_terminal(NO_COLOR="1")


def test_an_interrupt_that_tensorflow_rewrapped_still_counts_as_one():
    """Ctrl-C or SIGTERM while TensorFlow traces a graph comes back from its C++ layer as a
    RuntimeError; the run must still end `interrupted` (exit 130), not `failed`."""
    from dlcli.errors import as_interrupt

    wrapped = RuntimeError(
        "in user code:\n    RuntimeError: pybind11::error_already_set: MISMATCH of original and "
        "normalized active exception types: ORIGINAL InvalidArgumentError REPLACED BY "
        "KeyboardInterrupt: <EMPTY MESSAGE>"
    )
    interrupt = as_interrupt(wrapped)
    assert isinstance(interrupt, KeyboardInterrupt) and interrupt.__cause__ is wrapped
    plain = RuntimeError("out of memory")
    assert as_interrupt(plain) is plain
    ctrl_c = KeyboardInterrupt()
    assert as_interrupt(ctrl_c) is ctrl_c
