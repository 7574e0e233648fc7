"""Decoded images are kept as uint8, in memory, on a disk cache shared by runs, or not at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlcli.data import cache
from dlcli.data.image_folder import ImageFolderConfig, image_folder
from tests.conftest import REPO


def images_of(bundle, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    pairs = list(bundle.split(split).as_numpy_iterator())
    return np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs])


def bundle_of(root: Path, mode: str, cache_dir: Path, **extra):
    config = ImageFolderConfig(
        path=root, image_size=(12, 10), channels=1, cache=mode, cache_dir=cache_dir, **extra
    )
    return image_folder(config, seed=0)


def caches_in(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir()) if cache_dir.is_dir() else []


def test_every_cache_mode_gives_the_same_uint8_images(small_digits: Path, tmp_path: Path):
    reference = images_of(bundle_of(small_digits, "none", tmp_path / "c"))
    assert reference[0].dtype == np.uint8 and reference[0].shape == (210, 12, 10, 1)
    for mode in ("memory", "disk"):
        images, labels = images_of(bundle_of(small_digits, mode, tmp_path / "c"))
        np.testing.assert_array_equal(images, reference[0], err_msg=mode)
        np.testing.assert_array_equal(labels, reference[1], err_msg=mode)
    assert len(caches_in(tmp_path / "c")) == 3  # train, validation, test


def test_disk_cache_is_reused_and_keyed_by_files_and_settings(
    small_digits: Path, tmp_path: Path, caplog
):
    store = tmp_path / "cache"
    first = images_of(bundle_of(small_digits, "disk", store))
    built = caches_in(store)  # one folder per split, no temporary one left behind
    assert len(built) == 3 and not any(p.name.startswith(".") for p in built)
    assert all(json.loads((p / "scan.json").read_text())["bad"] == [] for p in built)
    with caplog.at_level("INFO", logger="dlcli"):
        again = images_of(bundle_of(small_digits, "disk", store))
    assert "from the disk cache" in caplog.text
    np.testing.assert_array_equal(first[0], again[0])
    assert caches_in(store) == built

    config = ImageFolderConfig(
        path=small_digits, image_size=(8, 8), channels=1, cache="disk", cache_dir=store
    )
    images_of(image_folder(config, seed=0))  # another size: other caches
    assert len(caches_in(store)) == 6
    changed = sorted(small_digits.rglob("*.png"))[0]
    changed.write_bytes(changed.read_bytes())  # same pixels, new modification time
    images_of(bundle_of(small_digits, "disk", store))
    assert len(caches_in(store)) == 7  # only that file's split is decoded again


def test_auto_picks_memory_when_it_fits_else_disk(
    small_digits: Path, tmp_path: Path, monkeypatch, caplog
):
    with caplog.at_level("INFO", logger="dlcli"):
        bundle_of(small_digits, "auto", tmp_path / "c")
    assert "cache memory: 36 kB of decoded images, within 25% of" in caplog.text
    assert not (tmp_path / "c").exists()
    caplog.clear()
    monkeypatch.setattr(cache, "memory_limit", lambda: 100_000)  # 300 images of 120 B: 36 kB
    with caplog.at_level("INFO", logger="dlcli"):
        images_of(bundle_of(small_digits, "auto", tmp_path / "c"))
    assert "cache disk: 36 kB of decoded images, over 25% of 100 kB RAM" in caplog.text
    assert len(caches_in(tmp_path / "c")) == 3


def test_cache_true_and_false_from_older_pipelines_still_read(tmp_path: Path):
    assert ImageFolderConfig(path=tmp_path, cache=True).cache == "auto"
    assert ImageFolderConfig(path=tmp_path, cache=False).cache == "none"


BUILD = """
import sys
import numpy as np
from dlcli.data.image_folder import ImageFolderConfig, image_folder
config = ImageFolderConfig(path=sys.argv[1], image_size=(12, 10), channels=1, cache="disk",
                           cache_dir=sys.argv[2])
pairs = list(image_folder(config, seed=0).split("train").as_numpy_iterator())
np.save(sys.argv[3], np.stack([x for x, _ in pairs]))
"""


def test_two_runs_building_one_disk_cache_at_once(small_digits: Path, tmp_path: Path):
    store = tmp_path / "cache"
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD, str(small_digits), str(store), str(tmp_path / f"{i}")],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    built = caches_in(store)  # both finished; one cache per split, no half-built copy left
    assert len(built) == 3 and not any(p.name.startswith(".") for p in built)
    np.testing.assert_array_equal(np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy"))
    assert np.load(tmp_path / "0.npy").shape == (210, 12, 10, 1)


@pytest.mark.parametrize("limit", ["max\n", "2147483648\n"])
def test_memory_limit_reads_a_container_limit(monkeypatch, limit: str):
    real = Path.read_text

    def read_text(self: Path, *args, **kwargs) -> str:
        if str(self) == "/sys/fs/cgroup/memory.max":
            return limit
        if str(self).startswith("/sys/fs/cgroup/memory/"):
            raise OSError("no cgroup v1 here")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    if limit.strip() == "max":
        assert cache.memory_limit() > 2**30  # no container limit: the machine's RAM
    else:
        assert cache.memory_limit() == 2**31
