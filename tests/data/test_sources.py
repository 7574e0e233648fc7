"""Manifests, NumPy files and TFDS datasets, on real images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dlcli.config.loader import load_pipeline_text
from dlcli.data import create_dataset
from dlcli.errors import DataError


def load_data(section: str, base: Path) -> object:
    text = f"name: t\nmodel: {{type: small_cnn}}\n{section}"
    return load_pipeline_text(text, source=base / "p.yaml").config


def test_csv_manifest_with_relative_paths_and_split_column(small_digits: Path, tmp_path: Path):
    rows = []
    for label in ("1", "7"):
        for i, f in enumerate(sorted((small_digits / label).glob("*.png"))[:10]):
            split = "train" if i < 6 else ("val" if i < 8 else "test")
            rows.append(
                {
                    "path": str(Path("..") / f.relative_to(small_digits.parent)),
                    "label": f"digit{label}",
                    "split": split,
                }
            )
    folder = small_digits.parent / "manifests"
    folder.mkdir(exist_ok=True)
    with (folder / "m.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    cfg = load_data("data: {type: manifest, path: m.csv, image_size: [8, 8], channels: 1}", folder)
    bundle = create_dataset(cfg.data, seed=0)
    assert bundle.class_names == ["digit1", "digit7"]
    assert bundle.sizes == {"train": 12, "validation": 4, "test": 4}
    image, _ = next(iter(bundle.split("test")))
    assert image.shape == (8, 8, 1)


def test_jsonl_manifest_split_by_seed(small_digits: Path, tmp_path: Path):
    lines = [
        json.dumps({"file": str(f), "class": label})
        for label in ("2", "5")
        for f in sorted((small_digits / label).glob("*.png"))[:10]
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    cfg = load_data(
        "data: {type: manifest, path: m.jsonl, path_column: file, "
        "label_column: class, image_size: [8, 8], channels: 1, "
        "split: {validation: 0.2, test: 0.2}}",
        tmp_path,
    )
    bundle = create_dataset(cfg.data, seed=0)
    assert bundle.sizes == {"train": 12, "validation": 4, "test": 4}


def test_manifest_errors_name_the_line(tmp_path: Path):
    (tmp_path / "m.csv").write_text("path,label\na.png,x\n,y\n")
    cfg = load_data("data: {type: manifest, path: m.csv, image_size: [8, 8]}", tmp_path)
    with pytest.raises(DataError, match=r"m.csv:3: missing path"):
        create_dataset(cfg.data, seed=0)


def test_npz_with_given_splits_and_class_names(tmp_path: Path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x_train=rng.integers(0, 255, (20, 6, 6), np.uint8),
        y_train=np.arange(20) % 2,
        x_test=rng.integers(0, 255, (4, 6, 6), np.uint8),
        y_test=np.array([0, 1, 0, 1]),
        class_names=np.array(["cat", "dog"]),
    )
    cfg = load_data("data: {type: npz, path: d.npz, channels: 3}", tmp_path)
    bundle = create_dataset(cfg.data, seed=0)
    assert bundle.class_names == ["cat", "dog"]
    assert bundle.sizes == {"train": 20, "validation": 0, "test": 4}
    assert bundle.input_shape == (6, 6, 3)
    image, label = next(iter(bundle.split("train")))
    assert image.shape == (6, 6, 3) and int(label) == 0


def test_npz_plain_x_y_is_split_by_seed(tmp_path: Path):
    np.savez(tmp_path / "d.npz", x=np.zeros((50, 4, 4, 1), np.float32), y=np.arange(50) % 5)
    cfg = load_data("data: {type: npz, path: d.npz, image_size: [8, 8]}", tmp_path)
    bundle = create_dataset(cfg.data, seed=0)
    assert bundle.sizes == {"train": 35, "validation": 5, "test": 10}
    assert bundle.input_shape == (8, 8, 1)


def test_npz_without_known_arrays(tmp_path: Path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 2)))
    cfg = load_data("data: {type: npz, path: d.npz}", tmp_path)
    with pytest.raises(DataError, match="Expected x_train and y_train"):
        create_dataset(cfg.data, seed=0)


def test_tfds_prepares_a_local_builder_and_loads_offline(local_tfds_builder: str, tmp_path: Path):
    section = (
        f"data: {{type: tfds, name: {local_tfds_builder}, data_dir: tfds, "
        "image_size: [16, 16], channels: 3, download: false, "
        "splits: {train: 'train[:80%]', validation: 'train[80%:]', test: test}}"
    )
    cfg = load_data(section, tmp_path)
    with pytest.raises(DataError, match="not prepared"):
        create_dataset(cfg.data, seed=0)
    prepare = cfg.model_copy(update={"data": cfg.data.model_copy(update={"download": True})})
    bundle = create_dataset(prepare.data, seed=0)  # prepares from local files only
    assert bundle.sizes == {"train": 96, "validation": 24, "test": 30}
    again = create_dataset(cfg.data, seed=0)  # now offline, from data_dir
    assert again.class_names == [f"d{i}" for i in range(10)]
    assert sum(again.class_counts) == 96
    image, label = next(iter(again.split("test")))
    assert image.shape == (16, 16, 3) and 0 <= int(label) < 10


def test_manifest_split_by_group_keeps_each_group_in_one_split(small_digits: Path, tmp_path: Path):
    """A speaker or a patient is never in two splits: `data.group_column`."""
    rows = ["path,label,speaker"]
    for label in range(10):
        for i, image in enumerate(sorted((small_digits / str(label)).glob("*.png"))):
            rows.append(f"{image},{label},s{i % 6}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    cfg = load_data(
        "data: {type: manifest, path: m.csv, image_size: [8, 8], channels: 1, "
        "group_column: speaker, split: {validation: 0.15, test: 0.3}}",
        tmp_path,
    )
    from dlcli.data.base import grouped_split
    from dlcli.data.manifest import read_manifest

    manifest = read_manifest(cfg.data)
    speaker = {row["path"]: row["speaker"] for row in manifest}
    items = [(row["path"], int(row["label"])) for row in manifest]
    parts = grouped_split(items, [speaker[p] for p, _ in items], 0.15, 0.3, seed=3)
    groups = {split: {speaker[p] for p in paths} for split, (paths, _) in parts.items()}
    assert all(groups[split] for split in groups)  # each split has whole speakers
    assert not (groups["train"] & groups["test"] or groups["train"] & groups["validation"])
    assert not groups["validation"] & groups["test"]
    assert parts == grouped_split(items, [speaker[p] for p, _ in items], 0.15, 0.3, seed=3)
    bundle = create_dataset(cfg.data, seed=3)
    assert sum(bundle.sizes.values()) == 300 and bundle.sizes["test"] == 100
