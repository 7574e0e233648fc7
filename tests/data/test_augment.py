from __future__ import annotations

import numpy as np
import pytest

from dlcli.data.augment import AugmentConfig, build_augmenter
from dlcli.tasks.classification import ClassificationConfig, class_weights


def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (8, 16, 16, 3)).astype("float32"), np.arange(8) % 4


def test_geometric_and_colour_augmentation_keep_shape_range_and_labels():
    config = AugmentConfig(
        flip="horizontal",
        rotation=0.1,
        zoom=0.1,
        translation=0.1,
        contrast=0.2,
        brightness=0.2,
        crop=0.8,
    )
    x, y = batch()
    images, labels = build_augmenter(config, 4, seed=1)(x, y)
    assert images.shape == x.shape
    assert float(np.min(images)) >= 0.0 and float(np.max(images)) <= 255.0
    assert not np.allclose(images.numpy(), x)
    np.testing.assert_array_equal(labels, y)


@pytest.mark.parametrize("mix", [{"mixup": 0.4}, {"cutmix": 1.0}, {"mixup": 0.4, "cutmix": 1.0}])
def test_mixing_makes_soft_labels_that_sum_to_one(mix: dict):
    x, y = batch()
    images, labels = build_augmenter(AugmentConfig(**mix), 4, seed=3)(x, y)
    labels = labels.numpy()
    assert labels.shape == (8, 4) and images.shape == x.shape
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-5)


def test_mixing_after_augmentation_layers_under_mixed_float16():
    import keras

    x, y = batch()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        images, labels = build_augmenter(AugmentConfig(translation=0.1, mixup=0.4), 4, seed=1)(x, y)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert images.shape == x.shape
    np.testing.assert_allclose(labels.numpy().sum(axis=1), 1.0, rtol=1e-3)


def test_nothing_configured_means_inactive():
    assert not AugmentConfig().active()
    assert AugmentConfig(flip="vertical").active()


def test_class_weights():
    names = ["a", "b", "c"]
    balanced = class_weights(ClassificationConfig(class_weight="balanced"), names, [10, 30, 60])
    assert balanced == pytest.approx([100 / 30, 100 / 90, 100 / 180])
    given = class_weights(ClassificationConfig(class_weight={"b": 3.0}), names, [1, 1, 1])
    assert given == [1.0, 3.0, 1.0]
    assert class_weights(ClassificationConfig(), names, [1, 1, 1]) is None
