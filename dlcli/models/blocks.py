"""Layer blocks more than one builder uses."""

from __future__ import annotations

from typing import Any


def conv_bn_act(
    x: Any,
    filters: int,
    *,
    kernel_size: int,
    batch_norm: bool,
    activation: str,
    regularizer: Any,
    name: str,
    strides: int = 1,
    transpose: bool = False,
) -> Any:
    """A conv (transposed with `transpose`), optional batch norm, activation: layers named
    `{name}_conv`, `{name}_bn`, `{name}_act`."""
    from keras import layers

    conv = layers.Conv2DTranspose if transpose else layers.Conv2D
    x = conv(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=not batch_norm,
        kernel_regularizer=regularizer,
        name=f"{name}_conv",
    )(x)
    if batch_norm:
        # momentum 0.9, not Keras's 0.99: with a few hundred steps the moving statistics must
        # converge, or evaluation sees a different network than training did.
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_act")(x)
