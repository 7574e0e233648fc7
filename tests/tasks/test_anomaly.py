"""The anomaly task: data adaptation, kNN scores, threshold calibration, metrics, and a run
through the real CLI (train on normal classes, evaluate, predict verdicts, embed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dlcli.errors import ConfigError
from dlcli.tasks.anomaly import (
    AnomalyConfig,
    ThresholdConfig,
    _knn_scores,
    calibrate,
    greedy_coreset,
)
from tests.conftest import assert_no_traceback, knn_anomaly_pipeline, run_cli


def test_knn_scores_are_exact_distances_and_take_the_worst_patch():
    bank = np.array([[0.0, 0.0], [10.0, 0.0]], np.float32)
    # Two images of two patches each: the image's score is its farthest patch's distance.
    features = np.array([[[0.0, 1.0], [10.0, 0.0]], [[3.0, 4.0], [0.0, 0.0]]], np.float32)
    np.testing.assert_allclose(_knn_scores(features, bank, k=1), [1.0, 5.0], rtol=1e-5)
    # k=2: the mean distance to the two nearest bank vectors.
    expected = (5.0 + np.hypot(7.0, 4.0)) / 2
    np.testing.assert_allclose(_knn_scores(features[1:], bank, k=2), [expected], rtol=1e-5)
    # mean: whole-image anomalies score by all their patches.
    np.testing.assert_allclose(_knn_scores(features, bank, 1, "mean"), [0.5, 2.5], rtol=1e-5)


def test_greedy_coreset_covers_every_cluster():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [50, 0], [0, 50], [50, 50]], np.float32)
    points = np.concatenate([c + rng.normal(size=(100, 2)).astype(np.float32) for c in centres])
    chosen = greedy_coreset(points, 4)
    assert len(set(chosen.tolist())) == 4
    # One pick in each cluster: the farthest-point rule reaches all of them first.
    assert sorted({int(i) // 100 for i in chosen}) == [0, 1, 2, 3]
    # Higher dimensions go through a random projection and still pick distinct points.
    wide = rng.normal(size=(300, 256)).astype(np.float32)
    assert len(set(greedy_coreset(wide, 30).tolist())) == 30


def test_f1_threshold_separates_separable_scores():
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 1])
    threshold, method = calibrate(scores, labels, ThresholdConfig())
    assert method == "f1" and 0.3 < threshold < 0.8


def test_percentile_threshold_when_validation_has_no_anomalies():
    scores = np.arange(100, dtype=float)
    threshold, method = calibrate(scores, np.zeros(100, int), ThresholdConfig(percentile=95))
    assert method == "percentile 95" and threshold == pytest.approx(94.05)


def test_report_on_known_scores():
    from dlcli.report.anomaly import anomaly_report

    report = anomaly_report(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]), 0.5)
    assert report["roc_auc"] == pytest.approx(0.75)
    assert report["precision"] == 1.0 and report["recall"] == 0.5
    assert report["confusion"] == {"tp": 1, "fp": 0, "fn": 1, "tn": 2}
    one_kind = anomaly_report(np.array([0.1, 0.2]), np.array([0, 0]), 0.5)
    assert one_kind["roc_auc"] is None


def test_adapt_data_trains_on_normal_classes_only(small_digits: Path):
    from dlcli.config.loader import load_pipeline_text
    from dlcli.data import create_dataset
    from dlcli.tasks import create_task

    text = (
        f"name: a\ndata: {{type: image_folder, path: {small_digits}, image_size: [8, 8], "
        "channels: 1, split: {validation: 0.2, test: 0.2}}\nmodel: {type: small_cnn}\n"
    )
    cfg = load_pipeline_text(text).config
    source = create_dataset(cfg.data, seed=0)
    task = create_task(AnomalyConfig(normal_classes=["3", "7"]), source.spec)
    data = task.adapt_data(source)
    assert data.sizes["train"] == 2 * 18  # 30 per class, 60% trains
    assert [int(y) for _, y in data.split("train")] == [0] * 36
    test_labels = [int(y) for _, y in data.split("test")]
    assert test_labels == data.split_labels("test")
    assert test_labels.count(0) == 12 and test_labels.count(1) == 48
    with pytest.raises(ConfigError, match="normal_classes names 3x") as info:
        create_task(AnomalyConfig(normal_classes=["3x"]), source.spec).adapt_data(source)
    assert info.value.hint == "did you mean `3`?"


@pytest.mark.e2e
def test_knn_anomaly_run_evaluates_predicts_and_embeds(small_digits: Path, tmp_path: Path):
    pipeline = knn_anomaly_pipeline(tmp_path / "anomaly.yaml", small_digits)
    result = run_cli("run", pipeline, "--json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert_no_traceback(result)
    run = Path(result.json()["run_dir"])
    report = result.json()["evaluation"]
    assert report["task"] == "anomaly" and report["anomalies"] == 81 and report["examples"] == 90
    assert 0.0 <= report["roc_auc"] <= 1.0 and report["pr_auc"] is not None
    saved = json.loads((run / "anomaly.json").read_text())
    assert saved["calibrated_on"] == "validation" and saved["threshold"] > 0
    assert (run / "evaluation" / "test" / "score_histogram.png").stat().st_size > 1000
    assert (run / "memory_bank.npy").is_file() and not (run / "checkpoints" / "checkpoint").exists()

    out = tmp_path / "verdicts.csv"
    predicted = run_cli("predict", run, small_digits / "0", small_digits / "5", "-o", out)
    assert predicted.code == 0, predicted.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 60 and set(rows[0]) == {"path", "score", "verdict", "threshold"}
    zeros = [r for r in rows if "/0/" in r["path"]]
    fives = [r for r in rows if "/5/" in r["path"]]
    # Normal training images are in the memory bank: their nearest patch is themselves.
    assert np.median([float(r["score"]) for r in zeros]) < np.median(
        [float(r["score"]) for r in fives]
    )

    embedded = run_cli("embed", run, small_digits / "0", "-o", tmp_path / "e" / "emb.npy")
    assert embedded.code == 0, embedded.stderr
    vectors = np.load(tmp_path / "e" / "emb.npy")
    assert vectors.shape[0] == 30 and vectors.ndim == 2
    assert len((tmp_path / "e" / "emb.csv").read_text().splitlines()) == 31
    assert (tmp_path / "e" / "emb.png").is_file()
