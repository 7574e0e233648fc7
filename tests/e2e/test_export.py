"""`dlcli export` in every format through the real CLI, on real photos and recordings; each export
is loaded in the runtime a user would load it with (LiteRT, onnxruntime, TensorFlow) and its
predictions are checked against the Keras model's on the run's test split."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import SHARED, assert_no_traceback, run_cli, write_pipeline

SIGNS = SHARED / "data" / "sign_language_digits" / "Dataset"
RECORDINGS = SHARED / "data" / "fsdd" / "recordings"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not SIGNS.is_dir(), reason="needs ../shared/data/sign_language_digits"),
]
ALL_FORMATS = ("keras", "saved_model", "tflite", "tflite_int8", "onnx")


def split_inputs(run: Path, split: str = "test") -> list[np.ndarray]:
    """A split of the run's own data, as the model's inputs in batches of one."""
    from dlcli import runs
    from dlcli.data import create_dataset

    cfg = runs.open_run(run).config
    data = create_dataset(cfg.data, seed=cfg.seed)
    return [np.asarray(x, np.float32)[None] for x, _ in data.split(split).as_numpy_iterator()]


def keras_outputs(model_file: Path, inputs: list[np.ndarray]) -> np.ndarray:
    from dlcli.models.loading import load_keras_model

    model = load_keras_model(model_file)
    return np.concatenate([model(x, training=False).numpy() for x in inputs])


def litert_outputs(path: Path, inputs: list[np.ndarray]) -> np.ndarray:
    """What the LiteRT interpreter (the runtime that replaces tf.lite.Interpreter) computes."""
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = interpreter_module.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.float32 and out["dtype"] == np.float32  # raw data in, as Keras
    rows = []
    for x in inputs:
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"]).copy())
    return np.concatenate(rows)


def tflite_ops(path: Path) -> set[str]:
    from dlcli.export_tflite import _ops

    return {name for name, _, _ in _ops(path.read_bytes())}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


@pytest.fixture(scope="module")
def signs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small CNN trained on 20 real photos per sign at 24x24, exported in every format by one
    `dlcli export`."""
    work = tmp_path_factory.mktemp("signs")
    for class_dir in sorted(p for p in SIGNS.iterdir() if p.is_dir()):
        (work / "data" / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:20]:
            shutil.copy(image, work / "data" / class_dir.name / image.name)
    pipeline = write_pipeline(
        work / "signs.yaml",
        work / "data",
        data=f"data: {{type: image_folder, path: {work / 'data'}, image_size: [24, 24], "
        "channels: 3, split: {validation: 0.1, test: 0.3}}\n",
        model="model: {type: small_cnn, filters: [8, 16], convs_per_block: 1, dense: [32], "
        "dropout: 0.0}\n",
        train="train: {epochs: 8, batch_size: 16, precision: float32, "
        "optimizer: {type: adam, learning_rate: 0.01}}\n",
        # Fewer than the 120 training photos, more than half: spread over all of them.
        export="export: {formats: [keras], calibration_examples: 80}\n",
    )
    trained = run_cli("train", pipeline, "--json", "--quiet", cwd=work)
    assert trained.code == 0, trained.stderr
    run, out = Path(trained.json()["run_dir"]), work / "export"
    flags = [arg for fmt in ALL_FORMATS for arg in ("--format", fmt)]
    exported = run_cli("export", run, *flags, "--output", out, cwd=work)
    assert exported.code == 0, exported.stderr
    inputs = split_inputs(run)
    return {
        "work": work,
        "run": run,
        "out": out,
        "export": exported,
        "inputs": inputs,
        "keras": keras_outputs(run / "model.keras", inputs),
    }


def test_every_format_is_written_with_what_predicting_needs(signs: dict[str, Any]):
    out, result = signs["out"], signs["export"]
    assert_no_traceback(result)
    for name in ("model.tflite", "model_int8.tflite", "model.onnx", "spec.json", "labels.json"):
        assert (out / name).is_file(), name
    assert (out / "model.keras").read_bytes() == (signs["run"] / "model.keras").read_bytes()
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert not list(out.glob(".*"))  # no staging files or folders left behind
    for fmt in ALL_FORMATS:
        assert f"exported {fmt}:" in result.stderr
    # The calibration set is drawn from the training split and said so.
    assert "tflite_int8: calibrating on 80 of the 120 training examples" in result.stderr
    assert "ops in int8" in result.stderr
    assert (out / "model_int8.tflite").stat().st_size < 0.7 * (out / "model.tflite").stat().st_size


def test_tflite_predicts_what_keras_predicts(signs: dict[str, Any]):
    outputs = litert_outputs(signs["out"] / "model.tflite", signs["inputs"])
    np.testing.assert_allclose(outputs, signs["keras"], atol=1e-5)


def test_tflite_int8_agrees_with_keras_on_the_top_label(signs: dict[str, Any]):
    """Measured: 60 of 60 test photos agree (seeds 1, 2, 3: 60, 58 and 54 of 60, every miss a
    near tie of this barely trained model; probabilities within 0.01 of Keras's)."""
    path = signs["out"] / "model_int8.tflite"
    assert {"QUANTIZE", "CONV_2D", "DEQUANTIZE"} <= tflite_ops(path)
    outputs, reference = litert_outputs(path, signs["inputs"]), signs["keras"]
    assert len(outputs) == 60
    assert agreement(outputs, reference) >= 0.85
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.05  # Keras's top label is no near tie
    assert agreement(outputs[clear], reference[clear]) == 1.0
    assert np.abs(outputs - reference).max() < 0.05


