from __future__ import annotations

from pathlib import Path

import pytest

from dlcli.config.loader import load_pipeline, load_pipeline_text
from dlcli.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
name: demo
data:
  type: image_folder
  path: images
  image_size: [32, 32]
model:
  type: small_cnn
train:
  epochs: 3
"""


def load(text: str, overrides: list[str] | None = None, source: Path | None = None):
    return load_pipeline_text(text, source=source or Path("/p/pipe.yaml"), overrides=overrides)


def error_of(text: str, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(text, overrides)
    assert info.value.exit_code == 2
    return info.value.message + "\n" + (info.value.hint or "")


def test_defaults_are_filled_in():
    cfg = load(GOOD).config
    assert cfg.seed == 42
    assert cfg.train.epochs == 3
    assert cfg.train.optimizer.type == "adam"
    assert cfg.task.type == "classification"
    assert cfg.model.filters == [32, 64, 128]
    assert cfg.data.image_size == (32, 32)


def test_relative_data_path_is_relative_to_the_pipeline_file():
    cfg = load(GOOD, source=Path("/somewhere/pipelines/p.yaml")).config
    assert cfg.data.path == Path("/somewhere/pipelines/images")


def test_typo_names_line_key_and_fix():
    message = error_of(GOOD.replace("  epochs: 3", "  epoch: 3"))
    assert "/p/pipe.yaml:9:3" in message
    assert "unknown key `train.epoch`" in message
    assert "did you mean `epochs`" in message
    assert "   9 |   epoch: 3" in message


def test_typo_inside_a_component_section():
    message = error_of(GOOD.replace("  type: small_cnn", "  type: small_cnn\n  filtres: [8]"))
    assert "unknown key `model.filtres`" in message
    assert "did you mean `filters`" in message
    assert ":8:3" in message


def test_unknown_component_type_suggests_registered_name():
    message = error_of(GOOD.replace("type: small_cnn", "type: small_cn"))
    assert "`model.type` is `small_cn`" in message
    assert "did you mean `small_cnn`" in message


def test_bad_choice_suggests_nearest():
    message = error_of(GOOD + "  optimizer: {type: adamm}\n")
    assert "`train.optimizer.type`" in message and "did you mean `adam`" in message


def test_wrong_type_says_what_was_received():
    message = error_of(GOOD.replace("epochs: 3", "epochs: three"))
    assert "`train.epochs`" in message and "'three'" in message


def test_missing_required_section():
    message = error_of("name: x\nmodel: {type: small_cnn}\n")
    assert "missing required key `data`" in message


def test_invalid_yaml_points_at_line():
    message = error_of("name: x\ndata: [unclosed\n")
    assert "invalid YAML" in message and "pipe.yaml:" in message


def test_split_fractions_must_leave_training_data():
    message = error_of(GOOD.replace("image_size: [32, 32]", "split: {validation: 0.5, test: 0.5}"))
    assert "data.split" in message


def test_overrides_are_typed_like_the_schema():
    cfg = load(
        GOOD,
        [
            "train.epochs=7",
            "train.optimizer.learning_rate=1e-2",
            "model.filters=[4, 8]",
            "train.deterministic=true",
        ],
    ).config
    assert cfg.train.epochs == 7
    assert cfg.train.optimizer.learning_rate == pytest.approx(0.01)
    assert cfg.model.filters == [4, 8]
    assert cfg.train.deterministic is True


def test_override_errors_name_the_override():
    message = error_of(GOOD, ["train.epoch=3"])
    assert "--set train.epoch=3" in message and "did you mean `epochs`" in message
    message = error_of(GOOD, ["train.epochs=abc"])
    assert "--set train.epochs=abc" in message


def test_malformed_override():
    message = error_of(GOOD, ["train.epochs"])
    assert "Expected KEY.PATH=VALUE" in message


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline("/nonexistent/pipeline.yaml")


def test_bad_run_name():
    assert "`name`" in error_of(GOOD.replace("name: demo", "name: 'a b/c'"))


@pytest.mark.parametrize("path", sorted((REPO / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_pipeline_validates(path: Path):
    assert load_pipeline(path).config.name


def test_every_template_validates():
    from dlcli.cli.config_cmds import templates

    assert templates()
    for name, text in templates().items():
        assert load(text).config.name, name


@pytest.mark.parametrize(
    ("yaml_text", "alias_at"),
    [
        ("a: &x [*x]\n", "pipe.yaml:2:8"),
        ("b: &y {c: *y}\n", "pipe.yaml:2:11"),
        ("b: &y\n  c:\n    d: [1, *y]\n", "pipe.yaml:4:12"),
    ],
    ids=["sequence", "mapping", "nested"],
)
def test_recursive_alias_is_refused_at_its_line(yaml_text: str, alias_at: str):
    message = error_of("name: x\n" + yaml_text)
    assert f"/p/pipe.yaml:{alias_at.split(':', 1)[1]}" in message
    assert "Recursive anchors/aliases are not supported" in message
    assert "| " + yaml_text.splitlines()[-1] in message  # the line, quoted


def test_aliases_that_do_not_contain_themselves_still_work():
    text = GOOD.replace("image_size: [32, 32]", "image_size: &size [32, 32]")
    cfg = load(text + "  optimizer: &opt {type: sgd}\n", ["model.filters=[4, 8]"]).config
    assert cfg.data.image_size == (32, 32) and cfg.train.optimizer.type == "sgd"
    merged = GOOD.replace("train:\n  epochs: 3", "train:\n  <<: &base {epochs: 5}\n  batch_size: 8")
    assert load(merged).config.train.epochs == 5


def test_recursive_alias_in_an_override_is_refused():
    message = error_of(GOOD, ["model.filters=&x [*x]"])
    assert "model.filters=&x [*x]" in message and "Recursive" in message
