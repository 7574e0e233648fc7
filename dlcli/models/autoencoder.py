"""Autoencoders: a convolutional one (stride-2 conv blocks, mirrored with transposed convs) and
a dense one (an MLP through a small latent vector). Both carry a `reconstruction` head (raw
0-255 pixels back) or a `features` head (the bottleneck, named `embedding`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt

from dlcli.models.base import ModelConfig
from dlcli.models.blocks import conv_bn_act
from dlcli.models.heads import EMBEDDING_LAYER
from dlcli.registry import MODELS

Activation = Literal["relu", "gelu", "swish", "elu", "leaky_relu", "tanh"]


class ConvAutoencoderConfig(ModelConfig):
    """`model:` for `type: conv_autoencoder`."""

    type: Literal["conv_autoencoder"] = "conv_autoencoder"
    filters: list[PositiveInt] = Field(
        [32, 64], min_length=1, description="one per block; each block halves height and width"
    )
    convs_per_block: PositiveInt = Field(1, description="the first conv of a block has stride 2")
    kernel_size: PositiveInt = 3
    batch_norm: bool = True
    activation: Activation = "relu"
    latent: PositiveInt | None = Field(
        64, description="units of a dense bottleneck; null keeps a convolutional bottleneck"
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="before the bottleneck")
    l2: float = Field(0.0, ge=0.0, description="L2 weight decay on kernels")

    heads: ClassVar[tuple[str, ...]] = ("reconstruction", "features")
    example: ClassVar[dict[str, Any]] = {"filters": [8, 16], "latent": 16}


class DenseAutoencoderConfig(ModelConfig):
    """`model:` for `type: dense_autoencoder`."""

    type: Literal["dense_autoencoder"] = "dense_autoencoder"
    hidden: list[PositiveInt] = Field([256], description="encoder units; the decoder mirrors them")
    latent: PositiveInt = Field(32, description="units of the bottleneck (the embedding)")
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="before each encoder layer")
    l2: float = Field(0.0, ge=0.0, description="L2 weight decay on kernels")

    heads: ClassVar[tuple[str, ...]] = ("reconstruction", "features")
    example: ClassVar[dict[str, Any]] = {"hidden": [32], "latent": 8}


def conv_unit(x: Any, filters: int, name: str, config: Any, reg: Any, **kwargs: Any) -> Any:
    return conv_bn_act(
        x,
        filters,
        kernel_size=config.kernel_size,
        batch_norm=config.batch_norm,
        activation=config.activation,
        regularizer=reg,
        name=name,
        **kwargs,
    )


def _bottleneck(x: Any, config: ConvAutoencoderConfig, reg: Any) -> tuple[Any, Any]:
    """(the embedding, the map the decoder starts from): a dense latent vector, or with
    `latent: null` the bottleneck map itself."""
    from keras import layers

    if config.dropout:
        x = layers.Dropout(config.dropout, name="bottleneck_dropout")(x)
    if config.latent is None:
        # The embedding is the map itself, and decoding goes on from it: a layer off the path
        # to the output would be dropped from the model (`dlcli embed` averages a map over
        # space; a `features` head gets it pooled).
        embedding = layers.Identity(name=EMBEDDING_LAYER)(x)
        return embedding, embedding
    shape = tuple(int(d) for d in x.shape[1:])
    flat = layers.Flatten(name="bottleneck_flatten")(x)
    z = layers.Dense(config.latent, kernel_regularizer=reg, name="latent")(flat)
    embedding = layers.Identity(name=EMBEDDING_LAYER)(z)
    y = layers.Dense(
        shape[0] * shape[1] * shape[2],
        activation=config.activation,
        kernel_regularizer=reg,
        name="latent_project",
    )(embedding)
    return embedding, layers.Reshape(shape, name="latent_reshape")(y)


@MODELS.register("conv_autoencoder", config=ConvAutoencoderConfig)
def build_conv_autoencoder(config: ConvAutoencoderConfig, *, spec: Any, head: Any) -> Any:
    """Convolutional autoencoder: stride-2 conv blocks down, transposed convs back up."""
    import keras
    from keras import layers

    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = keras.Input(shape=spec.input_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for b, filters in enumerate(config.filters, start=1):
        for c in range(1, config.convs_per_block + 1):
            x = conv_unit(x, filters, f"down{b}_{c}", config, reg, strides=2 if c == 1 else 1)
    embedding, x = _bottleneck(x, config, reg)
    if head.kind == "features":
        if config.latent is None:
            embedding = layers.GlobalAveragePooling2D(name="embedding_gap")(embedding)
        return keras.Model(inputs, head(embedding, regularizer=reg), name="conv_autoencoder")
    for b, filters in reversed(list(enumerate(config.filters, start=1))):
        x = conv_unit(x, filters, f"up{b}_1", config, reg, strides=2, transpose=True)
        for c in range(2, config.convs_per_block + 1):
            x = conv_unit(x, filters, f"up{b}_{c}", config, reg)
    x = to_input_size(x, spec.input_shape)
    return keras.Model(inputs, head(x, regularizer=reg), name="conv_autoencoder")


def to_input_size(x: Any, input_shape: tuple[int, ...]) -> Any:
    """Halving odd sizes rounds up, so the decoder may overshoot (100 -> 13 -> 104): resize."""
    from keras import layers

    height, width = int(input_shape[0]), int(input_shape[1])
    if (int(x.shape[1]), int(x.shape[2])) == (height, width):
        return x
    return layers.Resizing(height, width, name="resize_to_input")(x)


@MODELS.register("dense_autoencoder", config=DenseAutoencoderConfig)
def build_dense_autoencoder(config: DenseAutoencoderConfig, *, spec: Any, head: Any) -> Any:
    """Dense autoencoder: flattened pixels through a small latent vector and back."""
    import keras
    from keras import layers

    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    height, width = int(spec.input_shape[0]), int(spec.input_shape[1])
    inputs = keras.Input(shape=spec.input_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(config.hidden, start=1):
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"enc_dropout{i}")(x)
        x = layers.Dense(
            units, activation=config.activation, kernel_regularizer=reg, name=f"enc_dense{i}"
        )(x)
    x = layers.Dense(config.latent, kernel_regularizer=reg, name="latent")(x)
    embedding = layers.Identity(name=EMBEDDING_LAYER)(x)
    if head.kind == "features":
        return keras.Model(inputs, head(embedding, regularizer=reg), name="dense_autoencoder")
    x = embedding
    for i, units in reversed(list(enumerate(config.hidden, start=1))):
        x = layers.Dense(
            units, activation=config.activation, kernel_regularizer=reg, name=f"dec_dense{i}"
        )(x)
    x = layers.Dense(
        height * width * 8,
        activation=config.activation,
        kernel_regularizer=reg,
        name="dec_project",
    )(x)
    x = layers.Reshape((height, width, 8), name="dec_reshape")(x)
    return keras.Model(inputs, head(x, regularizer=reg), name="dense_autoencoder")
