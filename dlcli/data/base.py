"""What every data source hands to the trainer, and the image options they share."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from dlcli.config.base import StrictModel
from dlcli.data.augment import AugmentConfig
from dlcli.errors import DataError

SPLITS = ("train", "validation", "test")


@dataclass
class DataBundle:
    """Labelled splits of unbatched `(features, label)` elements, plus what models need to know."""

    class_names: list[str]
    input_shape: tuple[int, ...]
    splits: dict[str, Any]  # split name -> tf.data.Dataset of single examples
    sizes: dict[str, int]
    class_counts: list[int] = field(default_factory=list)  # of the training split
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable files, why

    def split(self, name: str) -> Any:
        if self.sizes.get(name, 0) == 0:
            raise DataError(
                f"The `{name}` split is empty. Received split sizes: {self.sizes}.",
                hint="raise the fraction for that split in `data.split`, or add data",
            )
        return self.splits[name]


class SplitConfig(StrictModel):
    """Fractions of each class held out; the rest trains. Stratified and fixed by `seed`."""

    validation: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.2, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _leave_some_for_training(self) -> SplitConfig:
        if self.validation + self.test >= 1.0:
            raise ValueError(
                f"validation + test must be below 1, got {self.validation} + {self.test}"
            )
        return self


class ImageOptions(StrictModel):
    """Options shared by every image source."""

    image_size: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="[height, width]; default: the model's own input size"
    )
    channels: Literal[1, 3] = 3
    cache: bool = Field(True, description="keep decoded images in memory after the first epoch")
    on_bad_file: Literal["skip", "fail"] = Field(
        "fail", description="unreadable images: skip them (listed in the log) or stop"
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


def stratified_split(
    items: list[tuple[str, int]], validation: float, test: float, seed: int
) -> dict[str, tuple[list[str], list[int]]]:
    """Per class, shuffle by seed and cut off test then validation; same seed, same split."""
    import random

    by_class: dict[int, list[str]] = {}
    for path, label in items:
        by_class.setdefault(label, []).append(path)
    out: dict[str, tuple[list[str], list[int]]] = {s: ([], []) for s in SPLITS}
    for label in sorted(by_class):
        files = sorted(by_class[label])
        random.Random(f"{seed}:{label}").shuffle(files)
        n_test = round(len(files) * test)
        n_val = round(len(files) * validation)
        parts = {
            "test": files[:n_test],
            "validation": files[n_test : n_test + n_val],
            "train": files[n_test + n_val :],
        }
        for split, chosen in parts.items():
            out[split][0].extend(chosen)
            out[split][1].extend([label] * len(chosen))
    return out


def image_bundle(
    parts: dict[str, tuple[list[str], list[int]]], class_names: list[str], options: ImageOptions
) -> DataBundle:
    """Scan, decode and cache the files of each split."""
    from dlcli.data.images import image_dataset, log_skipped, scan_images

    size = options.image_size
    if size is None:  # the pipeline schema fills it in from the model
        raise DataError("data.image_size is not set")
    splits, sizes, skipped = {}, {}, []
    counts: list[int] = []
    for name in SPLITS:
        paths, labels = parts.get(name, ([], []))
        scan = scan_images(paths, labels, options.on_bad_file)
        skipped += scan.bad
        ds = image_dataset(scan.good, scan.labels, size, options.channels)
        splits[name] = ds.cache() if options.cache else ds
        sizes[name] = len(scan.good)
        if name == "train":
            tally = Counter(scan.labels)
            counts = [tally.get(i, 0) for i in range(len(class_names))]
    log_skipped(skipped)
    return DataBundle(
        class_names=class_names,
        input_shape=(*size, options.channels),
        splits=splits,
        sizes=sizes,
        class_counts=counts,
        skipped=skipped,
    )
