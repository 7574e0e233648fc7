"""Recurrent audio classifiers: a front end (log-mel by default), a stack of LSTM or GRU layers
over the frames, and pooling over time (the last state, the mean, or attention)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt

from dlcli.models.base import ModelConfig
from dlcli.models.frontend import FrontEndConfig, audio_input, dense_head, pool_over_time
from dlcli.models.heads import EMBEDDING_LAYER
from dlcli.registry import MODELS

Cell = Literal["lstm", "gru"]
Pooling = Literal["last", "mean", "attention"]


class RNNConfig(ModelConfig):
    """`model:` for `type: rnn`."""

    type: Literal["rnn"] = "rnn"
    frontend: FrontEndConfig = Field(default_factory=FrontEndConfig)
    cell: Cell = "lstm"
    units: list[PositiveInt] = Field([128, 128], min_length=1, description="one per layer")
    bidirectional: bool = True
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="between layers and before the head")
    pooling: Pooling = Field(
        "attention", description="over time: last state, mean, or attention-weighted mean"
    )
    dense: list[PositiveInt] = Field(default_factory=list, description="hidden head layers")
    l2: float = Field(0.0, ge=0.0, description="L2 weight decay on kernels")

    modality: ClassVar[str] = "audio"
    heads: ClassVar[tuple[str, ...]] = ("classes", "features", "frames")
    example: ClassVar[dict[str, Any]] = {
        "cell": "gru",
        "units": [8, 8],
        "frontend": {"type": "mfcc", "spec_augment": {}},
    }


def recurrent_stack(
    x: Any,
    *,
    cell: str,
    units: list[int],
    bidirectional: bool,
    dropout: float,
    pooling: str,
    regularizer: Any,
    mask: Any = None,
) -> Any:
    """Recurrent layers over `[batch, frames, features]`, pooled to `[batch, features]`.
    `last` is the final state (both directions' with `bidirectional`); `none` keeps every
    frame (a per-frame head). `mask` (`[batch, frames]`, True on audio) keeps batch padding out
    of the recurrence: the backward direction starts at each utterance's own end."""
    from keras import layers

    rnn = layers.LSTM if cell == "lstm" else layers.GRU
    for i, size in enumerate(units):
        sequences = i < len(units) - 1 or pooling != "last"
        layer = rnn(
            size, return_sequences=sequences, kernel_regularizer=regularizer, name=f"{cell}{i + 1}"
        )
        if bidirectional:
            layer = layers.Bidirectional(layer, name=f"bi{cell}{i + 1}")
        x = layer(x) if mask is None else layer(x, mask=mask)
        if i < len(units) - 1 and dropout:
            x = layers.Dropout(dropout, name=f"{cell}{i + 1}_dropout")(x)
    if pooling in ("last", "none"):
        return x
    return pool_over_time(x, pooling, name=f"{pooling}_pool")


def recurrent_model(
    config: Any,
    inputs: Any,
    x: Any,
    head: Any,
    *,
    framing: dict[str, Any],
    regularizer: Any,
    name: str,
) -> Any:
    """The recurrent part of an audio model and its head, from frames `x` on: pooled over time
    for a per-utterance head, or per frame (CTC) with the padding mask from the waveform
    keeping batch padding out of the recurrence. `framing`: how the waveform became the frames
    of `x` (`FrontEndConfig.framing`)."""
    import keras
    from keras import layers

    from dlcli.layers.sequence import PaddingFrames

    def stack(x: Any, mask: Any, pooling: str) -> Any:
        return recurrent_stack(
            x,
            cell=config.cell,
            units=config.units,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
            pooling=pooling,
            regularizer=regularizer,
            mask=mask,
        )

    if head.kind != "frames":
        x = dense_head(stack(x, None, config.pooling), config.dense, config.dropout, regularizer)
        return keras.Model(inputs, head(x, regularizer=regularizer), name=name)
    mask = PaddingFrames(framing, name="padding_frames")(inputs, x)
    x = layers.Identity(name=EMBEDDING_LAYER)(stack(x, mask, "none"))
    if config.dropout:
        x = layers.Dropout(config.dropout, name="head_dropout")(x)
    return keras.Model(inputs, head(x, regularizer=regularizer, mask=mask), name=name)


@MODELS.register("rnn", config=RNNConfig)
def build_rnn(config: RNNConfig, *, spec: Any, head: Any) -> Any:
    """LSTM or GRU stack over log-mel frames, with last, mean or attention pooling."""
    import keras

    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = audio_input(spec)
    x = config.frontend.build(inputs, spec.sample_rate)

    framing = config.frontend.framing(spec.sample_rate)
    return recurrent_model(
        config, inputs, x, head, framing=framing, regularizer=reg, name=f"rnn_{config.cell}"
    )
