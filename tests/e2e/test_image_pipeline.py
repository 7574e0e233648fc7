"""The real CLI, in subprocesses, on real images: train, evaluate, predict, export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_no_traceback, run_cli, write_pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, small_digits: Path) -> dict:
    work = tmp_path_factory.mktemp("work")
    pipeline = write_pipeline(work / "tiny.yaml", small_digits)
    result = run_cli("train", pipeline, "--json", "--set", "train.epochs=5", cwd=work)
    assert result.code == 0, result.stderr
    assert_no_traceback(result)
    return {"work": work, "pipeline": pipeline, "result": result, "run": work / "runs/tiny/1"}


def test_train_writes_a_complete_run_directory(trained: dict):
    run = trained["run"]
    doc = trained["result"].json()
    assert Path(doc["run_dir"]).resolve() == run.resolve()
    assert doc["epochs_run"] == 5
    for name in (
        "pipeline.yaml",
        "model.keras",
        "labels.json",
        "history.csv",
        "metrics.json",
        "train.log",
        "run.json",
    ):
        assert (run / name).is_file(), name
    assert list((run / "checkpoints").glob("ckpt-*.index"))
    assert list((run / "checkpoints" / "best").glob("best-*.index"))
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((run / "labels.json").read_text()) == [str(i) for i in range(10)]
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    meta = json.loads((run / "run.json").read_text())
    assert meta["dlcli_version"] and "git_commit" in meta
    assert "epochs: 5" in (run / "pipeline.yaml").read_text()  # the resolved pipeline
    assert not list(run.rglob(".*tmp*"))  # nothing half-written


def test_json_goes_to_stdout_and_humans_to_stderr(trained: dict):
    result = trained["result"]
    assert result.stdout.lstrip().startswith("{")
    assert "epoch 1/5" in result.stderr


def test_second_run_gets_the_next_number(trained: dict):
    result = run_cli("train", trained["pipeline"], "--set", "train.epochs=1", cwd=trained["work"])
    assert result.code == 0, result.stderr
    assert (trained["work"] / "runs/tiny/2/model.keras").is_file()
    assert (trained["run"] / "model.keras").is_file()  # run 1 untouched


def test_evaluate_reports_and_writes_confusion_matrix(trained: dict):
    result = run_cli("evaluate", trained["run"], "--json", cwd=trained["work"])
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["split"] == "test" and report["examples"] == 60
    assert report["accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert set(report["per_class"]) == {str(i) for i in range(10)}
    out = trained["run"] / "evaluation" / "test"
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    matrix = json.loads((out / "confusion_matrix.json").read_text())["matrix"]
    assert sum(map(sum, matrix)) == 60
    summary = json.loads((trained["run"] / "metrics.json").read_text())
    assert summary["evaluation"]["test"]["accuracy"] == pytest.approx(report["accuracy"])
    assert "precision" in result.stderr and "macro avg" in result.stderr


def test_evaluate_a_bare_keras_file_with_its_pipeline(trained: dict, tmp_path: Path):
    model = tmp_path / "model.keras"
    model.write_bytes((trained["run"] / "model.keras").read_bytes())
    missing = run_cli("evaluate", model)
    assert missing.code == 2 and "--pipeline" in missing.stderr
    result = run_cli(
        "evaluate", model, "--pipeline", trained["pipeline"], "--split", "validation", "--json"
    )
    assert result.code == 0, result.stderr
    assert result.json()["examples"] == 60


def test_predict_files_folders_and_globs(trained: dict, small_digits: Path, tmp_path: Path):
    out = tmp_path / "preds.csv"
    result = run_cli(
        "predict",
        trained["run"],
        small_digits / "3",
        str(small_digits / "7/*.png"),
        "--top-k",
        "2",
        "--output",
        out,
        "--json",
    )
    assert result.code == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 60
    (summary,) = result.json_lines()  # with --output, rows go to the file only
    assert summary["summary"]["rows"] == 60 and summary["summary"]["output"] == str(out)
    assert set(rows[0]) == {"path", "label_1", "probability_1", "label_2", "probability_2"}
    assert 0 <= float(rows[0]["probability_1"]) <= 1
    assert "images/s" in result.stderr
    jsonl = tmp_path / "preds.jsonl"
    result = run_cli(
        "predict", trained["run"] / "model.keras", small_digits / "0", "--output", jsonl
    )
    assert result.code == 0, result.stderr
    first = json.loads(jsonl.read_text().splitlines()[0])
    assert first["label"] in [str(i) for i in range(10)] and len(first["top_k"]) == 3


def test_predict_paths_from_stdin_as_json(trained: dict, small_digits: Path):
    paths = "\n".join(str(p) for p in sorted((small_digits / "5").glob("*.png"))[:4])
    result = run_cli("predict", trained["run"], "-", "--json", stdin=paths)
    assert result.code == 0, result.stderr
    assert len(result.predictions()) == 4


def test_predict_streams_json_lines_and_says_how_many_rows_it_did_not_show(
    trained: dict, small_digits: Path
):
    folders = (small_digits / "3", small_digits / "7")
    streamed = run_cli("predict", trained["run"], *folders, "--json")
    assert streamed.code == 0, streamed.stderr
    rows = streamed.predictions()  # every line parses on its own; the last one sums them up
    files = [str(p) for folder in folders for p in sorted(folder.glob("*.png"))]
    assert [row["path"] for row in rows] == files  # one row per input, in input order
    summary = streamed.json_lines()[-1]["summary"]
    assert summary["inputs"] == 60 and summary["skipped"] == [] and summary["output"] is None
    shown = run_cli("predict", trained["run"], *folders)
    assert shown.code == 0, shown.stderr
    assert shown.stdout == ""
    assert "showing 50 of 60 rows; --output" in " ".join(shown.stderr.split())


def test_predict_bad_inputs_exit_2(trained: dict, tmp_path: Path):
    result = run_cli("predict", trained["run"], tmp_path / "missing.png")
    assert result.code == 2 and "Input not found" in result.stderr
    assert_no_traceback(result)
    result = run_cli("predict", tmp_path / "not-a-run", tmp_path)
    assert result.code == 2 and "run directory" in result.stderr


def test_export_saved_model_serves(trained: dict, tmp_path: Path):
    result = run_cli("export", trained["run"], "--format", "saved_model", "--output", tmp_path)
    assert result.code == 0, result.stderr
    import numpy as np
    import tensorflow as tf

    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    probabilities = served.serve(np.zeros((2, 8, 8, 1), "float32")).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


def test_training_on_missing_data_fails_cleanly(tmp_path: Path, small_digits: Path):
    pipeline = write_pipeline(tmp_path / "p.yaml", tmp_path / "no-such-folder")
    result = run_cli("train", pipeline, cwd=tmp_path)
    assert result.code == 2
    assert "Image folder not found" in result.stderr
    assert_no_traceback(result)


def test_nan_loss_stops_with_a_clear_message(tmp_path: Path, small_digits: Path):
    pipeline = write_pipeline(tmp_path / "p.yaml", small_digits)
    result = run_cli(
        "train",
        pipeline,
        "--set",
        "train.optimizer.learning_rate=1e30",
        "--set",
        "train.optimizer.type=sgd",
        cwd=tmp_path,
    )
    assert result.code == 1, result.stderr
    assert "loss became nan" in result.stderr.lower()
    assert_no_traceback(result)


@pytest.mark.slow
def test_quickstart_reaches_95_percent(tmp_path: Path):
    """The README's first command, minus the install: the real quickstart, real accuracy."""
    result = run_cli("run", REPO / "pipelines" / "quickstart.yaml", "--json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["evaluation"]["accuracy"] >= 0.95
    assert doc["evaluation"]["examples"] == 359
    assert Path(doc["export"]["keras"]).is_file()


def test_augmentation_and_class_weights_train(tmp_path: Path, small_digits: Path):
    pipeline = write_pipeline(tmp_path / "p.yaml", small_digits)
    result = run_cli(
        "train",
        pipeline,
        "--json",
        "--set",
        "data.augment={translation: 0.1, contrast: 0.1, mixup: 0.2}",
        "--set",
        "task.class_weight=balanced",
        "--set",
        "train.epochs=6",
        cwd=tmp_path,
    )
    assert result.code == 0, result.stderr
    assert "augmentation: {'translation': 0.1" in result.stderr
    rows = list(csv.DictReader((Path(result.json()["run_dir"]) / "history.csv").open()))
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])


