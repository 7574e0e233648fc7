"""A configurable small CNN: conv blocks with batch norm, pooling, dropout and L2 weight decay."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt

from dlcli.models.base import ModelConfig
from dlcli.models.blocks import conv_bn_act
from dlcli.models.heads import EMBEDDING_LAYER
from dlcli.registry import MODELS

Activation = Literal["relu", "gelu", "swish", "elu", "leaky_relu", "tanh"]


class SmallCNNConfig(ModelConfig):
    """`model:` for `type: small_cnn`."""

    type: Literal["small_cnn"] = "small_cnn"
    filters: list[PositiveInt] = Field([32, 64, 128], min_length=1, description="one per block")
    convs_per_block: PositiveInt = 2
    kernel_size: PositiveInt = 3
    batch_norm: bool = True
    activation: Activation = "relu"
    pool: Literal["max", "avg"] = Field("max", description="pooling after each block")
    dense: list[PositiveInt] = Field([128], description="hidden units of the head")
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="before each head layer")
    l2: float = Field(0.0, ge=0.0, description="L2 weight decay on kernels")

    heads: ClassVar[tuple[str, ...]] = ("classes", "features")
    example: ClassVar[dict[str, Any]] = {"filters": [8, 16], "dense": [16]}


@MODELS.register("small_cnn", config=SmallCNNConfig)
def build_small_cnn(config: SmallCNNConfig, *, spec: Any, head: Any) -> Any:
    """Small CNN from scratch: conv blocks, batch norm, dropout, L2."""
    import keras
    from keras import layers

    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = keras.Input(shape=spec.input_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for b, filters in enumerate(config.filters):
        for c in range(config.convs_per_block):
            x = conv_bn_act(
                x,
                filters,
                kernel_size=config.kernel_size,
                batch_norm=config.batch_norm,
                activation=config.activation,
                regularizer=reg,
                name=f"block{b + 1}_{c + 1}",
            )
        if min(x.shape[1], x.shape[2]) >= 2:
            pool = layers.MaxPooling2D if config.pool == "max" else layers.AveragePooling2D
            x = pool(name=f"block{b + 1}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    for i, units in enumerate(config.dense):
        x = layers.Dropout(config.dropout, name=f"head_dropout{i + 1}")(x)
        x = layers.Dense(
            units, activation=config.activation, kernel_regularizer=reg, name=f"head_dense{i + 1}"
        )(x)
    x = layers.Identity(name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(config.dropout, name="head_dropout")(x)
    return keras.Model(inputs, head(x, regularizer=reg), name="small_cnn")
