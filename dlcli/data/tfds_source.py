"""Datasets from TensorFlow Datasets by name, through the real `tfds` loading code.

`download: true` lets TFDS download and prepare the data on first use (into `data_dir`);
offline machines prepare it once elsewhere and point `data_dir` at the copy.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt

from dlcli.config.base import ResolvedPath
from dlcli.data.base import SPLITS, DataBundle, ImageInputs
from dlcli.errors import DataError
from dlcli.registry import DATA_SOURCES

SplitName = Literal["train", "validation", "test"]


def _default_splits() -> dict[SplitName, str]:
    return {"train": "train[:80%]", "validation": "train[80%:90%]", "test": "train[90%:]"}


class TfdsConfig(ImageInputs):
    """`data:` for `type: tfds`."""

    type: Literal["tfds"] = "tfds"
    name: str = Field(description="TFDS name, e.g. `tf_flowers` or `cifar10:3.0.2`")
    data_dir: ResolvedPath | None = Field(None, description="default: ~/tensorflow_datasets")
    splits: dict[SplitName, str] = Field(
        default_factory=_default_splits, description="TFDS split strings per dlcli split"
    )
    image_key: str = "image"
    label_key: str = "label"
    download: bool = Field(True, description="let TFDS download and prepare missing data")
    image_size: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="[height, width]; default: the model's own input size"
    )
    channels: Literal[1, 3] = 3
    cache: bool = True

    example: ClassVar[dict[str, Any]] = {
        "name": "{tfds_name}",
        "data_dir": "{workdir}/tfds",
        "image_size": [8, 8],
        "channels": 1,
    }


@DATA_SOURCES.register("tfds", config=TfdsConfig)
def tfds_dataset(config: TfdsConfig, *, seed: int) -> DataBundle:
    """A TensorFlow Datasets dataset by name (with `data_dir` for local copies)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            "`type: tfds` needs tensorflow-datasets.", hint="pip install 'dlcli[tfds]'"
        ) from None
    from dlcli.data.images import fit_image, image_batch

    data_dir = str(config.data_dir) if config.data_dir else None
    try:
        builder = tfds.builder(config.name, data_dir=data_dir)
        if config.download:
            builder.download_and_prepare()
        elif not builder.is_prepared():
            raise DataError(
                f"TFDS dataset `{config.name}` is not prepared in "
                f"{builder.data_dir} and `data.download` is false.",
                hint="set `data.download: true`, or point `data.data_dir` at a prepared copy",
            )
        label_feature = builder.info.features[config.label_key]
    except (tfds.core.registered.DatasetNotFoundError, KeyError) as exc:
        raise DataError(f"TFDS dataset `{config.name}`: {exc}") from None
    class_names = [str(n) for n in getattr(label_feature, "names", [])] or [
        str(i) for i in range(int(label_feature.num_classes))
    ]
    size, channels = config.image_size, config.channels
    if size is None:  # the pipeline schema fills it in from the model
        raise DataError("data.image_size is not set")
    splits: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    counts: list[int] = []
    for name in SPLITS:
        if name not in config.splits:
            splits[name], sizes[name] = None, 0
            continue
        ds = builder.as_dataset(split=config.splits[name], shuffle_files=False)
        ds = ds.map(
            lambda ex: (fit_image(ex[config.image_key], size, channels), ex[config.label_key]),
            num_parallel_calls=-1,
        )
        splits[name] = ds.cache() if config.cache else ds
        sizes[name] = int(ds.cardinality())
        if name == "train":
            # Count labels without decoding a single image.
            raw = builder.as_dataset(
                split=config.splits[name],
                decoders={config.image_key: tfds.decode.SkipDecoding()},
            )
            labels = [int(ex[config.label_key]) for ex in tfds.as_numpy(raw)]
            tally = Counter(labels)
            counts = [tally.get(i, 0) for i in range(len(class_names))]
    return DataBundle(
        class_names, (*size, channels), splits, sizes, class_counts=counts, batch=image_batch
    )
