"""`--set` values: typed like YAML, and paths relative to the shell, not to the pipeline file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dlcli.config.loader import load_pipeline
from dlcli.config.overrides import parse_override
from tests.conftest import assert_no_traceback, run_cli, write_pipeline


@pytest.fixture
def shell_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shell directory that is not the pipeline's folder, as most users' is."""
    cwd = (tmp_path / "shell").resolve()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    return write_pipeline(tmp_path / "pipelines" / "p.yaml", Path("../images"))


def value_of(text: str) -> object:
    return parse_override(text)[1]


@pytest.mark.parametrize(
    "key",
    ["data.path", "data.data_dir", "export.dir", "task.labels_file", "model.filepath"],
)
def test_relative_path_keys_resolve_against_the_shell_even_if_missing(shell_dir: Path, key: str):
    assert value_of(f"{key}=not/there/yet") == str(shell_dir / "not" / "there" / "yet")
    assert value_of(f"{key}=../up") == str(shell_dir.parent / "up")


def test_model_files_resolve_but_model_names_do_not(shell_dir: Path):
    assert value_of("model.backbone=nets/base.keras") == str(shell_dir / "nets" / "base.keras")
    assert value_of("model.weights=w.H5") == str(shell_dir / "w.H5")
    assert value_of("model.weights=old.hdf5") == str(shell_dir / "old.hdf5")
    assert value_of("model.backbone=MobileNetV2") == "MobileNetV2"
    assert value_of("model.weights=imagenet") == "imagenet"


@pytest.mark.parametrize(
    "value",
    ["gs://bucket/images", "s3://bucket/x", "https://host/data", "http://host/data", "/abs/data"],
)
def test_urls_and_absolute_paths_are_left_alone(shell_dir: Path, value: str):
    assert value_of(f"data.path={value}") == value


def test_home_paths_expand(shell_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", "/home/someone")
    assert value_of("data.path=~/images") == "/home/someone/images"


def test_other_keys_and_values_are_untouched(shell_dir: Path):
    assert value_of("name=my_run") == "my_run"
    assert value_of("train.epochs=3") == 3
    assert value_of("data.path=null") is None


def test_paths_inside_a_mapping_value_resolve_too(shell_dir: Path):
    value = value_of("data={type: image_folder, path: imgs}")
    assert value == {"type": "image_folder", "path": str(shell_dir / "imgs")}


def test_pipeline_paths_stay_relative_to_the_file_and_set_paths_to_the_shell(
    shell_dir: Path, pipeline: Path
):
    assert load_pipeline(pipeline).config.data.path == pipeline.parent.parent / "images"
    loaded = load_pipeline(pipeline, ["data.path=missing_dir"])
    assert loaded.config.data.path == shell_dir / "missing_dir"


def test_validate_prints_the_set_path_under_the_shell_dir(tmp_path: Path, pipeline: Path):
    shell = (tmp_path / "elsewhere").resolve()
    shell.mkdir()
    result = run_cli(
        "validate",
        pipeline,
        "--set",
        "data.path=missing_dir",
        "--print",
        cwd=shell,
        env={"COLUMNS": "1000"},  # wide enough that Rich keeps the long tmp path on one line
    )
    assert result.code == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["data"]["path"] == str(shell / "missing_dir")


@pytest.mark.e2e
def test_missing_set_path_is_reported_where_the_shell_put_it(tmp_path: Path, pipeline: Path):
    shell = (tmp_path / "elsewhere").resolve()
    shell.mkdir()
    result = run_cli("train", pipeline, "--set", "data.path=missing_dir", cwd=shell)
    assert result.code == 2, result.stderr
    assert f"not found: {shell / 'missing_dir'}" in result.stderr
    assert str(pipeline.parent / "missing_dir") not in result.stderr
    assert_no_traceback(result)
