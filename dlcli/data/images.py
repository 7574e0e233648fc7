"""The one place images are decoded: training, evaluation and prediction all go through here.

Files are scanned once with Pillow, reading only their headers: format, mode, size and EXIF
orientation (and whether the file can be read at all). Each file then gets a decoder:

- JPEG, PNG, GIF and BMP in the modes TensorFlow's own ops handle are decoded inside the tf.data
  graph, in parallel, off the GIL. A large JPEG is decoded at 1/2, 1/4 or 1/8 scale in the DCT
  domain (a 3024x3024 phone photo never exists at full size), the EXIF orientation read by the
  scan is applied in the graph, and transparent pixels are composited over white.
- The rest (WebP, 16-bit and palette-with-transparency PNGs, CMYK JPEGs, TIFF...) goes through
  Pillow in a `tf.numpy_function`, one file at a time.

Every image is resized to the model's size (bilinear, see `resize`) and kept as uint8: caches hold
a quarter of the bytes of float32. Batches are cast to float32 as they are made (`image_batch`);
normalisation lives in the model, so a saved model takes raw 0-255 pixels and training,
evaluation and serving cannot drift apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlcli.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
log = logging.getLogger("dlcli")

# Decoders, chosen per file by the scan.
JPEG, PNG, PNG_ALPHA, GIF, BMP, PILLOW = range(6)
EXIF_ORIENTATION = 0x0112
JPEG_SCALES = (1, 2, 4, 8)  # libjpeg decodes at these fractions of full size


def read_image(path: str | bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """Decode one file to a uint8 [height, width, channels] array, upright and resized, exactly
    as the tf.data pipeline does (for tests and one-off use; pipelines use `image_dataset`)."""
    if isinstance(path, bytes):
        path = path.decode()
    scan = scan_images([path], [0], on_bad_file="fail", size=size)
    (image, _), *_ = image_dataset(scan, size, channels).as_numpy_iterator()
    return np.asarray(image)


def pillow_read(path: str | bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """Pillow's decode for the formats and modes TensorFlow's ops do not handle."""
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
    """The readable files (with their labels and how to decode each) and the unreadable ones."""

    good: list[str]
    labels: list[Any]
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    decoders: list[int] = field(default_factory=list)  # JPEG, PNG, ... per good file
    orientations: list[int] = field(default_factory=list)  # EXIF 1-8, applied in the graph
    scales: list[int] = field(default_factory=list)  # JPEG: index into JPEG_SCALES
    large: list[bool] = field(default_factory=list)  # decoded at more than 2x the target size

    def add(
        self, path: str, label: Any, decoder: int, orientation: int, scale: int, large: bool
    ) -> None:
        self.good.append(path)
        self.labels.append(label)
        self.decoders.append(decoder)
        self.orientations.append(orientation)
        self.scales.append(scale)
        self.large.append(large)


def choose_decoder(img: Any) -> int:
    """TensorFlow's ops where they decode the file exactly; Pillow for everything else."""
    fmt, mode, info = img.format, img.mode, img.info
    if fmt in ("JPEG", "MPO") and mode in ("L", "RGB"):
        return JPEG
    if fmt == "PNG" and mode in ("L", "RGB") and "transparency" not in info:
        return PNG
    if fmt == "PNG" and mode in ("LA", "RGBA"):
        return PNG_ALPHA
    if fmt == "GIF" and "transparency" not in info:
        return GIF
    if fmt == "BMP" and mode == "RGB":
        return BMP
    return PILLOW


