"""Classification metrics from labels and predicted probabilities (NumPy only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def classification_report(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: list[str], top_k: int
) -> dict[str, Any]:
    n = len(class_names)
    y_pred = probabilities.argmax(axis=1)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1).astype(float)
    predicted = confusion.sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    k = min(top_k, n)
    top = np.argsort(-probabilities, axis=1)[:, :k]
    top_k_acc = (
        float(np.mean([t in row for t, row in zip(y_true, top, strict=True)]))
        if len(y_true)
        else 0.0
    )
    total = support.sum() or 1.0
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "examples": len(y_true),
        "accuracy": float(tp.sum() / total),
        f"top_{k}_accuracy": top_k_acc,
        "macro_avg": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "weighted_avg": {
            "precision": float((precision * support).sum() / total),
            "recall": float((recall * support).sum() / total),
            "f1": float((f1 * support).sum() / total),
        },
        "per_class": per_class,
        "confusion_matrix": {"labels": class_names, "matrix": confusion.tolist()},
    }


def plot_confusion_matrix(matrix: list[list[int]], labels: list[str], path: Path) -> None:
    """Write the confusion matrix as a PNG (counts in cells, rows = true labels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.asarray(matrix)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = data.max() / 2 if data.size else 0
    if len(labels) <= 30:
        for (i, j), value in np.ndenumerate(data):
            color = "white" if value > threshold else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def log_spectrogram(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """A [frequency, time] log-power spectrogram (25 ms Hann windows, 10 ms hop), for pictures."""
    window = max(16, int(0.025 * sample_rate))
    hop = max(1, int(0.010 * sample_rate))
    padded = np.pad(wave.astype(np.float32), (0, max(0, window - len(wave))))
    starts = range(0, len(padded) - window + 1, hop)
    frames = np.stack([padded[i : i + window] for i in starts]) * np.hanning(window)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    decibels = 10 * np.log10(power + 1e-10)
    return np.maximum(decibels, decibels.max() - 80.0).T  # 80 dB below the peak, like top_db


def plot_misclassified(
    images: list[np.ndarray], captions: list[str], path: Path, sample_rate: int | None = None
) -> None:
    """Write a PNG grid of images (raw 0-255 pixels) with a caption under each; waveforms
    (with their `sample_rate`) are drawn as spectrograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, len(images))
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.4 * columns, 2.8 * rows), dpi=100, squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        if image.ndim == 1:  # a waveform
            spectrogram = log_spectrogram(image, sample_rate or 16000)
            ax.imshow(spectrogram, origin="lower", aspect="auto", cmap="magma")
        else:
            pixels = np.clip(image, 0, 255).astype(np.uint8)
            ax.imshow(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray")
        ax.set_title(caption, fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
