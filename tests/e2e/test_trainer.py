"""The trainer through the real CLI: strategies, precision, determinism, kill and resume."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import (
    CPU_ONLY,
    DIGITS,
    REPO,
    assert_no_traceback,
    run_cli,
    run_on_two_logical_cpus,
    run_workers,
    write_pipeline,
)

pytestmark = pytest.mark.e2e


def history(run: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader((run / "history.csv").open()))
    for row in rows:
        row.pop("seconds")
    return rows


def latest_checkpoint(run: Path) -> int:
    """The step of the checkpoint a resume would use (TF updates this file atomically)."""
    state = run / "checkpoints" / "checkpoint"
    found = (
        re.search(r'model_checkpoint_path: "ckpt-(\d+)"', state.read_text())
        if (state.is_file())
        else None
    )
    return int(found.group(1)) if found else 0


@pytest.fixture(scope="module")
def resumable(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A deterministic run long enough to be killed mid-epoch, and its uninterrupted result.
    Bit-identical runs are promised on the CPU: these runs never see a GPU."""
    work = tmp_path_factory.mktemp("resume")
    pipeline = write_pipeline(
        work / "p.yaml",
        DIGITS,
        data=(
            f"data:\n  type: image_folder\n  path: {DIGITS}\n  image_size: [8, 8]\n  channels: 1\n"
        ),
        train=(
            "train:\n  epochs: 4\n  batch_size: 8\n  deterministic: true\n"
            "  optimizer: {type: adam, learning_rate: 0.003}\n"
            "  lr_schedule: {type: cosine}\n  checkpoint: {every_n_steps: 10, keep: 2}\n"
        ),
    )
    reference = run_cli(
        "train", pipeline, "--json", "--output", work / "reference", cwd=work, env=CPU_ONLY
    )
    assert reference.code == 0, reference.stderr
    return {"work": work, "pipeline": pipeline, "reference": work / "reference"}


def test_deterministic_runs_are_identical(resumable: dict):
    again = run_cli(
        "train",
        resumable["pipeline"],
        "--output",
        resumable["work"] / "again",
        cwd=resumable["work"],
        env=CPU_ONLY,
    )
    assert again.code == 0, again.stderr
    assert history(resumable["work"] / "again") == history(resumable["reference"])


def test_sigkill_mid_epoch_then_resume_finishes_the_same_run(resumable: dict):
    work, run = resumable["work"], resumable["work"] / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO), **CPU_ONLY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlcli", "train", str(resumable["pipeline"]), "--output", str(run)],
        cwd=work,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # plain per-epoch lines: stderr is not a terminal
        if line.startswith("epoch 2/4"):
            break
    # Kill right after the first step checkpoint of epoch 3: mid-epoch, whatever the speed.
    end_of_epoch_2 = latest_checkpoint(run)
    deadline = time.monotonic() + 120
    while latest_checkpoint(run) == end_of_epoch_2 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "model.keras").exists()
    assert len(history(run)) == 2

    resumed = run_cli("train", "--resume", run, "--json", cwd=work, env=CPU_ONLY)
    assert resumed.code == 0, resumed.stderr
    resumed_at = re.search(r"resuming after epoch 2, step (\d+)", resumed.stderr)
    assert resumed_at and int(resumed_at.group(1)) > 0, resumed.stderr  # mid-epoch
    assert resumed.json()["epochs_run"] == 4
    assert [row["epoch"] for row in history(run)] == ["1", "2", "3", "4"]
    # Same weights, optimizer state, RNG and data position: the same numbers as never stopping.
    assert history(run) == history(resumable["reference"])
    assert (run / "model.keras").is_file()
    assert json.loads((run / "run.json").read_text())["resumes"][0]["changed"] == []
    assert not (work / "runs").exists()  # no new run directory was made


def test_resume_extends_a_finished_run_and_refuses_breaking_changes(resumable: dict):
    import shutil

    run = resumable["work"] / "extended"
    shutil.copytree(resumable["reference"], run)
    done = run_cli("train", "--resume", run)
    assert done.code == 0 and "already complete (4/4 epochs)" in done.stderr

    refused = run_cli(
        "train", "--resume", run, "--set", "train.batch_size=16", "--set", "model.filters=[4]"
    )
    assert refused.code == 2
    assert "`train.batch_size`: 8 -> 16" in refused.stderr and "`model.filters`" in refused.stderr
    assert_no_traceback(refused)

    extended = run_cli("train", "--resume", run, "--set", "train.epochs=6", "--json")
    assert extended.code == 0, extended.stderr
    assert [row["epoch"] for row in history(run)] == ["1", "2", "3", "4", "5", "6"]
    assert history(run)[:4] == history(resumable["reference"])
    assert "epochs: 6" in (run / "pipeline.yaml").read_text()
    assert json.loads((run / "run.json").read_text())["resumes"][-1]["changed"] == ["train.epochs"]


