from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlcli.report.classification import classification_report, plot_confusion_matrix


def test_report_matches_hand_computed_values():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array(
        [
            [0.9, 0.1, 0.0],
            [0.2, 0.7, 0.1],
            [0.1, 0.8, 0.1],
            [0.1, 0.6, 0.3],
            [0.3, 0.3, 0.4],
            [0.5, 0.3, 0.2],
        ]
    )
    report = classification_report(y_true, probabilities, ["a", "b", "c"], top_k=2)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert report["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert report["per_class"]["b"]["recall"] == pytest.approx(1.0)
    assert report["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert report["top_2_accuracy"] == pytest.approx(5 / 6)
    assert report["macro_avg"]["recall"] == pytest.approx((0.5 + 1 + 0.5) / 3)


def test_confusion_matrix_png(tmp_path: Path):
    path = tmp_path / "cm.png"
    plot_confusion_matrix([[3, 1], [0, 4]], ["cat", "dog"], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
