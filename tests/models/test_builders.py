"""Builder options shape the network (every builder with every task: tests/test_components.py)."""

from __future__ import annotations

from dlcli.data.base import DataSpec
from dlcli.models import create_model
from dlcli.models.heads import ClassesHead


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
    spec = DataSpec(input_shape=(32, 32, 1), class_names=["a", "b", "c"])
    model = create_model(config, spec, head=ClassesHead(3))
    names = [layer.name for layer in model.layers]
    assert sum(n.endswith("_1_conv") for n in names) == 3
    assert not any("_bn" in n for n in names)
    assert model.losses  # L2 on the kernels
    assert model.output_shape == (None, 3)