def test_resume_of_something_else_is_a_clear_error(tmp_path: Path):
    result = run_cli("train", "--resume", tmp_path)
    assert result.code == 2 and "Cannot resume" in result.stderr
    assert_no_traceback(result)


def test_mirrored_strategy_over_two_logical_cpus(tmp_path: Path, small_digits: Path):
    pipeline = write_pipeline(tmp_path / "p.yaml", small_digits)
    sets = ["train.strategy=mirrored", "train.epochs=8", "train.steps_per_execution=3"]
    result = run_on_two_logical_cpus(
        "train", pipeline, "--json", *(x for s in sets for x in ("--set", s)), cwd=tmp_path
    )
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["strategy"] == "mirrored" and summary["replicas"] == 2
    rows = history(Path(summary["run_dir"]))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert summary["validation"]["accuracy"] > 0.3  # 10 classes: chance is 0.1


@pytest.mark.slow
def test_two_workers_run_in_sync_with_one_set_of_artifacts(tmp_path: Path, small_digits: Path):
    """`dlcli run` on every worker: all train together; only the chief evaluates and exports."""
    pipeline = write_pipeline(tmp_path / "p.yaml", small_digits)
    results = run_workers("run", pipeline, "--json", "--set", "train.epochs=3", cwd=tmp_path)
    for result in results:
        assert result.code == 0, result.stderr
    chief, worker = (result.json() for result in results)
    assert chief["train"]["strategy"] == worker["train"]["strategy"] == "multi_worker"
    assert chief["train"]["replicas"] == 2
    # In sync: the same weights, the same metrics.
    assert chief["train"]["train"] == worker["train"]["train"]
    assert chief["train"]["validation"] == worker["train"]["validation"]
    assert [p.name for p in (tmp_path / "runs" / "tiny").iterdir()] == ["1"]
    assert (tmp_path / "runs/tiny/1/model.keras").is_file()
    assert chief["evaluation"]["split"] == "test" and chief["export"]
    assert worker["evaluation"] is None and worker["export"] == {}
    assert any("worker process" in note for note in worker["notes"])
    assert not Path(worker["run_dir"]).exists()  # the worker's scratch directory is gone


@pytest.mark.parametrize(
    "options",
    [
        ["train.precision=mixed_float16"],
        ["train.precision=mixed_bfloat16"],
        ["train.precision=auto", "train.jit_compile=true", "train.steps_per_execution=4"],
    ],
    ids=["float16", "bfloat16", "xla"],
)
def test_mixed_precision_and_xla_train(tmp_path: Path, small_digits: Path, options: list[str]):
    pipeline = write_pipeline(tmp_path / "p.yaml", small_digits)
    sets = [x for option in options for x in ("--set", option)]
    result = run_cli("train", pipeline, "--json", "--set", "train.epochs=3", *sets, cwd=tmp_path)
    assert result.code == 0, result.stderr
    summary = result.json()
    requested = options[0].removeprefix("train.precision=")
    metrics = json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())
    assert metrics["precision_requested"] == requested
    if requested == "auto":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        assert metrics["precision"] in (("mixed_float16", "float32") if gpus else ("float32",))
    else:
        assert metrics["precision"] == requested
    assert metrics["jit_compile"] is ("train.jit_compile=true" in options)
    rows = history(Path(summary["run_dir"]))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


def test_info_shows_the_strategy_auto_would_pick():
    result = run_cli("info", "--json")
    assert result.code == 0, result.stderr
    facts = result.json()
    gpus = sum(d.startswith("GPU") for d in facts["devices"])
    assert facts["strategy"] == ("mirrored" if gpus > 1 else "gpu" if gpus else "cpu")
    assert len(facts["gpus"]) == gpus and all(g["name"] for g in facts["gpus"])
    if gpus:
        assert facts["built_with_cuda"] is True
        capability = facts["gpus"][0]["compute_capability"]
        fast = bool(capability) and int(capability.split(".")[0]) >= 7
        assert facts["precision"] == ("mixed_float16" if fast else "float32")
        assert capability in facts["precision_reason"]
    else:
        assert (facts["precision"], facts["precision_reason"]) == ("float32", "no GPU")
    assert facts["xla_jit"] is True, facts["xla_jit_reason"]
    assert any(d.startswith("CPU") for d in facts["devices"])
    cluster = {
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 1},
    }
    shown = run_cli("info", env={"TF_CONFIG": json.dumps(cluster)})  # for humans: value (why)
    assert shown.code == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "strategy multi_worker (TF_CONFIG names a cluster" in text
    assert f"precision {facts['precision']} ({facts['precision_reason']})" in text
    assert "XLA JIT usable (" in text
