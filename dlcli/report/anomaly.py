"""Anomaly metrics from scores and 0/1 labels (1 = anomaly), and the score histogram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def anomaly_report(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    """ROC AUC and PR AUC (average precision) over all thresholds; precision, recall and F1 at
    the calibrated one. AUCs are None when the split holds one kind only."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    both = len(np.unique(labels)) == 2
    predicted = scores > threshold
    truth = labels == 1
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    tn = int((~predicted & ~truth).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "examples": len(labels),
        "anomalies": int(truth.sum()),
        "roc_auc": float(roc_auc_score(truth, scores)) if both else None,
        "pr_auc": float(average_precision_score(truth, scores)) if both else None,
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / max(len(labels), 1),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def plot_score_histogram(
    scores: np.ndarray, labels: np.ndarray, threshold: float, path: Path
) -> None:
    """Normal and anomalous scores as two histograms, with the threshold as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    bins = list(np.histogram_bin_edges(scores, bins=40)) if len(scores) else 10
    for value, name, color in ((0, "normal", "tab:blue"), (1, "anomaly", "tab:red")):
        chosen = scores[labels == value]
        if len(chosen):
            ax.hist(chosen, bins=bins, alpha=0.6, color=color, label=f"{name} ({len(chosen)})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("images")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
