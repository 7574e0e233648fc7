"""Generative models: a convolutional variational autoencoder (`vae`) and a DCGAN (`dcgan`),
each optionally class-conditional.

Both networks of a pair live inside one Keras model, so one `model.keras` file and one
checkpoint hold them, and a plain `keras.saving.load_model` gives both back:

- `vae`: the model maps an image (and its label) through `encoder` (outputs: the latent mean,
  named `embedding`, and log-variance) and `decoder` (from the mean) to its reconstruction.
  The task draws the latent sample while training; `dlcli generate` runs `decoder` alone.
- `dcgan`: the model maps a latent vector (and a label) through `generator` and then
  `discriminator` to a realness logit. The task trains them against each other with two
  optimizers; `dlcli generate` runs `generator` alone.

Images enter and leave as raw 0-255 pixels, like every dlcli model. Labels are class indices
(int32); a conditional generator gets them through an embedding, a conditional discriminator
through a projection (Miyato & Koyama 2018: the logit adds <embed(y), features>).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt

from dlcli.models.autoencoder import conv_unit, to_input_size
from dlcli.models.base import ModelConfig
from dlcli.models.heads import EMBEDDING_LAYER
from dlcli.registry import MODELS

ENCODER, DECODER = "encoder", "decoder"
GENERATOR, DISCRIMINATOR = "generator", "discriminator"
LATENT_INPUT, LABEL_INPUT, IMAGE_INPUT = "latent", "label", "image"


class VAEConfig(ModelConfig):
    """`model:` for `type: vae`."""

    type: Literal["vae"] = "vae"
    filters: list[PositiveInt] = Field(
        [32, 64],
        min_length=1,
        description="encoder blocks, each halving height and width; the decoder mirrors them",
    )
    kernel_size: PositiveInt = 3
    hidden: PositiveInt | None = Field(
        256, description="dense units between the last feature map and the latent; null: none"
    )
    latent: PositiveInt = Field(16, description="size of the latent vector (the embedding)")
    batch_norm: bool = False
    activation: Literal["relu", "gelu", "swish", "elu", "leaky_relu"] = "relu"

    heads: ClassVar[tuple[str, ...]] = ("vae",)
    example: ClassVar[dict[str, Any]] = {"filters": [8, 16], "hidden": 16, "latent": 4}


class DCGANConfig(ModelConfig):
    """`model:` for `type: dcgan`."""

    type: Literal["dcgan"] = "dcgan"
    latent: PositiveInt = Field(64, description="size of the generator's input noise vector")
    filters: list[PositiveInt] = Field(
        [128, 64],
        min_length=1,
        description="generator feature maps from the smallest up; each block doubles the size, "
        "so the first map is the image size / 2^len(filters). The discriminator mirrors them",
    )
    kernel_size: PositiveInt = Field(4, description="DCGAN's 4x4 strided (transposed) convs")
    discriminator_norm: Literal["none", "batch", "layer"] = Field(
        "none",
        description="normalisation in the discriminator: batch is DCGAN's; WGAN-GP's gradient "
        "penalty wants none or layer",
    )
    minibatch_stddev: bool = Field(
        True,
        description="give the discriminator the batch's spread as a feature map before its last "
        "block: it then sees when the generator makes one image per class (mode collapse)",
    )
    discriminator_dropout: float = Field(
        0.25, ge=0.0, lt=1.0, description="after each discriminator block: small data overfits"
    )

    heads: ClassVar[tuple[str, ...]] = ("gan",)
    example: ClassVar[dict[str, Any]] = {"latent": 8, "filters": [16, 8]}


# ---- pieces both share -----------------------------------------------------------------
def _label_input() -> Any:
    import keras

    return keras.Input(shape=(), dtype="int32", name=LABEL_INPUT)


def _one_hot(label: Any, num_classes: int, name: str) -> Any:
    from keras import layers

    return layers.CategoryEncoding(num_classes, output_mode="one_hot", name=name)(label)


def _start_size(shape: tuple[int, ...], blocks: int) -> tuple[int, int]:
    """The first feature map a decoder/generator upsamples `blocks` times (rounded up)."""
    return (-(-int(shape[0]) // 2**blocks), -(-int(shape[1]) // 2**blocks))


# ---- VAE ---------------------------------------------------------------------------------
@MODELS.register("vae", config=VAEConfig)
def build_vae(config: VAEConfig, *, spec: Any, head: Any) -> Any:
    """Convolutional VAE: stride-2 conv blocks to a Gaussian latent and transposed convs back."""
    import keras
    from keras import layers

    shape = tuple(int(d) for d in spec.input_shape)

    def unit(x: Any, filters: int, name: str, **kwargs: Any) -> Any:
        return conv_unit(x, filters, name, config, None, strides=2, **kwargs)

    # Encoder: image (and label) -> latent mean and log-variance.
    image = keras.Input(shape=shape, name=IMAGE_INPUT)
    label = _label_input() if head.conditional else None
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(image)
    for b, filters in enumerate(config.filters, start=1):
        x = unit(x, filters, f"down{b}")
    x = layers.Flatten(name="flatten")(x)
    if label is not None:
        x = layers.Concatenate(name="with_label")([x, _one_hot(label, head.num_classes, "onehot")])
    if config.hidden:
        x = layers.Dense(config.hidden, activation=config.activation, name="hidden")(x)
    mean = layers.Dense(config.latent, dtype="float32", name=EMBEDDING_LAYER)(x)
    log_var = layers.Dense(config.latent, dtype="float32", name="log_var")(x)
    enc_inputs = [image, label] if label is not None else image
    encoder = keras.Model(enc_inputs, [mean, log_var], name=ENCODER)

    # Decoder: latent (and label) -> image.
    z = keras.Input(shape=(config.latent,), name=LATENT_INPUT)
    dec_label = _label_input() if head.conditional else None
    y = z
    if dec_label is not None:
        y = layers.Concatenate(name="with_label")(
            [z, _one_hot(dec_label, head.num_classes, "onehot")]
        )
    height, width = _start_size(shape, len(config.filters))
    first = config.filters[-1]
    if config.hidden:
        y = layers.Dense(config.hidden, activation=config.activation, name="hidden")(y)
    y = layers.Dense(height * width * first, activation=config.activation, name="project")(y)
    y = layers.Reshape((height, width, first), name="reshape")(y)
    for b, filters in reversed(list(enumerate(config.filters, start=1))):
        y = unit(y, filters, f"up{b}", transpose=True)
    y = to_input_size(y, shape)
    y = layers.Conv2D(shape[-1], 3, padding="same", name="to_pixels")(y)
    y = layers.Activation("sigmoid", dtype="float32", name="sigmoid")(y)
    pixels = layers.Rescaling(255.0, dtype="float32", name="pixels")(y)
    dec_inputs = [z, dec_label] if dec_label is not None else z
    decoder = keras.Model(dec_inputs, pixels, name=DECODER)

    # The whole: reconstruct from the mean (deterministic; training samples in the task).
    outer_image = keras.Input(shape=shape, name=IMAGE_INPUT)
    outer_label = _label_input() if head.conditional else None
    if outer_label is not None:
        latent_mean, _ = encoder([outer_image, outer_label])
        out = decoder([latent_mean, outer_label])
        return keras.Model([outer_image, outer_label], out, name="vae")
    latent_mean, _ = encoder(outer_image)
    return keras.Model(outer_image, decoder(latent_mean), name="vae")


# ---- DCGAN -------------------------------------------------------------------------------
@MODELS.register("dcgan", config=DCGANConfig)
def build_dcgan(config: DCGANConfig, *, spec: Any, head: Any) -> Any:
    """DCGAN (Radford et al. 2016): a generator of transposed convs with batch norm and ReLU,
    a discriminator of strided convs with LeakyReLU."""
    import keras
    from keras import layers

    shape = tuple(int(d) for d in spec.input_shape)
    k = config.kernel_size

    # Generator: noise (and label) -> image in 0-255.
    z = keras.Input(shape=(config.latent,), name=LATENT_INPUT)
    label = _label_input() if head.conditional else None
    x = z
    if label is not None:
        embedded = layers.Embedding(head.num_classes, config.latent, name="label_embedding")(label)
        x = layers.Concatenate(name="with_label")([z, embedded])
    height, width = _start_size(shape, len(config.filters))
    x = layers.Dense(height * width * config.filters[0], use_bias=False, name="project")(x)
    x = layers.Reshape((height, width, config.filters[0]), name="reshape")(x)
    x = layers.BatchNormalization(momentum=0.9, name="project_bn")(x)
    x = layers.ReLU(name="project_act")(x)
    for b, filters in enumerate(config.filters[1:], start=1):
        x = layers.Conv2DTranspose(
            filters, k, strides=2, padding="same", use_bias=False, name=f"up{b}_conv"
        )(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"up{b}_bn")(x)
        x = layers.ReLU(name=f"up{b}_act")(x)
    x = layers.Conv2DTranspose(shape[-1], k, strides=2, padding="same", name="to_pixels")(x)
    x = to_input_size(x, shape)
    x = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    pixels = layers.Rescaling(127.5, offset=127.5, dtype="float32", name="pixels")(x)
    generator = keras.Model([z, label] if label is not None else z, pixels, name=GENERATOR)

    # Discriminator: image (and label) -> one realness logit.
    image = keras.Input(shape=shape, name=IMAGE_INPUT)
    d_label = _label_input() if head.conditional else None
    h = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(image)
    blocks = list(reversed(config.filters))
    for b, filters in enumerate(blocks, start=1):
        if b == len(blocks) and config.minibatch_stddev:
            from dlcli.layers import MinibatchStdDev

            h = MinibatchStdDev(name="minibatch_stddev")(h)
        h = layers.Conv2D(filters, k, strides=2, padding="same", name=f"down{b}_conv")(h)
        if b > 1 and config.discriminator_norm == "batch":
            h = layers.BatchNormalization(momentum=0.9, name=f"down{b}_bn")(h)
        elif b > 1 and config.discriminator_norm == "layer":
            h = layers.LayerNormalization(name=f"down{b}_ln")(h)
        h = layers.LeakyReLU(0.2, name=f"down{b}_act")(h)
        if config.discriminator_dropout:
            h = layers.Dropout(config.discriminator_dropout, name=f"down{b}_dropout")(h)
    features = layers.Flatten(name=EMBEDDING_LAYER)(h)
    logit = layers.Dense(1, name="logit")(features)
    if d_label is not None:
        dims = int(features.shape[-1])
        projected = layers.Embedding(head.num_classes, dims, name="label_projection")(d_label)
        logit = layers.Add(name="projection")(
            [logit, layers.Dot(axes=1, name="label_dot")([projected, features])]
        )
    logit = layers.Activation("linear", dtype="float32", name="realness")(logit)
    discriminator = keras.Model(
        [image, d_label] if d_label is not None else image, logit, name=DISCRIMINATOR
    )

    # The whole: noise (and label) -> generated image -> realness.
    outer_z = keras.Input(shape=(config.latent,), name=LATENT_INPUT)
    if head.conditional:
        outer_label = _label_input()
        fake = generator([outer_z, outer_label])
        return keras.Model([outer_z, outer_label], discriminator([fake, outer_label]), name="gan")
    return keras.Model(outer_z, discriminator(generator(outer_z)), name="gan")