def test_export_tflite_runs_in_the_interpreter(trained: dict, tmp_path: Path):
    result = run_cli(
        "export", trained["run"], "--format", "tflite", "--format", "keras", "--output", tmp_path
    )
    assert result.code == 0, result.stderr
    assert (tmp_path / "model.keras").is_file() and (tmp_path / "labels.json").is_file()
    import numpy as np

    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = litert.Interpreter(model_path=str(tmp_path / "model.tflite"))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(inp["index"], np.full(inp["shape"], 128, np.float32))
    interpreter.invoke()
    assert interpreter.get_tensor(out["index"]).sum() == pytest.approx(1.0, rel=1e-4)
    assert not list(tmp_path.glob(".*"))  # no staging directories left behind


def test_export_rejects_unknown_formats(trained: dict):
    result = run_cli("export", trained["run"], "--format", "tensorrt")
    assert result.code == 2, result.stderr
    assert "Expected one of: keras, saved_model, tflite, tflite_int8, onnx" in result.stderr


@pytest.mark.parametrize("top_k", ["0", "-1"])
def test_top_k_below_one_is_a_usage_error(trained: dict, small_digits: Path, top_k: str):
    image = sorted((small_digits / "3").glob("*.png"))[0]
    for command in (["predict", trained["run"], image], ["evaluate", trained["run"]]):
        result = run_cli(*command, "--top-k", top_k, cwd=trained["work"])
        assert result.code == 2, result.stderr
        assert_no_traceback(result)
        assert "--top-k" in result.stderr
        assert any(f"{at_least} 1" in result.stderr for at_least in (">=", "or equal to"))
        assert "--set" not in result.stderr  # the user typed --top-k, not --set
        assert len(result.stderr.splitlines()) < 15


def test_predict_files_refuses_top_k_below_one():
    from dlcli.errors import ConfigError
    from dlcli.predict import predict_files

    with pytest.raises(ConfigError, match=r"`--top-k`\. Received: 0\. Expected >= 1"):
        predict_files(Path("any-run"), ["any.png"], top_k=0)
