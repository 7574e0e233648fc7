"""Training-time augmentation, declared under `data.augment` and run inside tf.data.

Geometric and colour changes are Keras preprocessing layers; mixup and cutmix mix pairs of
images in a batch and turn the labels into soft one-hot vectors. Nothing here runs at
evaluation or prediction time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from dlcli.config.base import StrictModel


class AugmentConfig(StrictModel):
    """`data.augment`: all off by default."""

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "none"
    rotation: float = Field(0.0, ge=0.0, le=1.0, description="max rotation, fraction of 360°")
    zoom: float = Field(0.0, ge=0.0, lt=1.0, description="max zoom in or out, fraction")
    translation: float = Field(0.0, ge=0.0, lt=1.0, description="max shift, fraction of size")
    contrast: float = Field(0.0, ge=0.0, lt=1.0)
    brightness: float = Field(0.0, ge=0.0, lt=1.0, description="max change, fraction of 255")
    crop: float = Field(
        1.0, gt=0.0, le=1.0, description="random crop of this fraction of each side, resized back"
    )
    mixup: float = Field(0.0, ge=0.0, description="Beta(alpha, alpha) of mixup; 0 = off")
    cutmix: float = Field(0.0, ge=0.0, description="Beta(alpha, alpha) of cutmix; 0 = off")

    def active(self) -> bool:
        return self != AugmentConfig()

    def mixes_labels(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0


def build_augmenter(
    config: AugmentConfig, num_classes: int, seed: int
) -> Callable[[Any, Any], tuple[Any, Any]]:
    """A function for `dataset.map` over *batches* of (images, integer labels)."""
    import keras
    import tensorflow as tf
    from keras import layers

    stack: list[Any] = []
    if config.flip != "none":
        stack.append(layers.RandomFlip(config.flip, seed=seed))
    if config.rotation:
        stack.append(layers.RandomRotation(config.rotation, fill_mode="reflect", seed=seed + 1))
    if config.zoom:
        stack.append(
            layers.RandomZoom((-config.zoom, config.zoom), fill_mode="reflect", seed=seed + 2)
        )
    if config.translation:
        stack.append(
            layers.RandomTranslation(
                config.translation, config.translation, fill_mode="reflect", seed=seed + 3
            )
        )
    if config.contrast:
        stack.append(layers.RandomContrast(config.contrast, seed=seed + 4))
    if config.brightness:
        stack.append(
            layers.RandomBrightness(config.brightness, value_range=(0, 255), seed=seed + 5)
        )
    geometric = keras.Sequential(stack) if stack else None

    def crop(images: Any) -> Any:
        size = tf.shape(images)[1:3]
        side = tf.cast(tf.cast(size, tf.float32) * config.crop, tf.int32)
        batch = tf.shape(images)[0]
        cropped = tf.image.random_crop(
            images, tf.concat([[batch], side, tf.shape(images)[3:]], 0), seed=seed + 6
        )
        return tf.image.resize(cropped, size)

    def beta(alpha: float, offset: int) -> Any:
        a = tf.random.gamma([], alpha, seed=seed + offset)
        b = tf.random.gamma([], alpha, seed=seed + offset + 1)
        return a / (a + b)

    def mixup(images: Any, one_hot: Any, other: Any, other_labels: Any) -> tuple[Any, Any]:
        lam = beta(config.mixup, 10)
        return lam * images + (1 - lam) * other, lam * one_hot + (1 - lam) * other_labels

    def cutmix(images: Any, one_hot: Any, other: Any, other_labels: Any) -> tuple[Any, Any]:
        shape = tf.shape(images)
        h, w = shape[1], shape[2]
        cut = tf.sqrt(1.0 - beta(config.cutmix, 20))
        ch = tf.cast(tf.cast(h, tf.float32) * cut, tf.int32)
        cw = tf.cast(tf.cast(w, tf.float32) * cut, tf.int32)
        y0 = tf.random.uniform((), 0, h - ch + 1, dtype=tf.int32, seed=seed + 30)
        x0 = tf.random.uniform((), 0, w - cw + 1, dtype=tf.int32, seed=seed + 31)
        rows = tf.logical_and(tf.range(h) >= y0, tf.range(h) < y0 + ch)
        cols = tf.logical_and(tf.range(w) >= x0, tf.range(w) < x0 + cw)
        box = tf.logical_and(rows[:, None], cols[None, :])[None, :, :, None]
        lam = 1.0 - tf.cast(ch * cw, tf.float32) / tf.cast(h * w, tf.float32)
        return tf.where(box, other, images), lam * one_hot + (1 - lam) * other_labels

    def mix(images: Any, labels: Any) -> tuple[Any, Any]:
        one_hot = tf.one_hot(labels, num_classes)
        order = tf.random.shuffle(tf.range(tf.shape(labels)[0]), seed=seed + 40)
        args = (images, one_hot, tf.gather(images, order), tf.gather(one_hot, order))
        if config.mixup and config.cutmix:
            coin = tf.random.uniform((), seed=seed + 41) < 0.5
            return tf.cond(coin, lambda: cutmix(*args), lambda: mixup(*args))
        return cutmix(*args) if config.cutmix else mixup(*args)

    def augment(images: Any, labels: Any) -> tuple[Any, Any]:
        if geometric is not None:  # float16 out under mixed_float16: mixing needs float32
            images = tf.cast(geometric(images, training=True), tf.float32)
        if config.crop < 1.0:
            images = crop(images)
        images = tf.clip_by_value(images, 0.0, 255.0)
        return mix(images, labels) if config.mixes_labels() else (images, labels)

    return augment
