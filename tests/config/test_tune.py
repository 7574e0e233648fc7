"""The `tune:` section, checked without TensorFlow: its shape, its objective, and every
candidate value put into the pipeline through the loader that `--set` uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dlcli.config.loader import load_pipeline_text
from dlcli.config.tune import SearchDimension
from dlcli.errors import ConfigError
from dlcli.runs import dump_pipeline

BASE = """\
name: demo
data: {type: image_folder, path: images, image_size: [16, 16]}
model: {type: small_cnn, dropout: 0.2}
"""
TUNE = """\
tune:
  objective: val_accuracy
  space:
    train.optimizer.learning_rate: {min: 1.0e-4, max: 1.0e-2, log: true}
    model.dropout: {values: [0.1, 0.3]}
"""


def load(text: str, overrides: list[str] | None = None):
    return load_pipeline_text(text, source=Path("/p/pipe.yaml"), overrides=overrides).config


def error_of(text: str, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(text, overrides)
    assert info.value.exit_code == 2
    return info.value.message + "\n" + (info.value.hint or "")


def test_a_tune_section_loads_with_defaults():
    tune = load(BASE + TUNE).tune
    assert tune.algorithm == "random" and tune.trials_wanted() == 10
    assert tune.space["model.dropout"].values == [0.1, 0.3]
    assert tune.space["train.optimizer.learning_rate"].log


def test_a_run_without_tune_dumps_no_tune_key():
    assert "tune" not in yaml.safe_load(dump_pipeline(load(BASE)))
    assert "tune" in yaml.safe_load(dump_pipeline(load(BASE + TUNE)))


def test_unknown_space_key_names_it_its_line_and_the_fix():
    message = error_of(BASE + TUNE.replace("model.dropout:", "model.dropuot:"))
    assert "/p/pipe.yaml:8:5" in message
    assert "tune.space `model.dropuot`" in message and "unknown key `model.dropuot`" in message
    assert "did you mean `dropout`" in message
    assert "--set" not in message.splitlines()[0]


def test_a_candidate_the_pipeline_refuses_is_named_with_its_value():
    message = error_of(BASE + TUNE.replace("[0.1, 0.3]", "[0.1, 1.5]"))
    assert "tune.space `model.dropout` = 1.5" in message
    assert "invalid value for `model.dropout`" in message


def test_objective_must_be_a_metric_the_task_reports():
    message = error_of(BASE + TUNE.replace("val_accuracy", "val_acc"))
    assert "/p/pipe.yaml:5:3" in message and "`tune.objective` is `val_acc`" in message
    assert "did you mean `val_accuracy`" in message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{min: 0.5, max: 0.1}", "`min` (0.5) must be below `max` (0.1)"),
        ("{min: 0, max: 0.1, log: true}", "a `log` range needs `min` > 0"),
        ("{values: []}", "at least 1 item"),
        ("{values: [0.1, 0.1]}", "repeats a value"),
        ("{min: 0.1}", "both `min` and `max`"),
        ("{values: [0.1], min: 0.1}", "not both"),
        ("{vals: [0.1]}", "did you mean `values`"),
    ],
)
def test_bad_search_dimensions(entry: str, expected: str):
    text = BASE + TUNE.replace("{values: [0.1, 0.3]}", entry)
    message = error_of(text)
    assert expected in message and "model.dropout" in message


def test_bad_tune_settings():
    assert "hyperband sets train.epochs" in error_of(
        BASE
        + TUNE.replace("  space:", "  algorithm: hyperband\n  space:")
        + "    train.epochs: {values: [1, 2]}\n"
    )
    assert "tune.algorithm" in error_of(BASE + TUNE, ["tune.algorithm=grid"])
    assert "tune.max_trials" in error_of(BASE + TUNE, ["tune.max_trials=0"])
    assert "cannot tune the search itself" in error_of(
        BASE + TUNE + "    tune.max_trials: {values: [1, 2]}\n"
    )


@pytest.mark.parametrize(
    ("values", "choices"),
    [
        ([0.1, 0.3], [0.1, 0.3]),
        ([16, 32], [16, 32]),
        (["adam", "sgd"], ["adam", "sgd"]),
        ([1, 2.5], [1.0, 2.5]),  # one type for KerasTuner's Choice
        ([[16], [16, 32]], ["[16]", "[16, 32]"]),  # lists go in as their JSON text
        ([None, 0.1], ["null", "0.1"]),
    ],
)
def test_choices_round_trip_through_keras_tuner_types(values: list, choices: list):
    dim = SearchDimension(values=values)
    assert dim.choices() == choices
    assert [dim.decode(c) for c in dim.choices()] == values


def test_whole_ranges_are_integers():
    assert SearchDimension(min=16, max=64, step=16).whole
    assert not SearchDimension(min=0.1, max=1).whole
    assert SearchDimension(min=1, max=3).candidates() == [1, 3]
