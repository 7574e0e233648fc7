"""dlcli's own Keras layers, registered as serializable when this module is imported.

A `model.keras` written by dlcli loads in plain Keras after one import:

    import dlcli.layers  # noqa: F401  (registers the dlcli>... classes)
    model = keras.saving.load_model("runs/my_run/1/model.keras")

Nothing else of dlcli (and no TensorFlow beyond Keras's backend) is needed to predict.
"""

from __future__ import annotations

from typing import Any

import keras

from dlcli.layers.audio import AUDIO_LAYERS
from dlcli.layers.sequence import SEQUENCE_LAYERS


@keras.saving.register_keras_serializable(package="dlcli")
class ImagePreprocess(keras.layers.Layer):
    """Raw 0-255 pixels to what a backbone expects: a keras.applications module's
    `preprocess_input`, or `rescale` (0-1), `symmetric` (-1..1), `none`."""

    def __init__(self, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        if self.mode == "none":
            return inputs
        if self.mode == "rescale":
            return inputs / 255.0
        if self.mode == "symmetric":
            return inputs / 127.5 - 1.0
        module = getattr(keras.applications, self.mode)
        return module.preprocess_input(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="dlcli")
class LegacyDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """Keras 2 saved `groups=1` in DepthwiseConv2D configs; Keras 3 rejects the argument."""

    def __init__(self, *args: Any, groups: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)


@keras.saving.register_keras_serializable(package="dlcli")
class MinibatchStdDev(keras.layers.Layer):
    """One more feature map: the standard deviation of each feature over the batch, averaged
    (Karras et al. 2018). A discriminator that sees how alike the images of a batch are can
    reject a generator that makes one image per class: the cure for mode collapse."""

    def call(self, inputs: Any) -> Any:
        from keras import ops

        x = ops.cast(inputs, "float32")
        std = ops.sqrt(ops.var(x, axis=0) + 1e-8)
        mean = ops.mean(std)
        shape = ops.shape(inputs)
        extra = ops.ones((shape[0], shape[1], shape[2], 1), "float32") * mean
        return ops.concatenate([inputs, ops.cast(extra, inputs.dtype)], axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], input_shape[-1] + 1)


CUSTOM_OBJECTS: dict[str, Any] = {
    "ImagePreprocess": ImagePreprocess,
    "MinibatchStdDev": MinibatchStdDev,
    "LegacyDepthwiseConv2D": LegacyDepthwiseConv2D,
    **AUDIO_LAYERS,
    **SEQUENCE_LAYERS,
}
