"""Images in class subfolders: `root/<class>/<image>`, split into train/validation/test by seed."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from dlcli.config.base import ResolvedPath, StrictModel
from dlcli.data.base import DataBundle
from dlcli.data.images import IMAGE_EXTENSIONS, image_dataset
from dlcli.errors import DataError
from dlcli.registry import DATA_SOURCES


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


class ImageFolderConfig(StrictModel):
    """`data:` for `type: image_folder`."""

    type: Literal["image_folder"] = "image_folder"
    path: ResolvedPath = Field(description="folder holding one subfolder per class")
    image_size: tuple[PositiveInt, PositiveInt] = Field((224, 224), description="[height, width]")
    channels: Literal[1, 3] = 3
    split: SplitConfig = Field(default_factory=SplitConfig)
    cache: bool = Field(True, description="keep decoded images in memory after the first epoch")


def list_class_folders(root: Path) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise DataError(
            f"Image folder not found: {root}",
            hint="set `data.path` to a folder with one subfolder of images per class",
        )
    classes = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()
        )
        if files:
            classes[folder.name] = files
    if len(classes) < 2:
        raise DataError(
            f"Expected at least 2 class subfolders with images in {root}. "
            f"Received: {len(classes)} ({', '.join(classes) or 'none'}).",
            hint=f"put images ({', '.join(IMAGE_EXTENSIONS)}) in {root}/<class name>/",
        )
    return classes


def stratified_split(
    classes: dict[str, list[Path]], validation: float, test: float, seed: int
) -> dict[str, tuple[list[str], list[int]]]:
    """Per class, shuffle by seed and cut off test then validation; same seed, same split."""
    out: dict[str, tuple[list[str], list[int]]] = {
        s: ([], []) for s in ("train", "validation", "test")
    }
    for label, name in enumerate(sorted(classes)):
        files = [str(f) for f in classes[name]]
        random.Random(f"{seed}:{name}").shuffle(files)
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


@DATA_SOURCES.register("image_folder", config=ImageFolderConfig)
def image_folder(config: ImageFolderConfig, *, seed: int) -> DataBundle:
    """Images in class subfolders, split by seed (stratified)."""
    classes = list_class_folders(config.path)
    parts = stratified_split(classes, config.split.validation, config.split.test, seed)
    splits, sizes = {}, {}
    for name, (paths, labels) in parts.items():
        ds = image_dataset(paths, labels, config.image_size, config.channels)
        splits[name] = ds.cache() if config.cache else ds
        sizes[name] = len(paths)
    return DataBundle(
        class_names=sorted(classes),
        input_shape=(*config.image_size, config.channels),
        splits=splits,
        sizes=sizes,
    )
