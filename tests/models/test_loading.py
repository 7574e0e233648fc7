"""`load_keras_model`, the one way dlcli loads a model file, and the commands that use it:
damaged files and Lambda layers are refused with a message, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dlcli.errors import DataError
from dlcli.models.loading import TRUST_ENV, load_keras_model
from tests.conftest import DIGITS, REPO, assert_no_traceback, run_cli, write_pipeline

DIGIT = sorted((DIGITS / "0").glob("*.png"))[0]  # an 8x8 grayscale PNG


def digit_classifier(*, with_lambda: bool = False):  # type: ignore[no-untyped-def]
    """What `dlcli predict` takes as a bare model: 8x8x1 pixels in, softmax over 10 out."""
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs) if with_lambda else inputs
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real saved model, and the ways a model file arrives damaged."""
    folder = tmp_path_factory.mktemp("models")
    good = folder / "good.keras"
    digit_classifier().save(good)
    digit_classifier(with_lambda=True).save(folder / "lambda.keras")
    data = good.read_bytes()
    (folder / "truncated.keras").write_bytes(data[: len(data) // 2])
    (folder / "text.keras").write_text("a text file with the wrong name\n")
    (folder / "text.h5").write_text("a text file with the wrong name\n")
    with zipfile.ZipFile(good) as source:
        members = {name: source.read(name) for name in source.namelist()}
    for name, member, damaged in [
        ("bad_config", "config.json", b"{not json"),
        ("cut_weights", "model.weights.h5", members["model.weights.h5"][:1000]),
    ]:
        with zipfile.ZipFile(folder / f"{name}.keras", "w") as target:
            for key, value in members.items():
                target.writestr(key, damaged if key == member else value)
    return {path.stem if path.suffix == ".keras" else path.name: path for path in folder.iterdir()}


def test_a_good_model_loads_uncompiled(models: dict[str, Path]):
    model = load_keras_model(models["good"])
    assert model.input_shape == (None, 8, 8, 1) and model.output_shape == (None, 10)
    assert not model.compiled


@pytest.mark.parametrize("name", ["truncated", "text", "text.h5", "bad_config", "cut_weights"])
def test_damaged_files_are_a_data_error(models: dict[str, Path], name: str):
    with pytest.raises(DataError) as info:
        load_keras_model(models[name])
    assert info.value.exit_code == 2
    assert info.value.message.startswith(f"Cannot load model {models[name]}")
    assert "complete .keras" in (info.value.hint or "")


def test_missing_file_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="Model file not found"):
        load_keras_model(tmp_path / "nope.keras")


def test_lambda_layers_load_only_when_trusted(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(DataError) as info:
        load_keras_model(models["lambda"])
    assert "Lambda layer" in info.value.message and "Python code" in info.value.message
    assert "--trust-model" in (info.value.hint or "")
    monkeypatch.setenv(TRUST_ENV, "1")
    x = np.full((1, 8, 8, 1), 255.0, "float32")
    assert load_keras_model(models["lambda"]).predict(x, verbose=0).shape == (1, 10)


@pytest.fixture
def bare_model(tmp_path: Path, models: dict[str, Path], request: pytest.FixtureRequest) -> Path:
    """A copy of one of `models`, alone in its folder as a bare model file is."""
    model = tmp_path / "model.keras"
    model.write_bytes(models[request.param].read_bytes())
    return model


@pytest.mark.e2e
@pytest.mark.parametrize("bare_model", ["truncated", "text"], indirect=True)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_commands_refuse_a_damaged_model(
    bare_model: Path, tmp_path: Path, small_digits: Path, command: str
):
    if command == "predict":
        result = run_cli("predict", bare_model, DIGIT, cwd=tmp_path)
    else:
        pipeline = write_pipeline(tmp_path / "p.yaml", small_digits)
        result = run_cli("evaluate", bare_model, "--pipeline", pipeline, cwd=tmp_path)
    assert result.code == 2, result.stderr
    assert f"Cannot load model {bare_model}" in result.stderr
    assert_no_traceback(result)
    assert len(result.stderr.splitlines()) < 10
    assert not (tmp_path / "evaluation").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("bare_model", ["lambda"], indirect=True)
def test_a_lambda_model_is_refused_by_default(bare_model: Path, tmp_path: Path):
    result = run_cli("predict", bare_model, DIGIT, cwd=tmp_path, env={TRUST_ENV: ""})
    assert result.code == 2, result.stderr
    assert_no_traceback(result)
    assert "Lambda layer" in result.stderr and "runs Python code" in result.stderr
    assert "--trust-model" in result.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("bare_model", ["lambda"], indirect=True)
def test_trust_model_loads_a_lambda_model(
    bare_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    result = run_cli(
        "--trust-model", "predict", bare_model, DIGIT, "--json", cwd=tmp_path, env={TRUST_ENV: ""}
    )
    assert result.code == 0, result.stderr
    (row,) = result.predictions()
    import tensorflow as tf

    pixels = tf.io.decode_png(DIGIT.read_bytes(), channels=1).numpy().astype("float32")
    monkeypatch.setenv(TRUST_ENV, "1")
    expected = load_keras_model(bare_model).predict(pixels[None], verbose=0)[0]
    assert row["path"] == str(DIGIT) and row["label"] == str(int(expected.argmax()))
    assert row["probability"] == pytest.approx(float(expected.max()), rel=1e-5)


PLAIN_KERAS = """
import json, sys
import numpy as np
import keras
import dlcli.layers  # noqa: F401  (registers dlcli's layers; nothing else of dlcli)
for path in sys.argv[1:]:
    model = keras.saving.load_model(path)
    np.save(path + ".out.npy", model.predict(np.load(path + ".in.npy"), verbose=0))
print(json.dumps(sorted(m for m in sys.modules if m.startswith("dlcli"))))
"""


def test_dlcli_models_load_in_plain_keras(tmp_path: Path):
    """A model saved by dlcli needs `import dlcli.layers` and Keras, no custom_objects."""
    import keras

    from dlcli.data.base import DataSpec
    from dlcli.layers import ImagePreprocess
    from dlcli.models import create_model
    from dlcli.models.heads import ClassesHead
    from dlcli.models.transfer import TransferConfig
    from dlcli.runs import save_model_atomic

    transfer = create_model(
        TransferConfig(backbone="MobileNet", weights=None, backbone_args={"alpha": 0.25}),
        DataSpec((32, 32, 1), class_names=["a", "b", "c"]),
        head=ClassesHead(3),
    )
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(ImagePreprocess("symmetric", name="preprocess")(inputs))
    preprocessed = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    rng = np.random.default_rng(0)
    paths = []
    for name, model in [("transfer", transfer), ("preprocess", preprocessed)]:
        path = tmp_path / f"{name}.keras"
        save_model_atomic(model, path)
        x = rng.uniform(0, 255, (3, *model.input_shape[1:])).astype("float32")
        np.save(f"{path}.in.npy", x)
        np.save(f"{path}.expected.npy", model.predict(x, verbose=0))
        paths.append(str(path))
    assert any(isinstance(layer, ImagePreprocess) for layer in transfer.layers)

    proc = subprocess.run(
        [sys.executable, "-c", PLAIN_KERAS, *paths],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    # Only dlcli's layers (and the package itself) are needed to load and predict.
    imported = json.loads(proc.stdout.splitlines()[-1])
    assert imported[:2] == ["dlcli", "dlcli.layers"]
    assert all(m.startswith("dlcli.layers.") for m in imported[2:]), imported
    for path in paths:
        np.testing.assert_allclose(
            np.load(f"{path}.out.npy"), np.load(f"{path}.expected.npy"), rtol=1e-6, atol=1e-7
        )
