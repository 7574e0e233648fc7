from __future__ import annotations

import pytest

from dlcli.errors import ConfigError
from dlcli.train.resume import changed_keys, check_resume_changes

BEFORE = {
    "name": "x",
    "data": {"path": "/d", "image_size": [8, 8]},
    "train": {"epochs": 5, "batch_size": 16, "optimizer": {"type": "adam"}, "early_stopping": None},
}


def with_changes(**changes: object) -> dict:
    import copy

    after = copy.deepcopy(BEFORE)
    for dotted, value in changes.items():
        node = after
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return after


def test_no_change():
    assert check_resume_changes(BEFORE, BEFORE) == []


def test_safe_changes_are_allowed():
    after = with_changes(train__epochs=30, train__early_stopping={"patience": 3})
    assert check_resume_changes(BEFORE, after) == [
        "train.early_stopping.patience",
        "train.epochs",
    ]


def test_unsafe_changes_are_refused_and_named():
    after = with_changes(train__batch_size=32, data__image_size=[16, 16], train__epochs=9)
    with pytest.raises(ConfigError) as info:
        check_resume_changes(BEFORE, after)
    message = info.value.message
    assert "`train.batch_size`: 16 -> 32" in message
    assert "`data.image_size`" in message
    assert "train.epochs" not in message
    assert info.value.exit_code == 2


def test_changed_keys_sees_added_and_removed_keys():
    after = with_changes(train__optimizer={"type": "adam", "clipnorm": 1.0})
    assert changed_keys(BEFORE, after) == ["train.optimizer.clipnorm"]
