"""Output heads. Builders build bodies; the task says which head it needs (timm's
`num_classes=0` idea), so one body serves classification, reconstruction and embeddings.

Every builder names its body's output `embedding`, the layer `dlcli embed` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

EMBEDDING_LAYER = "embedding"


@dataclass(frozen=True)
class ClassesHead:
    """Class probabilities: a dense layer and a float32 softmax (exact under mixed precision)."""

    num_classes: int
    kind: ClassVar[str] = "classes"

    def __call__(self, features: Any, *, regularizer: Any = None) -> Any:
        from keras import layers

        x = layers.Dense(self.num_classes, kernel_regularizer=regularizer, name="logits")(features)
        return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


@dataclass(frozen=True)
class ReconstructionHead:
    """The input again, from a decoder's last feature map: raw 0-255 pixels, float32."""

    shape: tuple[int, ...]
    kind: ClassVar[str] = "reconstruction"

    def __call__(self, decoded: Any, *, regularizer: Any = None) -> Any:
        from keras import layers

        x = layers.Conv2D(self.shape[-1], 3, padding="same", name="reconstruction_conv")(decoded)
        x = layers.Activation("sigmoid", dtype="float32", name="reconstruction_sigmoid")(x)
        return layers.Rescaling(255.0, dtype="float32", name="reconstruction")(x)


@dataclass(frozen=True)
class FeaturesHead:
    """The body's features, for distances: a pooled vector, or with `patches` the
    locally aggregated feature maps of a pretrained backbone at two depths (PatchCore's idea)."""

    patches: bool = False
    kind: ClassVar[str] = "features"

    def __call__(self, features: Any, *, regularizer: Any = None) -> Any:
        from keras import layers

        return layers.Activation("linear", dtype="float32", name="features")(features)


@dataclass(frozen=True)
class FramesHead:
    """A distribution over `tokens` (index 0: the CTC blank) for every frame of a sequence,
    float32; frames outside `mask` (batch padding) are a certain blank."""

    tokens: int
    kind: ClassVar[str] = "frames"

    def __call__(self, frames: Any, *, regularizer: Any = None, mask: Any = None) -> Any:
        from keras import layers

        from dlcli.layers.sequence import BlankPadding

        x = layers.Dense(self.tokens, kernel_regularizer=regularizer, name="frame_logits")(frames)
        x = layers.Activation("softmax", dtype="float32", name="frame_softmax")(x)
        return x if mask is None else BlankPadding(dtype="float32", name="frames")(x, mask)


@dataclass(frozen=True)
class GenerativeHead:
    """What a generative task asks of its model: a `vae` (an encoder and a decoder) or a `gan`
    (a generator and a discriminator), each taking a class label beside its input when
    `conditional`. The builder returns the pair inside one model (see `dlcli.models.generative`)."""

    kind: str  # "vae" or "gan"
    shape: tuple[int, ...]  # the images: [height, width, channels], raw 0-255
    num_classes: int = 0
    conditional: bool = False


Head = ClassesHead | ReconstructionHead | FeaturesHead | FramesHead | GenerativeHead
