"""The one place images are decoded: training, evaluation and prediction all go through here."""

from __future__ import annotations

from typing import Any

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def decode_image(path: Any, image_size: tuple[int, int], channels: int) -> Any:
    """Read a file into a float32 [H, W, C] tensor of raw 0-255 pixels.

    Normalisation lives in the model (its first layers), so a saved model takes raw pixels
    and training, evaluation and serving cannot drift apart.
    """
    import tensorflow as tf

    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    image = tf.image.resize(image, image_size, antialias=True)
    image = tf.ensure_shape(image, (*image_size, channels))
    return tf.cast(image, tf.float32)


def image_dataset(
    paths: list[str], labels: list[int], image_size: tuple[int, int], channels: int
) -> Any:
    """A tf.data pipeline of decoded `(image, label)` pairs, decoded in parallel."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int32))
    )
    return ds.map(
        lambda p, y: (decode_image(p, image_size, channels), y),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
