"""Transfer learning through the real CLI: ImageNet weights from a seeded Keras cache (no
download), both training phases, resume into phase 2, a legacy Keras 2 backbone, evaluation."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SHARED, run_cli, write_pipeline

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (SHARED / "weights").is_dir(), reason="needs ../shared weights"),
]
WEIGHTS = SHARED / "weights" / "keras" / "mobilenet_2_5_224_tf_no_top.h5"


def phases(run: Path) -> list[str]:
    return [row["phase"] for row in csv.DictReader((run / "history.csv").open())]


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What an offline user does: put the weights file where Keras caches downloads."""
    home = tmp_path_factory.mktemp("keras_home")
    (home / "models").mkdir()
    shutil.copy(WEIGHTS, home / "models" / WEIGHTS.name)
    return {"KERAS_HOME": str(home)}


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory, small_digits: Path, keras_home: dict) -> dict:  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("transfer")
    pipeline = write_pipeline(
        work / "p.yaml",
        small_digits,
        data=(
            f"data:\n  type: image_folder\n  path: {small_digits}\n  channels: 1\n"
            "  split: {validation: 0.2, test: 0.2}\n  augment: {translation: 0.1}\n"
        ),
        model=(
            "model:\n  type: transfer\n  backbone: MobileNet\n  weights: imagenet\n"
            "  backbone_args: {alpha: 0.25}\n"
        ),
        train=(
            "train:\n  epochs: 1\n  batch_size: 30\n  optimizer: {type: adam}\n"
            "  fine_tune: {epochs: 1, unfreeze: 20, learning_rate: 0.0001}\n"
        ),
    )
    result = run_cli("train", pipeline, "--json", env=keras_home, cwd=work)
    assert result.code == 0, result.stderr
    return {
        "work": work,
        "pipeline": pipeline,
        "result": result,
        "run": Path(result.json()["run_dir"]),
    }


def test_imagenet_weights_come_from_the_seeded_cache_and_both_phases_run(transfer_run: dict):
    stderr = transfer_run["result"].stderr
    assert "fine-tuning:" in stderr
    assert phases(transfer_run["run"]) == ["1", "2"]
    pipeline = (transfer_run["run"] / "pipeline.yaml").read_text()
    assert "- 224" in pipeline  # the image size came from the backbone


def test_resume_continues_in_the_fine_tuning_phase(transfer_run: dict, keras_home: dict):
    result = run_cli(
        "train",
        "--resume",
        transfer_run["run"],
        "--set",
        "train.fine_tune.epochs=2",
        env=keras_home,
    )
    assert result.code == 0, result.stderr
    assert "resuming after epoch 2" in result.stderr
    assert phases(transfer_run["run"]) == ["1", "2", "2"]


def test_evaluate_with_tta_writes_the_misclassified_grid(transfer_run: dict, keras_home: dict):
    result = run_cli("evaluate", transfer_run["run"], "--tta", "flip", "--json", env=keras_home)
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["tta"] == "flip" and report["examples"] == 60
    grid = Path(report["output_dir"]) / "misclassified.png"
    assert report["accuracy"] == 1.0 or grid.read_bytes()[:4] == b"\x89PNG"


def test_legacy_keras2_model_as_backbone(tmp_path: Path, small_digits: Path):
    legacy = SHARED / "models" / "mlperf_tiny" / "vww_96.h5"
    pipeline = write_pipeline(
        tmp_path / "p.yaml",
        small_digits,
        model=f"model:\n  type: transfer\n  backbone: {legacy}\n  dropout: 0.1\n",
        train="train:\n  epochs: 1\n  batch_size: 32\n",
    )
    result = run_cli("train", pipeline, "--json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "dropping the legacy `groups` argument" in result.stderr
    summary = json.loads(result.stdout)
    predicted = run_cli("predict", summary["run_dir"], small_digits / "1", "--json")
    assert predicted.code == 0, predicted.stderr
    assert len(predicted.predictions()) == 30
