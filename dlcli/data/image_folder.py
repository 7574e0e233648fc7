"""Images in class subfolders (`root/<class>/*`), or already split (`root/{train,val,test}/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from dlcli.config.base import ResolvedPath
from dlcli.data.base import DataBundle, ImageOptions, SplitConfig, image_bundle, stratified_split
from dlcli.data.images import IMAGE_EXTENSIONS
from dlcli.errors import DataError
from dlcli.registry import DATA_SOURCES

SPLIT_FOLDERS = {
    "train": ("train",),
    "validation": ("val", "validation", "valid"),
    "test": ("test",),
}


class ImageFolderConfig(ImageOptions):
    """`data:` for `type: image_folder`."""

    type: Literal["image_folder"] = "image_folder"
    path: ResolvedPath = Field(description="folder of class subfolders, or of train/val/test")
    split: SplitConfig = Field(
        default_factory=SplitConfig, description="used when the folder has no train/ subfolder"
    )

    # `{digits}` and the like are filled in by the registry tests (tests/test_components.py).
    example: ClassVar[dict[str, Any]] = {"path": "{digits}", "image_size": [8, 8], "channels": 1}


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


def given_split_folders(root: Path) -> dict[str, Path] | None:
    """`root/train/` (+ `val/` or `validation/`, `test/`) when the user split the data already."""
    if not (root / "train").is_dir():
        return None
    found = {}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    return found


@DATA_SOURCES.register("image_folder", config=ImageFolderConfig)
def image_folder(config: ImageFolderConfig, *, seed: int) -> DataBundle:
    """Images in class subfolders; given train/val/test folders or a stratified split by seed."""
    given = given_split_folders(config.path)
    if given:
        per_split = {split: list_class_folders(folder) for split, folder in given.items()}
        class_names = sorted(per_split["train"])
        parts = {}
        for split, classes in per_split.items():
            unknown = sorted(set(classes) - set(class_names))
            if unknown:
                raise DataError(
                    f"{given[split]} has classes that train/ lacks: {', '.join(unknown)}."
                )
            pairs = [(str(f), class_names.index(c)) for c in classes for f in classes[c]]
            parts[split] = ([p for p, _ in pairs], [y for _, y in pairs])
        return image_bundle(parts, class_names, config)
    classes = list_class_folders(config.path)
    class_names = sorted(classes)
    items = [(str(f), class_names.index(c)) for c in class_names for f in classes[c]]
    parts = stratified_split(items, config.split.validation, config.split.test, seed)
    return image_bundle(parts, class_names, config)
