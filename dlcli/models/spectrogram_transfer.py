"""Transfer learning on spectrograms: the front end's features as a 0-255 image, resized and
repeated to three channels, into any keras.applications backbone. As in `transfer`, the
backbone is frozen for the first phase and `train.fine_tune` unfreezes it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt, ValidationInfo, field_validator

from dlcli.models.backbones import BACKBONES
from dlcli.models.base import ModelConfig
from dlcli.models.frontend import FrontEndConfig, audio_input, dense_head
from dlcli.models.transfer import (
    TransferConfig,
    application_backbone,
    known_backbone,
    resolve_weights,
)
from dlcli.registry import MODELS


class SpectrogramTransferConfig(ModelConfig):
    """`model:` for `type: spectrogram_transfer`."""

    type: Literal["spectrogram_transfer"] = "spectrogram_transfer"
    frontend: FrontEndConfig = Field(default_factory=FrontEndConfig)
    backbone: str = Field(description="a keras.applications name (`dlcli list backbones`)")
    weights: str | None = Field(
        "imagenet", description="imagenet, none, or the path of a weights .h5"
    )
    backbone_args: dict[str, Any] = Field(
        default_factory=dict, description="extra constructor arguments, e.g. {alpha: 0.25}"
    )
    image_size: tuple[PositiveInt, PositiveInt] | None = Field(
        None,
        description="[frames, bins] the spectrogram is resized to; default: the backbone's "
        "own input size",
    )
    freeze_backbone: bool = Field(True, description="train only the head until fine_tune")
    pooling: Literal["avg", "max"] = "avg"
    dense: list[PositiveInt] = Field(default_factory=list, description="hidden head layers")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    l2: float = Field(0.0, ge=0.0)

    modality: ClassVar[str] = "audio"
    heads: ClassVar[tuple[str, ...]] = ("classes", "features")
    example: ClassVar[dict[str, Any]] = {
        "backbone": "MobileNet",
        "weights": None,
        "backbone_args": {"alpha": 0.25},
        "image_size": [32, 32],
        "freeze_backbone": False,
    }

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        return known_backbone(value)

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str | None, info: ValidationInfo) -> str | None:
        return resolve_weights(value, info)

    def as_transfer(self) -> TransferConfig:
        """The same backbone as a `transfer` config: building and fine-tuning it is shared."""
        return TransferConfig(
            backbone=self.backbone,
            weights=self.weights,
            backbone_args=self.backbone_args,
            freeze_backbone=self.freeze_backbone,
        )

    def fine_tune(self, model: Any, config: Any) -> None:
        """Unfreeze the backbone (or its top `unfreeze` layers) exactly as `transfer` does."""
        self.as_transfer().fine_tune(model, config)


@MODELS.register("spectrogram_transfer", config=SpectrogramTransferConfig)
def build_spectrogram_transfer(config: SpectrogramTransferConfig, *, spec: Any, head: Any) -> Any:
    """A keras.applications backbone on log-mel images, frozen first, with a new head."""
    import keras
    from keras import layers

    from dlcli.layers import ImagePreprocess
    from dlcli.layers.audio import SpectrogramImage

    entry = BACKBONES[config.backbone]
    size = config.image_size or (entry.size, entry.size)
    base = application_backbone(config.as_transfer(), (*size, 3))
    backbone = keras.Model(base.inputs, base.outputs[0], name="backbone")
    backbone.trainable = not config.freeze_backbone

    inputs = audio_input(spec)
    x = config.frontend.build(inputs, spec.sample_rate)
    x = SpectrogramImage(channels=3, name="to_image")(x)
    if tuple(x.shape[1:3]) != tuple(size):
        x = layers.Resizing(*size, interpolation="bilinear", name="resize")(x)
    x = ImagePreprocess(entry.module, name="preprocess")(x)
    # A frozen backbone runs in inference mode, batch norm included (see `transfer`).
    x = backbone(x)
    pool = layers.GlobalAveragePooling2D if config.pooling == "avg" else layers.GlobalMaxPooling2D
    x = pool(name="pool")(x)
    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    x = dense_head(x, config.dense, config.dropout, reg)
    return keras.Model(inputs, head(x, regularizer=reg), name=f"spectrogram_{entry.name}")
