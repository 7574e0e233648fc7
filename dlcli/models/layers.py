"""dlcli's own Keras layers, registered so that saved models load without custom code."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def custom_objects() -> dict[str, Any]:
    """Define (once) and return the custom classes; call before loading a saved model."""
    import keras

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

    from dlcli.train.optim import schedule_class

    return {
        "ImagePreprocess": ImagePreprocess,
        "LegacyDepthwiseConv2D": LegacyDepthwiseConv2D,
        "DlcliSchedule": schedule_class(),
    }


def load_keras_model(path: Any) -> Any:
    """Load a .keras or legacy .h5 model; legacy Keras 2 layer arguments are fixed on the way."""
    import keras

    from dlcli.errors import DataError

    objects = custom_objects()
    try:
        return keras.saving.load_model(path, compile=False, custom_objects=objects)
    except (TypeError, ValueError) as exc:
        if "groups" not in str(exc):
            raise DataError(f"Cannot load model {path}: {str(exc).splitlines()[0]}") from None
    import logging

    logging.getLogger("dlcli").info(
        "%s is a Keras 2 model: dropping the legacy `groups` argument of DepthwiseConv2D", path
    )
    legacy = {**objects, "DepthwiseConv2D": objects["LegacyDepthwiseConv2D"]}
    return keras.saving.load_model(path, compile=False, custom_objects=legacy)