def jpeg_scale(raw_size: tuple[int, int], target: tuple[int, int] | None) -> int:
    """The largest DCT scale-down that still leaves at least the target size (as Pillow's draft)."""
    if target is None:
        return 0
    width, height = raw_size
    want_h, want_w = target
    best = 0
    for index, factor in enumerate(JPEG_SCALES):
        if -(-width // factor) >= want_w and -(-height // factor) >= want_h:
            best = index
    return best


def probe(path: str, size: tuple[int, int] | None) -> tuple[int, int, int, bool]:
    """Read a file's header: (decoder, EXIF orientation, JPEG scale, whether what is decoded
    is more than twice the target size). Raises when the file is unreadable."""
    from PIL import Image

    with Image.open(path) as img:
        decoder = choose_decoder(img)
        orientation = 1
        if decoder == JPEG:
            value = img.getexif().get(EXIF_ORIENTATION, 1)
            orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
        width, height = img.size
        if orientation >= 5:  # stored on its side: the upright height is the stored width
            width, height = height, width
        scale = jpeg_scale((width, height), size) if decoder == JPEG else 0
        factor = JPEG_SCALES[scale]
        large = (
            size is not None
            and decoder != PILLOW  # Pillow's path resizes by itself
            and (-(-height // factor) > 2 * size[0] or -(-width // factor) > 2 * size[1])
        )
        img.verify()
    return decoder, orientation, scale, large


def scan_images(
    paths: list[str],
    labels: list[Any],
    on_bad_file: str,
    size: tuple[int, int] | None = None,
) -> ScanResult:
    """Check every file's header before training (skip or fail on the unreadable ones) and note
    how to decode it at `size` [height, width]."""
    from PIL import UnidentifiedImageError

    result = ScanResult([], [])
    for path, label in zip(paths, labels, strict=True):
        try:
            decoder, orientation, scale, large = probe(path, size)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if on_bad_file == "fail":
                raise DataError(
                    f"Cannot read image {path}: {reason}",
                    hint="fix or remove the file, or set `data.on_bad_file: skip`",
                ) from None
            result.bad.append((path, reason))
            continue
        result.add(path, label, decoder, orientation, scale, large)
    return result


def log_skipped(bad: list[tuple[str, str]]) -> None:
    if bad:
        log.warning("skipped %d unreadable image(s):", len(bad))
        for path, reason in bad:
            log.warning("  %s: %s", path, reason)


def upright(image: Any, orientation: int) -> Any:
    """Apply an EXIF orientation (1-8) as Pillow's `ImageOps.exif_transpose` does."""
    import tensorflow as tf

    if orientation >= 5:  # 5-8: stored on its side
        image = tf.transpose(image, [1, 0, 2])
    axes = {2: [1], 3: [0, 1], 4: [0], 6: [1], 7: [0, 1], 8: [0]}.get(orientation)
    return tf.reverse(image, axes) if axes else image


def decode_file(
    path: Any, group: tuple[int, int, int, bool], size: tuple[int, int], channels: int
) -> Any:
    """The graph op for one file of a `group` (decoder, JPEG scale, EXIF orientation, large):
    a uint8 [height, width, channels] tensor, upright and resized. Everything about the group is
    known when the graph is built, so the graph has no branches: control flow per image, or a
    Python call in the graph even when no image takes it, costs 10-25% of the decoding rate each."""
    import tensorflow as tf

    decoder, scale, orientation, large = group
    if decoder == PILLOW:  # upright and resized by Pillow
        image = tf.numpy_function(
            lambda p: pillow_read(p, size, channels), [path], tf.uint8, stateful=False
        )
        return tf.ensure_shape(image, (*size, channels))

    def channels_of(rgb: Any) -> Any:
        return tf.image.rgb_to_grayscale(rgb) if channels == 1 else rgb

    data = tf.io.read_file(path)
    if decoder == JPEG:
        image = tf.io.decode_jpeg(data, channels=channels, ratio=JPEG_SCALES[scale])
    elif decoder == PNG:
        image = tf.io.decode_png(data, channels=channels)
    elif decoder == PNG_ALPHA:
        pixels = tf.cast(tf.io.decode_png(data, channels=4), tf.float32)
        alpha = pixels[..., 3:] / 255.0
        rgb = pixels[..., :3] * alpha + 255.0 * (1.0 - alpha)  # over white
        image = channels_of(tf.cast(rgb + 0.5, tf.uint8))
    elif decoder == GIF:
        image = channels_of(tf.io.decode_gif(data)[0])
    else:
        image = channels_of(tf.io.decode_bmp(data, channels=3))
    image = tf.ensure_shape(image, (None, None, channels))
    image = upright(image, orientation)
    # Antialiased only when shrinking by more than 2x: below that, plain bilinear reads every
    # source pixel, and the antialiasing kernel halves the rate. JPEGs rarely need it: the DCT
    # scale-down leaves less than 2x.
    image = tf.image.resize(image, size, antialias=large)
    # Bilinear weights (antialiased or not) are >= 0 and sum to 1: the result stays in 0-255.
    return tf.cast(image + 0.5, tf.uint8)


def image_dataset(scan: ScanResult, image_size: tuple[int, int], channels: int) -> Any:
    """A tf.data pipeline of `(uint8 image, label)` pairs, decoded in parallel, in order.

    Files are grouped by how they decode (decoder, JPEG scale, orientation, large); each group is
    a parallel map with a straight-line graph, and `choose_from_datasets` interleaves the groups
    back into the files' order. A folder of ordinary photos is one group."""
    import tensorflow as tf

    keys = list(zip(scan.decoders, scan.scales, scan.orientations, scan.large, strict=True))
    groups: dict[tuple[int, int, int, bool], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    parts = []
    for group, members in groups.items():
        part = tf.data.Dataset.from_tensor_slices(
            (
                tf.constant([scan.good[i] for i in members], tf.string),
                tf.constant([scan.labels[i] for i in members], tf.int32),
            )
        )
        parts.append(
            part.map(
                lambda p, y, g=group: (decode_file(p, g, image_size, channels), y),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        )
    if not parts:
        return tf.data.Dataset.from_tensor_slices(
            (tf.zeros((0, *image_size, channels), tf.uint8), tf.zeros((0,), tf.int32))
        )
    if len(parts) == 1:
        ds = parts[0]
    else:
        index = {key: n for n, key in enumerate(groups)}
        order = tf.constant([index[key] for key in keys], tf.int64)
        ds = tf.data.Dataset.choose_from_datasets(parts, tf.data.Dataset.from_tensor_slices(order))
    return ds.apply(tf.data.experimental.assert_cardinality(len(scan.good)))


def to_float(*parts: Any) -> Any:
    """uint8 pixels to float32 0-255 (other tensors untouched): what models take."""
    import tensorflow as tf

    def cast(tensor: Any) -> Any:
        return tf.cast(tensor, tf.float32) if tensor.dtype == tf.uint8 else tensor

    return tuple(cast(p) for p in parts) if len(parts) > 1 else cast(parts[0])


def image_batch(dataset: Any, batch_size: int, drop_remainder: bool) -> Any:
    """Batches of uint8 images (as cached) cast to float32 as they are made."""
    return dataset.batch(batch_size, drop_remainder=drop_remainder).map(to_float)


def fit_image(image: Any, image_size: tuple[int, int] | None, channels: int) -> Any:
    """An already-decoded tensor (TFDS, NumPy) to [H, W, channels] raw pixels: uint8 stays uint8
    (what the caches hold; `image_batch` casts), anything else becomes float32."""
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    was_uint8 = image.dtype == tf.uint8
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
    if was_uint8:
        image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    return image
