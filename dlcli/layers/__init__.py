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


CUSTOM_OBJECTS: dict[str, Any] = {
    "ImagePreprocess": ImagePreprocess,
    "LegacyDepthwiseConv2D": LegacyDepthwiseConv2D,
    **AUDIO_LAYERS,
    **SEQUENCE_LAYERS,
}
