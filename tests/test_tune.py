"""The parts of `dlcli tune` that need no TensorFlow: trial values, trial directories, the
objective read back from a run, the table's headers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlcli.cli.tune_cmds import short_names
from dlcli.config.tune import TuneConfig
from dlcli.errors import ConfigError
from dlcli.tune import prepare_trial_dir, read_objective, trial_dir, trial_values

SPACE = {
    "train.optimizer.learning_rate": {"min": 1e-4, "max": 1e-2, "log": True},
    "model.dense": {"values": [[16], [32]]},
}


def test_trial_values_decode_choices_and_take_hyperband_epochs():
    tune = TuneConfig(algorithm="hyperband", space=SPACE)
    values = {"train.optimizer.learning_rate": 0.001, "model.dense": "[32]", "tuner/epochs": 3}
    assert trial_values(tune, values) == {
        "train.optimizer.learning_rate": 0.001,
        "model.dense": [32],
        "train.epochs": 3,
    }


def _checkpointed(run: Path) -> Path:
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    return run


def test_trial_directories(tmp_path: Path):
    assert trial_dir(tmp_path, "00") == tmp_path / "1"
    fresh = tmp_path / "1"
    assert prepare_trial_dir(fresh, None) is False
    half = tmp_path / "2"  # killed before its first checkpoint: starts again
    (half / "tensorboard").mkdir(parents=True)
    assert prepare_trial_dir(half, None) is False and not half.exists()
    killed = _checkpointed(tmp_path / "3")  # killed after one: resumes
    assert prepare_trial_dir(killed, None) is True
    past = _checkpointed(tmp_path / "4")  # Hyperband takes trial 4 further as trial 5
    (past / "history.csv").write_text("epoch,val_loss\n1,0.5\n")
    assert prepare_trial_dir(tmp_path / "5", past) is True
    assert (tmp_path / "5" / "history.csv").read_text() == (past / "history.csv").read_text()
    assert not list(tmp_path.glob(".*partial"))


def test_objective_is_read_at_the_best_epoch(tmp_path: Path):
    (tmp_path / "history.csv").write_text(
        "epoch,loss,val_loss,val_accuracy\n1,2.0,1.5,0.4\n2,1.0,0.9,0.7\n3,0.8,1.1,0.6\n"
    )
    assert read_objective(tmp_path, "val_accuracy", "max") == (0.7, 2)
    assert read_objective(tmp_path, "val_loss", "min") == (0.9, 2)
    (tmp_path / "metrics.json").write_text(
        json.dumps({"train": {"loss": 0.8}, "validation": {}, "best_epoch": 3})
    )
    with pytest.raises(ConfigError, match="did not report the objective `val_auc`"):
        read_objective(tmp_path, "val_auc", "max")


def test_table_headers_are_the_shortest_unique_suffixes():
    keys = ["train.optimizer.learning_rate", "train.fine_tune.learning_rate", "model.dropout"]
    assert short_names(keys) == ["optimizer.learning_rate", "fine_tune.learning_rate", "dropout"]
