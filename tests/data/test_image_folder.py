from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dlcli.data.base import SplitConfig, stratified_split
from dlcli.data.image_folder import ImageFolderConfig, image_folder, list_class_folders
from dlcli.errors import DataError


def items_of(root: Path) -> list[tuple[str, int]]:
    classes = list_class_folders(root)
    names = sorted(classes)
    return [(str(f), names.index(c)) for c in names for f in classes[c]]


def test_split_is_stratified_disjoint_and_fixed_by_seed(small_digits: Path):
    items = items_of(small_digits)
    a = stratified_split(items, 0.2, 0.2, seed=1)
    b = stratified_split(items, 0.2, 0.2, seed=1)
    c = stratified_split(items, 0.2, 0.2, seed=2)
    assert a == b
    assert a["test"][0] != c["test"][0]
    files = [set(a[s][0]) for s in ("train", "validation", "test")]
    assert not (files[0] & files[1]) and not (files[0] & files[2]) and not (files[1] & files[2])
    assert sum(len(f) for f in files) == 300
    for split, expected in (("train", 18), ("validation", 6), ("test", 6)):
        labels = a[split][1]
        assert all(labels.count(k) == expected for k in range(10)), split


def test_dataset_decodes_real_images(small_digits: Path):
    config = ImageFolderConfig(path=small_digits, image_size=(12, 10), channels=1)
    bundle = image_folder(config, seed=0)
    assert bundle.class_names == [str(i) for i in range(10)]
    assert bundle.input_shape == (12, 10, 1)
    assert bundle.sizes == {"train": 210, "validation": 30, "test": 60}
    assert bundle.class_counts == [21] * 10
    image, label = next(iter(bundle.split("train")))
    assert image.shape == (12, 10, 1) and image.dtype.name == "uint8"  # as cached: 1 byte/pixel
    assert 0 <= int(label) < 10
    images, _ = next(iter(bundle.batch(bundle.split("train"), 4, False)))
    assert images.shape == (4, 12, 10, 1) and images.dtype.name == "float32"  # what models take
    assert float(images.numpy().max()) > 100  # raw 0-255 pixels: the model normalises


def test_rgb_channels_from_grayscale(small_digits: Path):
    config = ImageFolderConfig(path=small_digits, image_size=(8, 8), channels=3)
    image, _ = next(iter(image_folder(config, seed=0).split("test")))
    assert image.shape == (8, 8, 3)


def test_given_split_folders_are_used_as_they_are(small_digits: Path, tmp_path: Path):
    for split, start, stop in (("train", 0, 20), ("val", 20, 25), ("test", 25, 30)):
        for label in ("0", "1", "2"):
            target = tmp_path / split / label
            target.mkdir(parents=True)
            for f in sorted((small_digits / label).glob("*.png"))[start:stop]:
                shutil.copy(f, target)
    config = ImageFolderConfig(path=tmp_path, image_size=(8, 8), channels=1)
    bundle = image_folder(config, seed=0)
    assert bundle.sizes == {"train": 60, "validation": 15, "test": 15}
    assert bundle.class_names == ["0", "1", "2"]


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(DataError, match="Image folder not found"):
        list_class_folders(tmp_path / "nope")


def test_one_class_is_not_enough(tmp_path: Path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="at least 2 class subfolders") as info:
        list_class_folders(tmp_path)
    assert info.value.exit_code == 2


def test_empty_split_is_reported(small_digits: Path):
    config = ImageFolderConfig(
        path=small_digits, image_size=(8, 8), channels=1, split=SplitConfig(validation=0, test=0.2)
    )
    with pytest.raises(DataError, match="`validation` split is empty"):
        image_folder(config, seed=0).split("validation")


def test_bad_files_are_skipped_and_listed_or_fail(small_digits: Path, tmp_path: Path, caplog):
    root = tmp_path / "data"
    shutil.copytree(small_digits, root)
    (root / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "4" / "notes.jpg").write_text("hello")
    strict = ImageFolderConfig(path=root, image_size=(8, 8), channels=1)
    with pytest.raises(DataError, match=r"Cannot read image .*(broken.png|notes.jpg)"):
        image_folder(strict, seed=0)
    lenient = strict.model_copy(update={"on_bad_file": "skip"})
    with caplog.at_level("WARNING", logger="dlcli"):
        bundle = image_folder(lenient, seed=0)
    assert sorted(Path(p).name for p, _ in bundle.skipped) == ["broken.png", "notes.jpg"]
    assert sum(bundle.sizes.values()) == 300
    assert "skipped 2 unreadable image(s)" in caplog.text and "broken.png" in caplog.text
