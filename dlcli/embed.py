"""Embeddings of input files from a trained run: the output of the layer every builder names
`embedding` (spatial feature maps are averaged), written as `.npy` with a CSV of paths and a
2-D projection picture."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlcli import runs
from dlcli.errors import ConfigError


@dataclass
class Embeddings:
    vectors: np.ndarray  # [N, D]
    paths: list[str]
    skipped: list[str]


def embed_files(target: Path, inputs: list[str], *, batch_size: int = 64) -> Embeddings:

    from dlcli.models.loading import embedding_submodel, load_keras_model
    from dlcli.predict import expand_inputs

    handle = runs.open_run(target)
    files = expand_inputs(inputs, handle.config.data.input_extensions)
    encoder = embedding_submodel(load_keras_model(handle.model_path), handle.model_path)
    read = handle.config.data.read_inputs(files, handle.spec)
    if not read.paths:
        raise ConfigError(f"None of the {len(files)} input files could be read.")
    parts = []
    for batch in read.batch(read.dataset, batch_size, False):
        out = np.asarray(encoder.predict_on_batch(batch), np.float32)
        parts.append(out.reshape(len(out), -1, out.shape[-1]).mean(axis=1))
    return Embeddings(np.concatenate(parts), read.paths, [p for p, _ in read.skipped])


def write_embeddings(result: Embeddings, output: Path) -> dict[str, str]:
    """`output` (.npy), `output` with .csv (index, path) and .png (2-D PCA projection)."""
    if output.suffix.lower() != ".npy":
        raise ConfigError(
            f"Invalid value for option `--output`. Received: {output}. Expected a .npy file."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=".npy", dir=output.parent)
    os.close(fd)
    np.save(tmp, result.vectors)
    os.replace(tmp, output)
    table = output.with_suffix(".csv")
    runs.atomic_write_csv(table, [{"index": i, "path": p} for i, p in enumerate(result.paths)])
    picture = output.with_suffix(".png")
    plot_projection(result.vectors, [Path(p).parent.name for p in result.paths], picture)
    return {"embeddings": str(output), "paths": str(table), "projection": str(picture)}


def plot_projection(vectors: np.ndarray, groups: list[str], path: Path) -> None:
    """The first two principal components, coloured by each file's folder (its class, usually)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    points = (
        PCA(n_components=2).fit_transform(vectors)
        if len(vectors) > 2 and vectors.shape[1] > 1
        else np.zeros((len(vectors), 2))
    )
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    names = sorted(set(groups))
    for i, name in enumerate(names):
        chosen = np.array([g == name for g in groups])
        shown = name if len(names) <= 20 else None
        ax.scatter(
            points[chosen, 0], points[chosen, 1], s=10, color=plt.cm.tab20(i % 20), label=shown
        )
    if len(names) <= 20:
        ax.legend(fontsize=7, markerscale=1.5, title="folder")
    ax.set_title(f"{len(vectors)} embeddings of {vectors.shape[1]} dims: PCA")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
