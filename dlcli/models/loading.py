"""The one way dlcli loads a saved model: `.keras` or a legacy Keras 2 `.h5`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from dlcli.errors import DataError

log = logging.getLogger("dlcli")
TRUST_ENV = "DLCLI_TRUST_MODEL"  # set by `dlcli --trust-model`


def load_keras_model(path: Any) -> Any:
    """Load a model file with dlcli's layers registered; legacy Keras 2 arguments are fixed on
    the way. Lambda layers (Python code inside the file) load only with `--trust-model`."""
    import keras

    from dlcli.layers import CUSTOM_OBJECTS

    path = Path(path)
    if not path.is_file():
        raise DataError(f"Model file not found: {path}")
    safe = os.environ.get(TRUST_ENV, "") not in ("1", "true", "yes")
    try:
        return keras.saving.load_model(
            path, compile=False, custom_objects=CUSTOM_OBJECTS, safe_mode=safe
        )
    except (TypeError, ValueError, OSError, KeyError) as exc:
        message = str(exc)
        if "groups" in message and "DepthwiseConv2D" in message:
            log.info(
                "%s is a Keras 2 model: dropping the legacy `groups` argument of DepthwiseConv2D",
                path,
            )
            legacy = {**CUSTOM_OBJECTS, "DepthwiseConv2D": CUSTOM_OBJECTS["LegacyDepthwiseConv2D"]}
            return keras.saving.load_model(
                path, compile=False, custom_objects=legacy, safe_mode=safe
            )
        if "lambda" in message.lower() and "safe_mode" in message:
            raise DataError(
                f"{path} contains a Lambda layer: loading it runs Python code stored in the file, "
                "which dlcli refuses by default.",
                hint="if you trust where the file came from, run the command again as "
                f"`dlcli --trust-model ...` (or set {TRUST_ENV}=1)",
            ) from None
        first = (message.strip().splitlines() or [type(exc).__name__])[0][:300]
        raise DataError(
            f"Cannot load model {path}: {first}",
            hint="is it a complete .keras (or Keras .h5) file? a copy cut short or another "
            "format fails like this",
        ) from None


def find_layer(model: Any, name: str) -> tuple[Any, Any] | None:
    """(the model or nested model that holds layer `name`, the layer), searching depth-first."""
    for layer in model.layers:
        if layer.name == name:
            return model, layer
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found = find_layer(layer, name)
            if found is not None:
                return found
    return None


def embedding_submodel(model: Any, source: Any) -> Any:
    """`model` cut at its `embedding` layer (a VAE's is inside its encoder), as a model of one
    input; `source` names the file in errors."""
    import keras

    from dlcli.errors import ConfigError
    from dlcli.models.heads import EMBEDDING_LAYER

    found = find_layer(model, EMBEDDING_LAYER)
    if found is None:
        raise ConfigError(
            f"{source} has no `{EMBEDDING_LAYER}` layer to read embeddings from.",
            hint="train the model with this version of dlcli: every builder names one",
        )
    owner, layer = found
    if len(owner.inputs) != 1:
        raise ConfigError(
            f"The embeddings of {source} depend on each input's class as well (a "
            "class-conditional model): they cannot be read from images alone.",
            hint="use a model trained with task.conditional: false",
        )
    return keras.Model(owner.inputs, layer.output)
