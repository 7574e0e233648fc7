"""Commands that must stay instant: they never import TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlcli.cli.config_cmds import templates
from tests.conftest import REPO, assert_no_traceback, run_cli, run_light


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["validate", str(REPO / "pipelines" / "quickstart.yaml")],
        ["list"],
        ["schema"],
    ],
    ids=["help", "train-help", "validate", "list", "schema"],
)
def test_light_commands_do_not_import_tensorflow(args: list[str]):
    proc = run_light(args)
    assert proc.returncode == 0, proc.stderr


def test_broken_pipeline_exits_2_with_line_and_fix(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\ndata: {type: image_folder, path: .}\nmodel: {type: small_cnn}\n"
        "train:\n  epohcs: 3\n"
    )
    for command in ("validate", "train"):
        result = run_cli(command, bad, cwd=tmp_path)
        assert result.code == 2, result.stderr
        assert_no_traceback(result)
        assert f"{bad}:5:3" in result.stderr
        assert "did you mean `epochs`" in result.stderr
        assert len(result.stderr.splitlines()) < 25  # one screen
    assert not (tmp_path / "runs").exists()


def test_usage_errors_exit_2():
    assert run_cli("train").code == 2
    assert run_cli("no-such-command").code == 2
    result = run_cli("train", "/no/such/pipeline.yaml")
    assert result.code == 2 and "Pipeline file not found" in result.stderr
    assert_no_traceback(result)


def test_init_writes_a_valid_commented_pipeline(tmp_path: Path):
    out = tmp_path / "p.yaml"
    assert run_cli("init", "--output", out).code == 0
    assert "#" in out.read_text()
    assert run_cli("validate", out).code == 0
    again = run_cli("init", "--output", out)
    assert again.code == 2 and "already exists" in again.stderr
    unknown = run_cli("init", "image_clasification", "--output", tmp_path / "q.yaml")
    assert unknown.code == 2 and "did you mean `image_classification`" in unknown.stderr


def test_validate_print_shows_defaults():
    result = run_cli(
        "validate", REPO / "pipelines" / "quickstart.yaml", "--print", "--set", "train.epochs=2"
    )
    assert result.code == 0
    assert "epochs: 2" in result.stdout and "steps_per_execution" in result.stdout


def test_list_and_schema():
    listing = run_cli("list", "models")
    assert listing.code == 0 and "small_cnn" in listing.stdout
    assert run_cli("list", "modles").code == 2
    schema = json.loads(run_cli("schema").stdout)
    assert "data" in schema["properties"] and "train" in schema["properties"]


def test_recursive_yaml_alias_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "loop.yaml"
    bad.write_text("name: x\ndata: &d {type: image_folder, path: ., again: *d}\n")
    result = run_cli("validate", bad)
    assert result.code == 2, result.stderr
    assert_no_traceback(result)
    assert f"{bad}:2:" in result.stderr
    assert "Recursive anchors/aliases are not supported" in result.stderr
    assert len(result.stderr.splitlines()) < 25  # one screen


def test_error_messages_show_bracketed_values_as_written(tmp_path: Path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "name: x\ndata: {type: audio_manifest, path: m.csv, augment: {speed: [1.2, 0.9]}}\n"
        "model: {type: crnn}\n"
    )
    result = run_cli("validate", pipeline)
    assert result.code == 2, result.stderr
    assert "speed is [min, max] within [0.5, 2], got [1.2, 0.9]" in " ".join(result.stderr.split())


@pytest.mark.parametrize("template", sorted(templates()))
def test_every_template_validates_as_written(template: str, tmp_path: Path):
    out = tmp_path / f"{template}.yaml"
    assert run_cli("init", template, "--output", out).code == 0
    result = run_cli("validate", out)
    assert result.code == 0, result.stderr
