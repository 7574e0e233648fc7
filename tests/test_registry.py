from __future__ import annotations

import pytest

from dlcli.errors import ConfigError
from dlcli.registry import DATA_SOURCES, MODELS, TASKS


def test_registries_are_filled_by_decorators():
    assert "small_cnn" in MODELS.names()
    assert "image_folder" in DATA_SOURCES.names()
    assert "classification" in TASKS.names()


def test_pattern_filters_names():
    assert MODELS.names("small*") == ["small_cnn"]
    assert MODELS.names("nothing*") == []


def test_unknown_name_suggests():
    with pytest.raises(ConfigError) as info:
        MODELS.get("smal_cnn")
    assert info.value.hint == "did you mean `small_cnn`?"


def test_every_entry_has_a_config_with_its_tag_and_a_summary():
    for registry in (MODELS, DATA_SOURCES, TASKS):
        for entry in registry.entries():
            assert entry.summary, entry.name
            assert entry.config.model_fields["type"].default == entry.name
