"""`${VAR}` and `${VAR:-default}` in pipeline files: substituted before validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dlcli import runs
from dlcli.config.loader import _construct, _interpolate_env, load_pipeline_text
from dlcli.errors import ConfigError
from tests.conftest import REPO, run_light

PIPELINE = """\
name: ${RUN_NAME:-nightly}
seed: ${SEED:-7}
data:
  type: image_folder
  path: ${DATA_ROOT}/digits
  image_size: [16, 16]
model:
  type: small_cnn
  dropout: ${DROPOUT:-0.25}
train:
  epochs: ${EPOCHS}
  strategy: "${STRATEGY:-cpu}"
"""


def load(text: str, source: Path = Path("/p/pipe.yaml")):
    return load_pipeline_text(text, source=source).config


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    for name in ("RUN_NAME", "SEED", "DATA_ROOT", "DROPOUT", "EPOCHS", "STRATEGY", "TAG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_ROOT", "/data")
    monkeypatch.setenv("EPOCHS", "12")
    return monkeypatch


def test_values_and_defaults_are_substituted_and_typed(env: pytest.MonkeyPatch):
    cfg = load(PIPELINE)
    assert cfg.name == "nightly"  # the default
    assert cfg.data.path == Path("/data/digits")  # part of a string
    assert cfg.train.epochs == 12 and cfg.seed == 7 and cfg.model.dropout == 0.25
    assert cfg.train.strategy == "cpu"
    env.setenv("RUN_NAME", "from_env")
    env.setenv("SEED", "")  # empty: `:-` takes the default, as in the shell
    cfg = load(PIPELINE)
    assert cfg.name == "from_env" and cfg.seed == 7


def test_a_whole_unquoted_value_is_typed_a_quoted_one_stays_a_string(env: pytest.MonkeyPatch):
    env.setenv("TAG", "3")
    text = PIPELINE.replace("name: ${RUN_NAME:-nightly}", "name: ${TAG}")
    with pytest.raises(ConfigError, match="Input should be a valid string"):
        load(text)  # name: 3 is a number, as if 3 had been written there
    assert load(text.replace("name: ${TAG}", 'name: "${TAG}"')).name == "3"


def test_an_unset_variable_names_file_line_key_and_fix(env: pytest.MonkeyPatch):
    env.delenv("EPOCHS")
    with pytest.raises(ConfigError) as info:
        load(PIPELINE)
    error = info.value
    assert error.exit_code == 2
    assert error.message.startswith("/p/pipe.yaml:11:11: `train.epochs` uses the environment")
    assert "`EPOCHS`, which is not set" in error.message
    assert "  11 |   epochs: ${EPOCHS}" in error.message
    assert error.hint is not None and "export EPOCHS=" in error.hint
    assert "${EPOCHS:-VALUE}" in error.hint


def test_a_malformed_reference_is_an_error_and_dollar_dollar_escapes(env: pytest.MonkeyPatch):
    with pytest.raises(ConfigError, match=r"invalid environment reference in `name`: `\$\{1X\}`"):
        load(PIPELINE.replace("${RUN_NAME:-nightly}", "${1X}"))
    with pytest.raises(ConfigError, match="no reference inside a default"):
        load(PIPELINE.replace("${RUN_NAME:-nightly}", "${UNSET_X:-${UNSET_Y:-3}}"))
    cfg = load(PIPELINE.replace("${DATA_ROOT}/digits", '"/d/$${HOME}"'))
    assert cfg.data.path == Path("/d/${HOME}")


def test_keys_are_not_substituted_and_values_only_once(env: pytest.MonkeyPatch):
    with pytest.raises(ConfigError, match=r"unknown key `data.\$\{DATA_ROOT\}`"):
        load(PIPELINE.replace("image_size: [16, 16]", "image_size: [16, 16]\n  ${DATA_ROOT}: 1"))
    # A value that looks like a reference is kept as it is, also where an alias repeats it.
    env.setenv("TAG", "${EPOCHS}")
    node = yaml.compose('a: &x "${TAG}/1"\nb: *x\n', Loader=yaml.SafeLoader)
    data = _construct(_interpolate_env(node, "t.yaml", ""))
    assert data == {"a": "${EPOCHS}/1", "b": "${EPOCHS}/1"}


def test_an_explicit_tag_keeps_its_type(env: pytest.MonkeyPatch):
    env.setenv("N", "010")
    node = yaml.compose("a: !!str ${N}\nb: ${N}\n")
    data = _construct(_interpolate_env(node, "t.yaml", "a: !!str ${N}\nb: ${N}\n"))
    assert data["a"] == "010" and data["b"] == 8  # YAML 1.1 reads a plain 010 as octal


def test_the_saved_pipeline_holds_the_values_and_loads_back_the_same(env: pytest.MonkeyPatch):
    env.setenv("RUN_NAME", "saved")
    env.setenv("DATA_ROOT", "/x/${NOT_A_REFERENCE}")  # kept literally, saved as $${
    cfg = load(PIPELINE)
    assert cfg.data.path == Path("/x/${NOT_A_REFERENCE}/digits")
    saved = runs.dump_pipeline(cfg)
    data = yaml.safe_load(saved)
    assert data["name"] == "saved" and data["train"]["epochs"] == 12
    assert data["data"]["path"] == "/x/$${NOT_A_REFERENCE}/digits"
    again = load(saved, source=Path("/run/pipeline.yaml"))
    assert again.model_dump() == cfg.model_dump()
    # What resume, tune and `runs compare` read: the values as used, so nothing looks changed.
    assert runs.read_saved_pipeline(saved) == cfg.model_dump(mode="json")


def test_validate_with_variables_does_not_import_tensorflow(tmp_path: Path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "DATA_ROOT": str(tmp_path)}
    proc = run_light(["validate", pipeline], env={**env, "EPOCHS": "2"})
    assert proc.returncode == 0, proc.stderr
    assert "2 epochs" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "dlcli", "validate", str(pipeline)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 2
    assert f"{pipeline}:11:11" in proc.stderr and "EPOCHS" in proc.stderr
