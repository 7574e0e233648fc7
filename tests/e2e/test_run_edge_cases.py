"""Things a new user runs into: schedules with warm-up, empty splits, monitors the run cannot
report, and interrupting a run on a terminal."""

from __future__ import annotations

import csv
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_no_traceback, run_cli, write_pipeline

pytestmark = pytest.mark.e2e


def test_reduce_on_plateau_with_warmup_lowers_the_rate(tmp_path: Path, small_digits: Path):
    # min_delta is huge, so no epoch after the first improves and the plateau fires at once.
    pipeline = write_pipeline(
        tmp_path / "p.yaml",
        small_digits,
        train=(
            "train:\n  epochs: 3\n  batch_size: 16\n"
            "  optimizer: {type: adam, learning_rate: 0.01}\n"
            "  lr_schedule: {type: reduce_on_plateau, warmup_epochs: 1, patience: 1, factor: 0.1}\n"
            "  early_stopping: {monitor: val_loss, patience: 10, min_delta: 100}\n"
        ),
    )
    result = run_cli("train", pipeline, "--json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "reduce on plateau" in result.stderr
    rates = [
        float(row["lr"]) for row in csv.DictReader((tmp_path / "runs/tiny/1/history.csv").open())
    ]
    assert rates[0] == pytest.approx(0.01, rel=1e-3)  # warm-up done after one epoch
    assert rates[2] == pytest.approx(0.001, rel=1e-3)  # reduced after epoch 2's plateau


def test_run_with_an_empty_test_split_evaluates_validation_and_exports(
    tmp_path: Path, small_digits: Path
):
    pipeline = write_pipeline(
        tmp_path / "p.yaml",
        small_digits,
        data=(
            f"data:\n  type: image_folder\n  path: {small_digits}\n  image_size: [8, 8]\n"
            "  channels: 1\n  split: {validation: 0.2, test: 0.0}\n"
        ),
    )
    result = run_cli("run", pipeline, "--json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["evaluation"]["split"] == "validation"
    assert "the `test` split is empty: evaluated on `validation`" in document["notes"]
    assert Path(document["export"]["keras"]).is_file()


def test_unknown_monitor_is_caught_before_training_with_a_suggestion(tmp_path: Path):
    pipeline = write_pipeline(
        tmp_path / "p.yaml",
        tmp_path,
        train="train:\n  epochs: 2\n  early_stopping: {monitor: val_acuracy}\n",
    )
    result = run_cli("validate", pipeline)
    assert result.code == 2
    assert "p.yaml:" in result.stderr and "val_acuracy" in result.stderr
    assert "did you mean `val_accuracy`?" in result.stderr
    assert_no_traceback(result)


def test_a_validation_monitor_without_validation_data_stops_before_training(
    tmp_path: Path, small_digits: Path
):
    pipeline = write_pipeline(
        tmp_path / "p.yaml",
        small_digits,
        data=(
            f"data:\n  type: image_folder\n  path: {small_digits}\n  image_size: [8, 8]\n"
            "  channels: 1\n  split: {validation: 0.0, test: 0.2}\n"
        ),
        train="train:\n  epochs: 2\n  early_stopping: {monitor: val_loss}\n",
    )
    result = run_cli("train", pipeline, cwd=tmp_path)
    assert result.code == 2
    assert "validation split is empty" in result.stderr and "epoch 1" not in result.stderr
    assert_no_traceback(result)
    assert not list((tmp_path / "runs" / "tiny").iterdir())  # no half-made run left behind


def test_interrupting_a_run_on_a_terminal_closes_the_progress_bar(
    tmp_path: Path, small_digits: Path
):
    """Rich hides the cursor while a bar is live; an error must never leave it hidden."""
    pipeline = write_pipeline(
        tmp_path / "p.yaml",
        small_digits,
        train="train:\n  epochs: 500\n  batch_size: 2\n",
    )
    parent, child = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlcli", "train", str(pipeline)],
        cwd=tmp_path,
        env=env,
        stdin=child,
        stdout=child,
        stderr=child,
        # Ctrl-C as on a terminal: a shell that started this suite in the background (as CI
        # scripts may) leaves SIGINT ignored, and children inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 120
    while b"epoch 2/500" not in seen and time.monotonic() < deadline:  # the bar of epoch 2
        if select.select([parent], [], [], 1)[0]:
            seen += os.read(parent, 65536)
    proc.send_signal(signal.SIGINT)
    while proc.poll() is None or select.select([parent], [], [], 0.2)[0]:
        try:
            seen += os.read(parent, 65536)
        except OSError:
            break
    proc.wait(timeout=60)
    os.close(parent)
    assert b"epoch 2/500" in seen, seen[-2000:]
    assert proc.returncode == 130
    hide, show = b"\x1b[?25l", b"\x1b[?25h"
    assert hide in seen and seen.rfind(show) > seen.rfind(hide)