def test_onnx_predicts_what_keras_predicts(signs: dict[str, Any]):
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(
        str(signs["out"] / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    outputs = np.concatenate([session.run(None, {"image": x})[0] for x in signs["inputs"]])
    np.testing.assert_allclose(outputs, signs["keras"], atol=1e-5)


def test_saved_model_serves_what_keras_predicts(signs: dict[str, Any]):
    import tensorflow as tf

    served = tf.saved_model.load(str(signs["out"] / "saved_model"))
    outputs = served.serve(np.concatenate(signs["inputs"])).numpy()
    np.testing.assert_allclose(outputs, signs["keras"], atol=1e-5)


def test_unknown_formats_are_usage_errors(signs: dict[str, Any]):
    result = run_cli("export", signs["run"], "--format", "onnxx")
    assert result.code == 2, result.stderr
    assert "Expected one of: keras, saved_model, tflite, tflite_int8, onnx" in result.stderr
    assert "did you mean `onnx`" in result.stderr
    assert_no_traceback(result)
    from dlcli.config.loader import load_pipeline
    from dlcli.config.schema import EXPORT_FORMATS
    from dlcli.errors import ConfigError
    from dlcli.export import FILES, WRITERS

    assert tuple(FILES) == tuple(WRITERS) == EXPORT_FORMATS == ALL_FORMATS

    with pytest.raises(ConfigError, match="tflite_int8"):
        load_pipeline(signs["run"] / "pipeline.yaml", ["export.formats=[tflite8]"])


def test_mixed_precision_exports_a_float32_graph(signs: dict[str, Any], tmp_path: Path):
    """A mixed_float16 model (this run's, rebuilt under that policy) exports without float16
    ops, so without TensorFlow (Flex) ops, and predicts what Keras predicts."""
    import keras

    from dlcli import runs
    from dlcli.export import export_run
    from dlcli.models.loading import load_keras_model
    from dlcli.tasks import create_task

    handle = runs.open_run(signs["run"])
    trained = load_keras_model(handle.model_path)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = create_task(handle.config.task, handle.spec).build_model(handle.config.model)
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(trained.get_weights())
    for name in ("pipeline.yaml", "spec.json", "labels.json"):
        shutil.copy(signs["run"] / name, tmp_path / name)
    mixed.save(tmp_path / "model.keras")

    written = export_run(tmp_path, ["tflite", "onnx"], tmp_path / "export")
    assert tflite_ops(Path(written["tflite"])) <= {
        "CONV_2D",
        "MAX_POOL_2D",
        "MEAN",
        "FULLY_CONNECTED",
        "SOFTMAX",
    }
    inputs, reference = signs["inputs"][:10], signs["keras"][:10]
    np.testing.assert_allclose(
        litert_outputs(Path(written["tflite"]), inputs), reference, atol=1e-5
    )
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(written["onnx"], providers=["CPUExecutionProvider"])
    outputs = np.concatenate([session.run(None, {"image": x})[0] for x in inputs])
    np.testing.assert_allclose(outputs, reference, atol=1e-5)


def test_tflite_int8_refuses_a_model_that_does_not_take_the_data():
    """A GAN's generator takes noise: there is no training example to calibrate it on."""
    import keras

    from dlcli.errors import ConfigError
    from dlcli.export_tflite import _check_takes

    noise = keras.Input((16,), name="latent")
    generator = keras.Model(noise, keras.layers.Dense(4)(noise))
    with pytest.raises(ConfigError, match="does not take it") as refused:
        _check_takes(generator, np.zeros((1, 24, 24, 3), np.float32))
    assert refused.value.exit_code == 2 and "--format tflite" in str(refused.value.hint)


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason="needs ../shared/data/fsdd")
def test_an_audio_model_exports_to_tflite_with_its_front_end(tmp_path: Path):
    """Waveforms in: the log-mel front end is inside the TFLite model. In int8 it stays float32
    (quantised, a power spectrum loses its quiet bins) and the network after it is int8."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in [
        f"{d}_{s}_{t}.wav" for d in range(3) for s in ("george", "theo") for t in range(8)
    ]:
        shutil.copy(RECORDINGS / name, clips / name)
    (tmp_path / "audio.yaml").write_text(
        "name: audio\nseed: 1\n"
        "data: {type: audio_folder, path: clips, label_regex: '^(?P<label>\\d+)_', "
        "sample_rate: 8000, duration: 0.5, normalize: peak, split: {validation: 0.1, test: 0.25}}\n"
        "model: {type: ds_cnn, filters: 8, blocks: 1}\n"
        "train: {epochs: 4, batch_size: 8, precision: float32}\n"
        "export: {formats: [tflite, tflite_int8]}\n"  # the pipeline's own export formats
    )
    result = run_cli("run", "audio.yaml", "--json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    run, out = Path(result.json()["run_dir"]), tmp_path / "runs" / "audio" / "1" / "export"
    assert set(result.json()["export"]) == {"tflite", "tflite_int8"}
    assert "the audio front end in float32" in result.stderr

    inputs = split_inputs(run)
    assert inputs[0].shape == (1, 4000)  # a raw waveform
    reference = keras_outputs(run / "model.keras", inputs)
    np.testing.assert_allclose(litert_outputs(out / "model.tflite", inputs), reference, atol=1e-4)
    int8 = litert_outputs(out / "model_int8.tflite", inputs)
    assert agreement(int8, reference) >= 0.9  # measured: 12 of 12 clips (seeds 1, 2, 3)
    assert {"RFFT2D", "CONV_2D", "QUANTIZE"} <= tflite_ops(out / "model_int8.tflite")

    from dlcli.errors import DlcliError
    from dlcli.export import export_run

    with pytest.raises(DlcliError, match="cannot convert this model to ONNX") as failure:
        export_run(run, ["onnx"], out)
    assert failure.value.exit_code == 1 and "--format tflite" in str(failure.value.hint)
    assert not (out / "model.onnx").exists()
