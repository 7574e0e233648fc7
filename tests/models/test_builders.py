"""Every registered model builder builds, trains one CPU batch and survives a save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlcli.models import create_model
from dlcli.registry import MODELS

# The smallest useful config of every builder; a new builder without one fails the test below.
EXAMPLES: dict[str, dict] = {
    "small_cnn": {"filters": [8, 16]},
    "transfer": {
        "backbone": "MobileNet",
        "weights": None,
        "backbone_args": {"alpha": 0.25},
        "freeze_backbone": False,
    },
}


@pytest.mark.parametrize("name", MODELS.names())
def test_builder_builds_trains_and_reloads(name: str, tmp_path: Path):
    from dlcli.models.layers import load_keras_model

    assert name in EXAMPLES, f"add an example config for the `{name}` builder"
    config = MODELS.get(name).config(**EXAMPLES[name])
    model = create_model(config, input_shape=(32, 32, 3), num_classes=4)
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 4
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, epochs=2, verbose=0).history["loss"]
    assert all(np.isfinite(history))
    after = [w.numpy() for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (8, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    again = load_keras_model(tmp_path / "m.keras")
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
