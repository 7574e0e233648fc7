"""DS-CNN, the depthwise-separable keyword-spotting CNN of "Hello Edge" (Zhang et al. 2017,
arXiv:1711.07128): one strided conv over the spectrogram, then blocks of a 3x3 depthwise conv
and a 1x1 pointwise conv, each with batch norm and ReLU, then global average pooling. The
defaults are the paper's DS-CNN-S (64 channels, 4 blocks)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt

from dlcli.models.base import ModelConfig
from dlcli.models.blocks import conv_bn_act
from dlcli.models.frontend import FrontEndConfig, audio_input, dense_head
from dlcli.registry import MODELS


class DSCNNConfig(ModelConfig):
    """`model:` for `type: ds_cnn`."""

    type: Literal["ds_cnn"] = "ds_cnn"
    frontend: FrontEndConfig = Field(default_factory=FrontEndConfig)
    filters: PositiveInt = Field(64, description="channels of every layer (S: 64, M: 172, L: 276)")
    blocks: PositiveInt = Field(4, description="depthwise-separable blocks (S, M: 4; L: 5)")
    first_kernel: tuple[PositiveInt, PositiveInt] = Field(
        (10, 4), description="[time, frequency] kernel of the first, regular conv"
    )
    first_strides: tuple[PositiveInt, PositiveInt] = Field((2, 2), description="its strides")
    kernel_size: PositiveInt = Field(3, description="depthwise kernel")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="before the head")
    dense: list[PositiveInt] = Field(default_factory=list, description="hidden head layers")
    l2: float = Field(0.0, ge=0.0, description="L2 weight decay on kernels")

    modality: ClassVar[str] = "audio"
    heads: ClassVar[tuple[str, ...]] = ("classes", "features")
    example: ClassVar[dict[str, Any]] = {
        "filters": 8,
        "blocks": 2,
        "frontend": {"type": "stft", "window_ms": 16, "hop_ms": 16},
    }


@MODELS.register("ds_cnn", config=DSCNNConfig)
def build_ds_cnn(config: DSCNNConfig, *, spec: Any, head: Any) -> Any:
    """Depthwise-separable CNN for keyword spotting (Hello Edge's DS-CNN)."""
    import keras
    from keras import layers

    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = audio_input(spec)
    x = config.frontend.build(inputs, spec.sample_rate)
    x = layers.Reshape((*x.shape[1:], 1), name="add_channel")(x)
    x = layers.Conv2D(
        config.filters,
        config.first_kernel,
        strides=config.first_strides,
        padding="same",
        use_bias=False,
        kernel_regularizer=reg,
        name="stem_conv",
    )(x)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_act")(x)
    for b in range(config.blocks):
        x = layers.DepthwiseConv2D(
            config.kernel_size,
            padding="same",
            use_bias=False,
            depthwise_regularizer=reg,
            name=f"ds{b + 1}_depthwise",
        )(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"ds{b + 1}_depthwise_bn")(x)
        x = layers.Activation("relu", name=f"ds{b + 1}_depthwise_act")(x)
        x = conv_bn_act(
            x,
            config.filters,
            kernel_size=1,
            batch_norm=True,
            activation="relu",
            regularizer=reg,
            name=f"ds{b + 1}_pointwise",
        )
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = dense_head(x, config.dense, config.dropout, reg)
    return keras.Model(inputs, head(x, regularizer=reg), name="ds_cnn")
