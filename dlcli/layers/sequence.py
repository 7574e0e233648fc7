"""Layers for models that output a sequence per utterance (CTC speech recognition).

Batches of utterances are zero-padded at the end. `PaddingFrames` finds, from the waveform,
which output frames hold audio; `BlankPadding` makes every other frame a certain CTC blank.
A frame that is blank with probability 1 adds nothing to a CTC loss (log 1 = 0) and nothing to
a decoded transcript, so the loss and the decoders can run over the whole padded length: the
model's outputs are correct with no lengths passed in or out, and a saved or exported model
takes a plain waveform, as every other dlcli audio model does.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="dlcli")
class PaddingFrames(keras.layers.Layer):
    """`(waveform, frames)` to a `[batch, frames]` mask: True where a frame holds audio.

    A waveform's length is up to its last non-zero sample (trailing exact zeros are batch
    padding); an output frame `i` holds audio when it starts before that, `i * stride < length`,
    where `stride` is the samples between output frames (the front end's hop times the time
    pooling after it)."""

    def __init__(self, stride: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stride = int(stride)

    def call(self, waveform: Any, frames: Any) -> Any:
        from keras import ops

        total = ops.shape(waveform)[1]
        positions = ops.arange(1, total + 1, dtype="int32")
        heard = ops.not_equal(waveform, ops.zeros_like(waveform))
        length = ops.max(ops.where(heard, positions[None, :], 0), axis=1)  # last non-zero + 1
        valid = (length + self.stride - 1) // self.stride
        steps = ops.arange(ops.shape(frames)[1], dtype="int32")
        return ops.less(steps[None, :], valid[:, None])

    def compute_output_shape(self, waveform_shape: Any, frames_shape: Any) -> tuple[Any, ...]:
        return (frames_shape[0], frames_shape[1])

    def compute_output_spec(self, waveform: Any, frames: Any) -> Any:
        return keras.KerasTensor((frames.shape[0], frames.shape[1]), dtype="bool")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stride": self.stride}


@keras.saving.register_keras_serializable(package="dlcli")
class BlankPadding(keras.layers.Layer):
    """`(probabilities, valid)`: frames where `valid` is False become the blank (index 0) with
    probability 1. It takes the place of the recurrent layers' Keras mask, which ends here."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, *args: Any, **kwargs: Any) -> None:
        return None

    def call(self, probabilities: Any, valid: Any) -> Any:
        from keras import ops

        blank = ops.one_hot(
            ops.zeros_like(valid, dtype="int32"), ops.shape(probabilities)[-1], dtype="float32"
        )
        return ops.where(valid[..., None], probabilities, ops.cast(blank, probabilities.dtype))

    def compute_output_shape(self, probabilities_shape: Any, valid_shape: Any) -> Any:
        return probabilities_shape


SEQUENCE_LAYERS: dict[str, Any] = {"PaddingFrames": PaddingFrames, "BlankPadding": BlankPadding}
