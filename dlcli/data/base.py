"""What every data source hands to the trainer, and the image options they share."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from dlcli.config.base import ResolvedPath, StrictModel
from dlcli.data.augment import AugmentConfig
from dlcli.data.images import IMAGE_EXTENSIONS
from dlcli.errors import DataError

SPLITS = ("train", "validation", "test")
log = logging.getLogger("dlcli")


SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class DataSpec:
    """What a model and a task need to know about the data, saved with every run.

    Builders size their input from it, tasks their head (timm's `num_classes=0` idea: the body
    does not know the task); `predict` reads it back from the run, without the training data.
    """

    input_shape: tuple[int, ...]
    modality: Literal["image", "audio"] = "image"
    class_names: list[str] | None = None  # None: the data has no labels
    class_counts: list[int] = field(default_factory=list)  # of the training split
    sample_rate: int | None = None  # audio: samples per second of the model's input

    @property
    def num_classes(self) -> int:
        return len(self.class_names or [])

    def save(self, run_dir: Path) -> None:
        from dlcli.runs import atomic_write_json

        atomic_write_json(run_dir / SPEC_FILE, asdict(self))

    @classmethod
    def load(cls, run_dir: Path) -> DataSpec | None:
        path = run_dir / SPEC_FILE
        if not path.is_file():
            return None
        import dataclasses

        try:
            data = json.loads(path.read_text())
            known = {f.name for f in dataclasses.fields(cls)}
            data = {k: v for k, v in data.items() if k in known}
            data["input_shape"] = tuple(data["input_shape"])
            return cls(**data)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{path} is not a dlcli data spec: {exc}",
                hint="was the run directory written by dlcli train? train it again",
            ) from None


def plain_batch(dataset: Any, batch_size: int, drop_remainder: bool) -> Any:
    return dataset.batch(batch_size, drop_remainder=drop_remainder)


def padded_batch(dataset: Any, batch_size: int, drop_remainder: bool) -> Any:
    """Batches in order, every component zero-padded to the longest in the batch."""
    return dataset.padded_batch(batch_size, drop_remainder=drop_remainder)


@dataclass
class DataBundle:
    """Splits of unbatched `(features, label)` elements, plus what models need to know.

    `batch` turns a split into batches: plain stacking for fixed-size inputs; a source of
    variable-length inputs brings a padded one (and may bucket training batches by length).
    """

    class_names: list[str]
    input_shape: tuple[int, ...]
    splits: dict[str, Any]  # split name -> tf.data.Dataset of single examples
    sizes: dict[str, int]
    class_counts: list[int] = field(default_factory=list)  # of the training split
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable files, why
    modality: Literal["image", "audio"] = "image"
    batch: Callable[[Any, int, bool], Any] = plain_batch
    labels: dict[str, list[int]] = field(default_factory=dict)  # per split, when known
    sample_rate: int | None = None  # audio sources
    # Training batches when they differ from `batch` (bucketed by length, say).
    train_batch: Callable[[Any, int, bool], Any] | None = None
    paths: dict[str, list[str]] = field(default_factory=dict)  # per split, when files
    transcripts: dict[str, list[str]] = field(default_factory=dict)  # per split, speech

    def split_labels(self, name: str) -> list[int]:
        """The labels of a split in order: known up front for files, else read from the data."""
        if name in self.labels:
            return self.labels[name]
        if not self.has(name):
            return []
        return [int(y) for _, y in self.splits[name].map(lambda x, y: (0, y)).as_numpy_iterator()]

    @property
    def spec(self) -> DataSpec:
        return DataSpec(
            input_shape=tuple(self.input_shape),
            modality=self.modality,
            class_names=list(self.class_names) or None,
            class_counts=list(self.class_counts),
            sample_rate=self.sample_rate,
        )

    def has(self, name: str) -> bool:
        return self.sizes.get(name, 0) > 0

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


class ImageInputs(StrictModel):
    """Every image source: how `predict` reads raw files for a model trained on it, and the
    augmentation of training batches."""

    input_extensions: ClassVar[tuple[str, ...]] = IMAGE_EXTENSIONS
    modality: ClassVar[str] = "image"
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    def train_transform(self, num_classes: int, seed: int) -> Callable[[Any, Any], Any] | None:
        """A map over training batches of (inputs, labels), or None: nothing to do."""
        if not self.augment.active():
            return None
        import logging

        from dlcli.data.augment import build_augmenter

        logging.getLogger("dlcli").info(
            "augmentation: %s", self.augment.model_dump(exclude_defaults=True)
        )
        return build_augmenter(self.augment, num_classes, seed)

    def read_inputs(self, paths: list[str], spec: DataSpec) -> ReadInputs:
        from dlcli.data.images import image_batch, image_dataset, scan_images

        height, width, channels = spec.input_shape
        scan = scan_images(paths, [0] * len(paths), on_bad_file="skip", size=(height, width))
        dataset = image_dataset(scan, (height, width), channels)
        return ReadInputs(dataset.map(lambda x, y: x), scan.good, scan.bad, image_batch)


class ImageOptions(ImageInputs):
    """Options shared by every image source that decodes files."""

    image_size: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="[height, width]; default: the model's own input size"
    )
    channels: Literal[1, 3] = 3
    cache: Literal["auto", "memory", "disk", "none"] = Field(
        "auto",
        description="keep decoded uint8 images: in memory after the first epoch, on disk under "
        "`cache_dir` (reused by later runs on the same files and settings), or not at all; "
        "`auto`: memory when they fit a quarter of RAM, else disk",
    )
    cache_dir: ResolvedPath | None = Field(
        None, description="for the disk cache; default ~/.cache/dlcli/images ($DLCLI_CACHE_DIR)"
    )
    on_bad_file: Literal["skip", "fail"] = Field(
        "fail", description="unreadable images: skip them (listed in the log) or stop"
    )

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_was_a_switch(cls, value: Any) -> Any:
        """`cache: true/false` (dlcli 0.1) still reads: auto and none."""
        return {True: "auto", False: "none"}.get(value, value) if isinstance(value, bool) else value


@dataclass
class ReadInputs:
    """Raw files decoded for `predict` exactly as training decoded them."""

    dataset: Any  # tf.data.Dataset of single feature tensors
    paths: list[str]  # the readable ones, in dataset order
    skipped: list[tuple[str, str]]  # (path, reason)
    batch: Callable[[Any, int, bool], Any] = plain_batch  # the source's (padded) batching


def grouped_split(
    items: list[tuple[str, int]], groups: list[str], validation: float, test: float, seed: int
) -> dict[str, tuple[list[str], list[int]]]:
    """Whole groups (a speaker, a patient) go to one split, so no group is in two of them.

    Groups are shuffled by seed and taken for test, then validation, until each holds its
    share of the items; the rest train.
    """
    import random

    by_group: dict[str, list[tuple[str, int]]] = {}
    for item, group in zip(items, groups, strict=True):
        by_group.setdefault(group, []).append(item)
    order = sorted(by_group)
    random.Random(f"{seed}:groups").shuffle(order)
    total = len(items)
    out: dict[str, tuple[list[str], list[int]]] = {s: ([], []) for s in SPLITS}
    wanted = {"test": test * total, "validation": validation * total}
    for group in order:
        split = next((s for s in ("test", "validation") if len(out[s][0]) < wanted[s]), "train")
        for path, label in sorted(by_group[group]):
            out[split][0].append(path)
            out[split][1].append(label)
    return out


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
    """Scan, decode and cache (as `options.cache` says) the files of each split."""
    from dlcli.data.cache import resolve_cache
    from dlcli.data.images import image_batch, log_skipped

    size = options.image_size
    if size is None:  # the pipeline schema fills it in from the model
        raise DataError("data.image_size is not set")
    count = sum(len(paths) for paths, _ in parts.values())
    mode = resolve_cache(options.cache, count * size[0] * size[1] * options.channels, "images")
    splits, sizes, skipped = {}, {}, []
    counts: list[int] = []
    known: dict[str, list[int]] = {}
    for name in SPLITS:
        paths, labels = parts.get(name, ([], []))
        scan, ds = decoded_split(paths, labels, options, mode)
        splits[name] = ds
        skipped += scan.bad
        sizes[name] = len(scan.good)
        known[name] = list(scan.labels)
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
        labels=known,
        batch=image_batch,
    )


IMAGE_CACHE_VERSION = 3  # bump when decoding changes, so old disk caches are not reused


def decoded_split(
    paths: list[str], labels: list[int], options: ImageOptions, mode: str
) -> tuple[Any, Any]:
    """One split's scan and its dataset of `(uint8 image, label)`, cached as `mode` says."""
    from dlcli.data.images import ScanResult, image_dataset, scan_images

    assert options.image_size is not None
    size, channels = options.image_size, options.channels
    if mode != "disk" or not paths:
        scan = scan_images(paths, labels, options.on_bad_file, size)
        ds = image_dataset(scan, size, channels)
        return scan, ds.cache() if mode == "memory" else ds

    import tensorflow as tf

    from dlcli.data.cache import cache_key, cached_scan, default_cache_dir

    def fill(scan: ScanResult, folder: Path) -> None:
        pixels_only(image_dataset(scan, size, channels)).cache(str(folder / "images")).reduce(
            0, lambda n, _: n + 1
        )

    final, scan = cached_scan(
        options.cache_dir or default_cache_dir("images"),
        cache_key(paths, {"size": list(size), "channels": channels}, IMAGE_CACHE_VERSION),
        paths,
        labels,
        lambda positions: scan_images(paths, positions, options.on_bad_file, size),
        fill,
        options.on_bad_file,
        "Cannot read image",
    )
    log.info("%d images from the disk cache %s", len(scan.good), final)
    cached = pixels_only(image_dataset(scan, size, channels)).cache(str(final / "images"))
    return scan, tf.data.Dataset.zip(cached, tf.data.Dataset.from_tensor_slices(scan.labels))


def pixels_only(dataset: Any) -> Any:
    """What a disk cache holds: the images (labels come from the split, not the cache)."""
    return dataset.map(lambda image, _: image)
