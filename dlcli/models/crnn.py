"""Convolutional recurrent audio classifiers: 2-D conv blocks over the spectrogram (local
time-frequency patterns), then recurrent layers over the remaining frames, then pooling."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt, model_validator

from dlcli.models.base import ModelConfig
from dlcli.models.blocks import conv_bn_act
from dlcli.models.frontend import FrontEndConfig, audio_input
from dlcli.models.rnn import Cell, Pooling, recurrent_model
from dlcli.registry import MODELS


class CRNNConfig(ModelConfig):
    """`model:` for `type: crnn`."""

    type: Literal["crnn"] = "crnn"
    frontend: FrontEndConfig = Field(default_factory=FrontEndConfig)
    filters: list[PositiveInt] = Field([32, 64, 64], min_length=1, description="one per block")
    kernel_size: PositiveInt = 3
    pool: tuple[PositiveInt, PositiveInt] | list[tuple[PositiveInt, PositiveInt]] = Field(
        (2, 2),
        description="[time, frequency] max pooling after each block, while the axis is 2+; or "
        "one pair per block: a CTC model keeps its frames, e.g. [[2, 2], [1, 2], [1, 2]]",
    )
    batch_norm: bool = True
    cell: Cell = "gru"
    units: list[PositiveInt] = Field([64], min_length=1, description="recurrent layers")
    bidirectional: bool = True
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="after the convs and before the head")
    pooling: Pooling = Field("attention", description="over time: last state, mean, attention")
    dense: list[PositiveInt] = Field(default_factory=list, description="hidden head layers")
    l2: float = Field(0.0, ge=0.0, description="L2 weight decay on kernels")

    @model_validator(mode="after")
    def _one_pool_per_block(self) -> CRNNConfig:
        if isinstance(self.pool, list) and len(self.pool) != len(self.filters):
            raise ValueError(
                f"pool has {len(self.pool)} pairs for {len(self.filters)} blocks (filters). "
                "Expected one (time, frequency) pair, or one per block"
            )
        return self

    def pools(self) -> list[tuple[int, int]]:
        """The [time, frequency] pooling after each block."""
        return list(self.pool) if isinstance(self.pool, list) else [self.pool] * len(self.filters)

    modality: ClassVar[str] = "audio"
    heads: ClassVar[tuple[str, ...]] = ("classes", "features", "frames")
    example: ClassVar[dict[str, Any]] = {
        "filters": [4, 8],
        "units": [8],
        "frontend": {"backend": "librosa", "n_mels": 16},
    }


@MODELS.register("crnn", config=CRNNConfig)
def build_crnn(config: CRNNConfig, *, spec: Any, head: Any) -> Any:
    """Conv blocks over log-mel, then a bidirectional GRU over time, then attention pooling."""
    import keras
    from keras import layers

    from dlcli.layers.sequence import ZeroPaddedFrames

    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = audio_input(spec)
    x = config.frontend.build(inputs, spec.sample_rate)
    x = layers.Reshape((-1, x.shape[2], 1), name="add_channel")(x)
    whole = inputs.shape[1] is None  # whole utterances, zero-padded in batches
    time_pools: list[int] = []
    for b, (filters, wanted) in enumerate(zip(config.filters, config.pools(), strict=True)):
        x = conv_bn_act(
            x,
            filters,
            kernel_size=config.kernel_size,
            batch_norm=config.batch_norm,
            activation="relu",
            regularizer=reg,
            name=f"block{b + 1}",
        )
        # Pool an axis only while it has something left to pool: short clips keep their frames
        # (an axis of unknown length, whole utterances, is pooled).
        pool = tuple(
            p if size is None or size >= p else 1
            for p, size in zip(wanted, x.shape[1:3], strict=True)
        )
        if whole:  # padded frames stay zeros and the last partial window counts, as when alone
            framing = config.frontend.framing(spec.sample_rate, time_pools)
            x = ZeroPaddedFrames(framing, name=f"block{b + 1}_padding")(inputs, x)
        if pool != (1, 1):
            padding = "same" if whole else "valid"
            x = layers.MaxPooling2D(pool, padding=padding, name=f"block{b + 1}_pool")(x)
            time_pools.append(pool[0])
    x = layers.Reshape((-1, x.shape[2] * x.shape[3]), name="to_sequence")(x)
    if config.dropout:
        x = layers.Dropout(config.dropout, name="conv_dropout")(x)

    framing = config.frontend.framing(spec.sample_rate, time_pools)
    return recurrent_model(config, inputs, x, head, framing=framing, regularizer=reg, name="crnn")
