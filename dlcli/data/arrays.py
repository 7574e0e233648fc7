"""Images in a NumPy `.npz` file: `x_train`, `y_train` (+ `x_val`/`x_test`) or `x`, `y`."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt

from dlcli.config.base import ResolvedPath
from dlcli.data.base import SPLITS, DataBundle, ImageInputs, SplitConfig, stratified_split
from dlcli.errors import DataError
from dlcli.registry import DATA_SOURCES

KEYS = {"train": ("train",), "validation": ("val", "validation", "valid"), "test": ("test",)}


class NpzConfig(ImageInputs):
    """`data:` for `type: npz`."""

    type: Literal["npz"] = "npz"
    path: ResolvedPath
    image_size: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="resize to [height, width]; default: keep the arrays' size"
    )
    channels: Literal[1, 3] | None = Field(None, description="default: the arrays' channels")
    split: SplitConfig = Field(default_factory=SplitConfig, description="for plain `x`, `y`")

    example: ClassVar[dict[str, Any]] = {"path": "{digits_npz}"}


def _arrays(config: NpzConfig, seed: int) -> tuple[dict[str, tuple[Any, Any]], list[str]]:
    if not config.path.is_file():
        raise DataError(f"NumPy file not found: {config.path}")
    with np.load(config.path, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    names = [str(n) for n in data.get("class_names", [])]
    parts: dict[str, tuple[Any, Any]] = {}
    for split, suffixes in KEYS.items():
        for suffix in suffixes:
            if f"x_{suffix}" in data and f"y_{suffix}" in data:
                parts[split] = (data[f"x_{suffix}"], data[f"y_{suffix}"].astype(np.int64))
                break
    if not parts and "x" in data and "y" in data:
        x, y = data["x"], data["y"].astype(np.int64)
        index = stratified_split(
            [(str(i), int(label)) for i, label in enumerate(y)],
            config.split.validation,
            config.split.test,
            seed,
        )
        parts = {
            s: (x[[int(i) for i in index[s][0]]], y[[int(i) for i in index[s][0]]]) for s in SPLITS
        }
    if "train" not in parts:
        raise DataError(
            f"{config.path} holds {', '.join(sorted(data)) or 'no arrays'}. "
            "Expected x_train and y_train (optionally x_val/y_val, x_test/y_test), or x and y."
        )
    num_classes = int(max(int(y.max()) for _, y in parts.values() if len(y)) + 1)
    return parts, names if len(names) == num_classes else [str(i) for i in range(num_classes)]


@DATA_SOURCES.register("npz", config=NpzConfig)
def npz(config: NpzConfig, *, seed: int) -> DataBundle:
    """NumPy arrays of images and integer labels from an .npz file."""
    import tensorflow as tf

    from dlcli.data.images import fit_image, image_batch

    parts, class_names = _arrays(config, seed)
    sample = parts["train"][0]
    native_channels = 1 if sample.ndim == 3 else int(sample.shape[-1])
    channels = config.channels or (3 if native_channels >= 3 else 1)
    size = config.image_size or (int(sample.shape[1]), int(sample.shape[2]))
    splits, sizes = {}, {}
    for name in SPLITS:
        x, y = parts.get(name, (sample[:0], np.zeros(0, np.int64)))
        ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
        splits[name] = ds.map(lambda img, label: (fit_image(img, size, channels), label)).cache()
        sizes[name] = len(y)
    tally = Counter(parts["train"][1].tolist())
    return DataBundle(
        class_names=class_names,
        input_shape=(*size, channels),
        splits=splits,
        sizes=sizes,
        class_counts=[tally.get(i, 0) for i in range(len(class_names))],
        labels={n: parts[n][1].astype(int).tolist() for n in SPLITS if n in parts},
        batch=image_batch,
    )
