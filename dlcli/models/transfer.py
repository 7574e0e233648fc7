"""Transfer learning: a pretrained backbone (keras.applications by name, or any saved model cut
at a layer) under a new classification head. The backbone is frozen for the first phase and
always runs with batch norm in inference mode; `train.fine_tune` unfreezes it later."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt, ValidationInfo, field_validator

from dlcli.errors import ConfigError
from dlcli.models.backbones import BACKBONES
from dlcli.models.base import ModelConfig
from dlcli.models.heads import EMBEDDING_LAYER
from dlcli.registry import MODELS, did_you_mean

log = logging.getLogger("dlcli")
SAVED_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


class TransferConfig(ModelConfig):
    """`model:` for `type: transfer`."""

    type: Literal["transfer"] = "transfer"
    backbone: str = Field(
        description="a keras.applications name (`dlcli list backbones`) or a .keras/.h5 file"
    )
    weights: str | None = Field(
        "imagenet",
        description="imagenet (downloaded once, cached in $KERAS_HOME/models), "
        "none, or the path of a weights .h5",
    )
    backbone_args: dict[str, Any] = Field(
        default_factory=dict, description="extra constructor arguments, e.g. {alpha: 0.25}"
    )
    cut_at: str | None = Field(None, description="saved-model backbones: the feature layer")
    preprocess: Literal["auto", "none", "rescale", "symmetric"] = Field(
        "auto", description="auto: the backbone's own preprocess_input (rescale for files)"
    )
    freeze_backbone: bool = Field(True, description="train only the head until fine_tune")
    pooling: Literal["avg", "max", "flatten"] = "avg"
    dense: list[PositiveInt] = Field(default_factory=list, description="hidden head layers")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    l2: float = Field(0.0, ge=0.0)

    heads: ClassVar[tuple[str, ...]] = ("classes", "features")
    example: ClassVar[dict[str, Any]] = {
        "backbone": "MobileNet",
        "weights": None,
        "backbone_args": {"alpha": 0.25},
        "freeze_backbone": False,
    }

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str, info: ValidationInfo) -> str:
        if value.lower().endswith(SAVED_MODEL_SUFFIXES):
            return str(_resolve(value, info))
        return known_backbone(value)

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str | None, info: ValidationInfo) -> str | None:
        return resolve_weights(value, info)

    def default_image_size(self) -> tuple[int, int] | None:
        entry = BACKBONES.get(self.backbone)
        return (entry.size, entry.size) if entry else None

    def fine_tune(self, model: Any, config: Any) -> None:
        """Unfreeze the backbone (or its top `unfreeze` layers) for `train.fine_tune`; batch
        norm keeps its pretrained statistics unless `batch_norm: train`."""
        from keras import layers

        backbone = model.get_layer("backbone")
        backbone.trainable = True
        for index, layer in enumerate(backbone.layers):
            below = config.unfreeze != "all" and index < len(backbone.layers) - config.unfreeze
            frozen_bn = config.batch_norm == "frozen" and isinstance(
                layer, layers.BatchNormalization
            )
            layer.trainable = not (below or frozen_bn)
        trainable = sum(1 for layer in backbone.layers if layer.trainable and layer.weights)
        log.info(
            "fine-tuning: %d backbone layers with weights now train (batch norm %s), "
            "learning rate %g",
            trainable,
            config.batch_norm,
            config.learning_rate,
        )


def known_backbone(value: str) -> str:
    """A keras.applications backbone name, or a ValueError with the nearest known one."""
    if value not in BACKBONES:
        hint = did_you_mean(value, list(BACKBONES))
        raise ValueError(
            f"unknown backbone `{value}` (see `dlcli list backbones`)"
            + (f"; {hint}" if hint else "")
        )
    return value


def resolve_weights(value: str | None, info: ValidationInfo) -> str | None:
    """`weights:` as written: `imagenet`, none, or a file path resolved like other paths."""
    if value is None or value.lower() == "none":
        return None
    if value == "imagenet":
        return value
    return str(_resolve(value, info))


def _resolve(value: str, info: ValidationInfo) -> Path:
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path.resolve()


def application_backbone(config: TransferConfig, input_shape: tuple[int, ...]) -> Any:
    import keras

    entry = BACKBONES[config.backbone]
    weights = config.weights
    if weights and weights != "imagenet" and not Path(weights).is_file():
        raise ConfigError(f"model.weights: file not found: {weights}")
    build = getattr(keras.applications, entry.name)
    try:
        return build(
            include_top=False,
            weights=weights,
            input_shape=(*input_shape[:2], 3),
            **config.backbone_args,
        )
    except TypeError as exc:
        raise ConfigError(f"model.backbone_args for {entry.name}: {exc}") from None
    except Exception as exc:  # the ImageNet download, usually: offline machines land here
        if weights != "imagenet":
            raise
        raise ConfigError(
            f"Could not get the ImageNet weights of {entry.name}: {str(exc).splitlines()[0]}",
            hint="offline? copy the weights file Keras wants (its name is in the message) into "
            "$KERAS_HOME/models/ (default ~/.keras/models/), or set model.weights to its path",
        ) from None


def _saved_backbone(config: TransferConfig) -> Any:
    import keras

    from dlcli.models.loading import load_keras_model

    path = Path(config.backbone)
    if not path.is_file():
        raise ConfigError(f"model.backbone: file not found: {path}")
    model = load_keras_model(path)
    names = [layer.name for layer in model.layers]
    if config.cut_at is None:
        # The last layer with spatial (rank-4) output: a CNN's feature map.
        spatial = [layer for layer in model.layers if len(layer.output.shape) == 4]
        cut = spatial[-1] if spatial else model.layers[-2]
    elif config.cut_at in names:
        cut = model.get_layer(config.cut_at)
    else:
        raise ConfigError(
            f"model.cut_at: no layer `{config.cut_at}` in {path}.",
            hint=did_you_mean(config.cut_at, names) or f"layers: {', '.join(names[-8:])} ...",
        )
    log.info("backbone %s cut at layer `%s` %s", path.name, cut.name, tuple(cut.output.shape))
    return keras.Model(model.inputs, cut.output, name=f"{path.stem}_features")


def _stride_layers(backbone: Any, input_size: int) -> list[Any]:
    """The last layer at output stride 8 and at stride 16: PatchCore's mid-level features,
    local enough to place a defect, abstract enough to ignore noise. Any CNN backbone."""
    chosen = []
    for stride in (8, 16):
        side = -(-input_size // stride)
        at_stride = [
            layer
            for layer in backbone.layers
            if len(layer.output.shape) == 4 and layer.output.shape[1] == side
        ]
        if at_stride:
            chosen.append(at_stride[-1])
    if not chosen:
        raise ConfigError(
            f"model.backbone has no feature maps at stride 8 or 16 for input size {input_size}."
        )
    return chosen


def _patch_features(backbone: Any, inputs: Any) -> Any:
    """Feature maps at two depths, each averaged over 3x3 neighbourhoods, the deeper one
    resized to the shallower one's grid, concatenated and L2-normalised: one vector per image
    patch."""
    import keras
    from keras import layers

    chosen = _stride_layers(backbone, int(backbone.input_shape[1]))
    maps = keras.Model(backbone.inputs, [layer.output for layer in chosen], name="backbone")
    outputs = maps(inputs)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    size = outputs[0].shape[1:3]
    pooled = []
    for i, fmap in enumerate(outputs):
        x = layers.AveragePooling2D(3, strides=1, padding="same", name=f"patch_pool{i + 1}")(fmap)
        if tuple(x.shape[1:3]) != tuple(size):
            x = layers.Resizing(*size, interpolation="bilinear", name=f"patch_resize{i + 1}")(x)
        pooled.append(x)
    x = pooled[0] if len(pooled) == 1 else layers.Concatenate(name="patch_concat")(pooled)
    # Unit length: distances then compare directions, not the activations' scale.
    x = layers.UnitNormalization(axis=-1, name="patch_normalize")(x)
    return layers.Identity(name=EMBEDDING_LAYER)(x)


@MODELS.register("transfer", config=TransferConfig)
def build_transfer_model(config: TransferConfig, *, spec: Any, head: Any) -> Any:
    """A pretrained backbone (keras.applications or a saved model) with a new head."""
    import keras
    from keras import layers

    from dlcli.layers import ImagePreprocess

    input_shape = spec.input_shape
    from_file = config.backbone.lower().endswith(SAVED_MODEL_SUFFIXES)
    base = _saved_backbone(config) if from_file else application_backbone(config, input_shape)
    backbone = keras.Model(base.inputs, base.outputs[0], name="backbone")
    backbone.trainable = not config.freeze_backbone
    mode: str = config.preprocess
    if mode == "auto":
        mode = "rescale" if from_file else BACKBONES[config.backbone].module
    preprocess = ImagePreprocess(mode, name="preprocess")

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    wanted = backbone.input_shape[1:]
    if input_shape[-1] == 1 and wanted[-1] == 3:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    if wanted[0] is not None and tuple(wanted[:2]) != tuple(input_shape[:2]):
        x = layers.Resizing(wanted[0], wanted[1], name="resize")(x)
    x = preprocess(x)
    if getattr(head, "patches", False):
        backbone.trainable = False
        return keras.Model(inputs, head(_patch_features(base, x)), name="patch_features")
    # A frozen layer runs in inference mode in Keras 3, batch norm included; fine-tuning
    # decides per layer (train.fine_tune.batch_norm) whether batch norm stays frozen.
    x = backbone(x)
    if len(x.shape) == 4:
        pool = {
            "avg": layers.GlobalAveragePooling2D,
            "max": layers.GlobalMaxPooling2D,
            "flatten": layers.Flatten,
        }[config.pooling]
        x = pool(name="pool")(x)
    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    for i, units in enumerate(config.dense):
        x = layers.Dropout(config.dropout, name=f"head_dropout{i + 1}")(x)
        x = layers.Dense(
            units, activation="relu", kernel_regularizer=reg, name=f"head_dense{i + 1}"
        )(x)
    x = layers.Identity(name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(config.dropout, name="head_dropout")(x)
    return keras.Model(inputs, head(x, regularizer=reg), name=f"transfer_{backbone.name}")
