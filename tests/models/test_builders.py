"""Every registered model builder builds, trains one CPU batch and survives a save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlcli.models import create_model
from dlcli.registry import MODELS


@pytest.mark.parametrize("name", MODELS.names())
def test_builder_builds_trains_and_reloads(name: str, tmp_path: Path):
    import keras

    config = MODELS.get(name).config()
    model = create_model(config, input_shape=(16, 16, 3), num_classes=4)
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    y = np.arange(8) % 4
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < before
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (8, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), probabilities, rtol=1e-5, atol=1e-6)


def test_small_cnn_options_shape_the_network():
    from dlcli.models.small_cnn import SmallCNNConfig

    config = SmallCNNConfig(
        filters=[4, 8, 16],
        convs_per_block=1,
        batch_norm=False,
        l2=1e-3,
        activation="gelu",
        dense=[],
    )
    model = create_model(config, input_shape=(32, 32, 1), num_classes=3)
    names = [layer.name for layer in model.layers]
    assert sum(n.endswith("_conv1") for n in names) == 3
    assert not any("_bn" in n for n in names)
    assert model.losses  # L2 on the kernels
    assert model.output_shape == (None, 3)
