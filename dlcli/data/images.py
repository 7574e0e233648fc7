"""The one place images are decoded: training, evaluation and prediction all go through here.

Pillow does the decoding (inside tf.data, in parallel) because TensorFlow's decoders ignore EXIF
orientation, cannot read WebP and decode a 3024x3024 JPEG at full size before shrinking it;
Pillow's JPEG draft mode decodes such a photo directly at 1/2, 1/4 or 1/8 scale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlcli.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
log = logging.getLogger("dlcli")


def read_image(path: str | bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """Decode one file to a uint8 [height, width, channels] array, upright and resized."""
    from PIL import Image, ImageOps

    if isinstance(path, bytes):
        path = path.decode()
    height, width = size
    mode = "L" if channels == 1 else "RGB"
    with Image.open(path) as opened:
        opened.draft(mode, (width, height))  # JPEG only: decode at the smallest scale >= size
        img: Any = ImageOps.exif_transpose(opened)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            background = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, img.convert("RGBA"))
        img = img.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


@dataclass
class ScanResult:
    good: list[str]
    labels: list[Any]
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def scan_images(paths: list[str], labels: list[Any], on_bad_file: str) -> ScanResult:
    """Check every file's header before training: skip or fail on the unreadable ones."""
    from PIL import Image, UnidentifiedImageError

    result = ScanResult([], [])
    for path, label in zip(paths, labels, strict=True):
        try:
            with Image.open(path) as img:
                img.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if on_bad_file == "fail":
                raise DataError(
                    f"Cannot read image {path}: {reason}",
                    hint="fix or remove the file, or set `data.on_bad_file: skip`",
                ) from None
            result.bad.append((path, reason))
            continue
        result.good.append(path)
        result.labels.append(label)
    return result


def log_skipped(bad: list[tuple[str, str]]) -> None:
    if bad:
        log.warning("skipped %d unreadable image(s):", len(bad))
        for path, reason in bad:
            log.warning("  %s: %s", path, reason)


DECODE_BATCH = 32  # files per Pillow call: amortises the Python and tf.data overhead


def decode_images(paths: Any, image_size: tuple[int, int], channels: int) -> Any:
    """The tf.data op: a batch of files to a float32 [N, H, W, C] tensor of raw 0-255 pixels.

    Normalisation lives in the model (its first layers), so a saved model takes raw pixels
    and training, evaluation and serving cannot drift apart.
    """
    import tensorflow as tf

    def read_many(batch: np.ndarray) -> np.ndarray:
        return np.stack([read_image(p, image_size, channels) for p in batch])

    images = tf.numpy_function(read_many, [paths], tf.uint8, stateful=False)
    images = tf.ensure_shape(images, (None, *image_size, channels))
    return tf.cast(images, tf.float32)


def image_dataset(
    paths: list[str], labels: list[int], image_size: tuple[int, int], channels: int
) -> Any:
    """A tf.data pipeline of decoded `(image, label)` pairs, decoded in parallel, in order."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int32))
    )
    ds = ds.batch(DECODE_BATCH).map(
        lambda p, y: (decode_images(p, image_size, channels), y),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.unbatch().apply(tf.data.experimental.assert_cardinality(len(paths)))


def fit_image(image: Any, image_size: tuple[int, int] | None, channels: int) -> Any:
    """An already-decoded tensor (TFDS, NumPy) to float32 [H, W, channels] raw pixels."""
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    have = image.shape[-1]
    if have == 4:
        image = image[..., :3]
        have = 3
    if have == 1 and channels == 3:
        image = tf.image.grayscale_to_rgb(image)
    elif have == 3 and channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    image = tf.cast(image, tf.float32)
    if image_size is not None:
        image = tf.image.resize(image, image_size, antialias=True)
        image = tf.ensure_shape(image, (*image_size, channels))
    return image
