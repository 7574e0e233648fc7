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


def recording_lengths(waveform: Any) -> Any:
    """`[batch]` int32: each waveform's length up to its last non-zero sample; the exact zeros
    after it are padding (the one definition the frame masks and the noise augmentation share)."""
    from keras import ops

    positions = ops.arange(1, ops.shape(waveform)[1] + 1, dtype="int32")
    heard = ops.not_equal(waveform, ops.zeros_like(waveform))
    return ops.max(ops.where(heard, positions[None, :], 0), axis=1)


def frame_mask(waveform: Any, frames: Any, framing: dict[str, Any]) -> Any:
    """`[batch, frames]`: True on the frames an utterance would have on its own.

    Its length is up to its last non-zero sample; its frame count is what the front end gives
    that many samples (`hop`; `window` samples uncentered, or centered when 0), divided (ceil)
    by each time pooling (`pools`, 'same' padding) after it."""
    from keras import ops

    length = recording_lengths(waveform)
    hop, window = int(framing["hop"]), int(framing.get("window", 0))
    # Uncentered frames need a whole window of samples; centered ones start at every hop.
    valid = ops.maximum(1 + (length - window) // hop, 0) if window else 1 + length // hop
    for pool in framing.get("pools", ()):
        valid = (valid + int(pool) - 1) // int(pool)
    steps = ops.arange(ops.shape(frames)[1], dtype="int32")
    return ops.less(steps[None, :], valid[:, None])


class _Framed(keras.layers.Layer):
    """A layer that knows how the model frames the waveform (see `frame_mask`)."""

    def __init__(self, framing: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.framing = {
            "hop": int(framing["hop"]),
            "window": int(framing.get("window", 0)),
            "pools": [int(p) for p in framing.get("pools", ())],
        }

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "framing": self.framing}


@keras.saving.register_keras_serializable(package="dlcli")
class PaddingFrames(_Framed):
    """`(waveform, frames)` to a `[batch, frames]` mask: True where a frame holds audio;
    trailing exact zeros of a waveform are batch padding."""

    def call(self, waveform: Any, frames: Any) -> Any:
        return frame_mask(waveform, frames, self.framing)

    def compute_output_shape(self, waveform_shape: Any, frames_shape: Any) -> tuple[Any, ...]:
        return (frames_shape[0], frames_shape[1])

    def compute_output_spec(self, waveform: Any, frames: Any) -> Any:
        return keras.KerasTensor((frames.shape[0], frames.shape[1]), dtype="bool")


@keras.saving.register_keras_serializable(package="dlcli")
class ZeroPaddedFrames(_Framed):
    """`(waveform, features)`: the features `[batch, frames, ...]` of padded frames set to 0, so
    that convolutions and pooling see an utterance in a padded batch as they see it alone."""

    def call(self, waveform: Any, features: Any) -> Any:
        from keras import ops

        mask = ops.cast(frame_mask(waveform, features, self.framing), features.dtype)
        return features * ops.reshape(mask, (*ops.shape(mask), *([1] * (len(features.shape) - 2))))

    def compute_output_shape(self, waveform_shape: Any, features_shape: Any) -> Any:
        return features_shape


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


SEQUENCE_LAYERS: dict[str, Any] = {
    "PaddingFrames": PaddingFrames,
    "ZeroPaddedFrames": ZeroPaddedFrames,
    "BlankPadding": BlankPadding,
}
