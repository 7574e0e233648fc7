"""Pictures of images side by side: a grid whose rows are stages (input, noisy, output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_image_rows(
    rows: list[tuple[str, list[np.ndarray]]],
    path: Path,
    *,
    captions: list[str] | None = None,
) -> None:
    """Write a PNG grid: one row per `(name, images)` (raw 0-255 pixels, HxWxC), one column per
    example; `captions` go under the last row's images. Written to a temporary name, then
    renamed, so a reader never sees half a file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max((len(images) for _, images in rows), default=0)
    if not rows or columns == 0:
        return
    fig, axes = plt.subplots(
        len(rows),
        columns,
        figsize=(1.6 * columns + 0.8, 1.8 * len(rows)),
        dpi=100,
        squeeze=False,
    )
    for r, (name, images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                pixels = np.clip(np.asarray(images[c]), 0, 255).astype(np.uint8)
                gray = pixels.ndim == 3 and pixels.shape[-1] == 1
                ax.imshow(pixels[..., 0] if gray else pixels, cmap="gray", vmin=0, vmax=255)
            if c == 0:
                ax.set_ylabel(name, fontsize=10)
            if captions and r == len(rows) - 1 and c < len(captions):
                ax.set_xlabel(captions[c], fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
