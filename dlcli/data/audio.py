"""The one place audio is decoded: training, evaluation, prediction and noise files all come here.

soundfile (libsndfile) reads WAV of any bit depth (8/16/24/32-bit int and float, including
WAVE_FORMAT_EXTENSIBLE headers), FLAC and OGG; TensorFlow's `decode_wav` rejects 24-bit files
(tensorflow#30877) and tensorflow-io is pinned to an old TensorFlow. Channels are averaged to mono
(peers crash on stereo: speechbrain#2239) and soxr resamples (HQ), much faster than resampy.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt

from dlcli.config.base import ResolvedPath, StrictModel
from dlcli.data.audio_augment import AudioAugmentConfig
from dlcli.data.base import SPLITS, DataBundle, DataSpec, ReadInputs, padded_batch
from dlcli.data.images import ScanResult
from dlcli.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
DEFAULT_TARGET_DBFS = {"peak": -1.0, "rms": -20.0}
DECODE_BATCH = 16  # files per decoding call: amortises the Python and tf.data overhead
CACHE_VERSION = 2  # bump when decoding changes, so old disk caches are not reused
log = logging.getLogger("dlcli")


def normalize_level(wave: np.ndarray, mode: str, target_dbfs: float | None = None) -> np.ndarray:
    """Scale to a peak or RMS level in dBFS (1.0 = 0 dBFS); silence stays silence."""
    if mode == "none" or wave.size == 0:
        return wave
    level = float(np.max(np.abs(wave)) if mode == "peak" else np.sqrt(np.mean(np.square(wave))))
    if level <= 0.0:
        return wave
    target = DEFAULT_TARGET_DBFS[mode] if target_dbfs is None else target_dbfs
    return (wave * (10.0 ** (target / 20.0) / level)).astype(np.float32)


def read_audio(
    path: str | bytes, sample_rate: int, normalize: str = "none", target_dbfs: float | None = None
) -> np.ndarray:
    """Decode one file to float32 mono at `sample_rate`, channels averaged, optionally levelled."""
    import soundfile as sf
    import soxr

    if isinstance(path, bytes):
        path = path.decode()
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate and wave.size:
        wave = soxr.resample(wave, rate, sample_rate, quality="HQ")
    return normalize_level(np.ascontiguousarray(wave, dtype=np.float32), normalize, target_dbfs)


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end, or keep the centre: how evaluation and prediction see a clip."""
    if wave.shape[0] > length:
        start = (wave.shape[0] - length) // 2
        return wave[start : start + length]
    if wave.shape[0] < length:
        return np.pad(wave, (0, length - wave.shape[0]))
    return wave


def _wav_truncation(path: str) -> str | None:
    """A RIFF/WAVE file whose `data` chunk claims more bytes than the file holds was cut short;
    libsndfile reads what is there without a word, so the header is checked here."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            declared = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                held = size - handle.tell()
                if declared not in (0, 0xFFFFFFFF) and declared > held:
                    return f"truncated: header declares {declared} bytes of audio, file has {held}"
                return None
            handle.seek(declared + (declared & 1), os.SEEK_CUR)


def audio_problem(path: str) -> str | None:
    """Why a file cannot train (unreadable, empty, truncated, silent, NaN), or None if it can."""
    import soundfile as sf

    try:
        info = sf.info(path)
        if info.frames == 0:
            return "empty: 0 frames of audio"
        truncated = _wav_truncation(path) if info.format in ("WAV", "WAVEX") else None
        if truncated:
            return truncated
        heard = False
        for block in sf.blocks(path, blocksize=1 << 16, dtype="float32", always_2d=True):
            if not np.all(np.isfinite(block)):
                return "samples that are NaN or infinite"
            heard = heard or bool(np.any(block))
    except (RuntimeError, OSError, ValueError) as exc:  # LibsndfileError is a RuntimeError
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (
            "cannot open: " + message.split("': ", 1)[-1] if "Error opening" in message else message
        )
    return None if heard else "silent: every sample is zero"


def scan_audio(paths: list[str], labels: list[Any], on_bad_file: str) -> ScanResult:
    """Read every file once before training (threads: libsndfile releases the GIL)."""
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        problems = list(pool.map(audio_problem, paths))
    result = ScanResult([], [])
    for path, label, problem in zip(paths, labels, problems, strict=True):
        if problem is None:
            result.good.append(path)
            result.labels.append(label)
        elif on_bad_file == "fail":
            raise DataError(
                f"Cannot use audio file {path}: {problem}",
                hint="fix or remove the file, or set `data.on_bad_file: skip`",
            )
        else:
            result.bad.append((path, problem))
    return result


def log_skipped_audio(bad: list[tuple[str, str]]) -> None:
    if bad:
        log.warning("skipped %d unusable audio file(s):", len(bad))
        for path, reason in bad:
            log.warning("  %s: %s", path, reason)


@dataclass(frozen=True)
class DecodeSettings:
    """Everything that decides the decoded samples: the disk cache is keyed on it."""

    sample_rate: int
    normalize: str = "none"
    target_dbfs: float | None = None
    length: int | None = None  # samples: centre-fit at decode time; None keeps whole clips

    def decode(self, path: str | bytes) -> np.ndarray:
        wave = read_audio(path, self.sample_rate, self.normalize, self.target_dbfs)
        return wave if self.length is None else fit_length(wave, self.length)


def decoded_waves(paths: list[str], settings: DecodeSettings) -> Any:
    """A tf.data pipeline of decoded float32 waveforms, decoded in parallel, in order."""
    import tensorflow as tf

    def read_many(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        waves = [settings.decode(p) for p in batch]
        lengths = np.array([w.shape[0] for w in waves], np.int32)
        out = np.zeros((len(waves), int(lengths.max(initial=0))), np.float32)
        for row, wave in zip(out, waves, strict=True):
            row[: wave.shape[0]] = wave
        return out, lengths

    def decode(batch: Any) -> tuple[Any, Any]:
        waves, lengths = tf.numpy_function(
            read_many, [batch], (tf.float32, tf.int32), stateful=False
        )
        return tf.ensure_shape(waves, (None, settings.length)), tf.ensure_shape(lengths, (None,))

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string))
    ds = ds.batch(DECODE_BATCH).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.unbatch().map(lambda wave, n: wave[:n])


def random_crop(length: int, seed: int) -> Any:
    """A map over (wave, label, random int): a window of `length` samples at a random start
    (zero-padded when shorter). The random ints come from `Dataset.random(...,
    rerandomize_each_iteration=True)`: a new window every epoch, the same ones for the same seed."""
    import tensorflow as tf

    def crop(wave: Any, label: Any, draw: Any) -> tuple[Any, Any]:
        extra = tf.maximum(tf.shape(wave)[0] - length, 0)
        pair = tf.stack([draw, tf.constant(seed, tf.int64)])
        start = tf.random.stateless_uniform([], pair, 0, extra + 1, dtype=tf.int32)
        window = wave[start : start + length]
        window = tf.pad(window, [[0, length - tf.shape(window)[0]]])
        return tf.ensure_shape(window, (length,)), label

    return crop


def disk_cached(
    paths: list[str], labels: list[int], settings: DecodeSettings, options: AudioOptions
) -> tuple[ScanResult, Any]:
    """Scan and decode once into `cache_dir/<key>/`, reused by every later run (see
    dlcli.data.cache for how an interrupted run or two at once are handled)."""
    from dlcli.data.cache import cache_key, cached_scan, default_cache_dir

    def fill(scan: ScanResult, folder: Path) -> None:
        decoded_waves(scan.good, settings).cache(str(folder / "clips")).reduce(
            0, lambda count, _: count + 1
        )
        log.info("decoded %d audio files into the disk cache", len(scan.good))

    final, result = cached_scan(
        options.cache_dir or default_cache_dir("audio"),
        cache_key(paths, asdict(settings), CACHE_VERSION),
        paths,
        labels,
        lambda positions: scan_audio(paths, positions, options.on_bad_file),
        fill,
        options.on_bad_file,
        "Cannot use audio file",
    )
    return result, decoded_waves(result.good, settings).cache(str(final / "clips"))


class AudioInputs(StrictModel):
    """Every audio source: how files are decoded, how `predict` reads raw files for a model
    trained on it, and the augmentation of training batches."""

    input_extensions: ClassVar[tuple[str, ...]] = AUDIO_EXTENSIONS
    modality: ClassVar[str] = "audio"

    sample_rate: PositiveInt = Field(16000, description="every file is resampled to this rate, Hz")
    normalize: Literal["none", "peak", "rms"] = Field(
        "none", description="scale each clip to a peak or RMS level (`target_dbfs`), or leave it"
    )
    target_dbfs: float | None = Field(
        None, le=0.0, description="level for `normalize`, dBFS; default -1 (peak) or -20 (rms)"
    )
    augment: AudioAugmentConfig = Field(
        default_factory=AudioAugmentConfig, description="training batches only; all off by default"
    )

    def decode_settings(self, length: int | None, sample_rate: int | None = None) -> DecodeSettings:
        rate = sample_rate or self.sample_rate
        return DecodeSettings(rate, self.normalize, self.target_dbfs, length)

    def train_transform(self, num_classes: int, seed: int) -> Any:
        """A map over training batches of (waveforms, labels), or None: nothing to do."""
        if not self.augment.active():
            return None
        from dlcli.data.audio_augment import build_audio_augmenter

        log.info("audio augmentation: %s", self.augment.model_dump(exclude_defaults=True))
        whole = getattr(self, "targets", "label") == "transcript"
        return build_audio_augmenter(self.augment, self.sample_rate, seed, whole=whole)

    def read_inputs(self, paths: list[str], spec: DataSpec) -> ReadInputs:
        """Files for `predict`, decoded as in training; for a model of fixed-length clips the
        centre of a longer file is kept (see `read_windows` to classify all of it)."""
        scan = scan_audio(paths, [0] * len(paths), on_bad_file="skip")
        length = spec.input_shape[0]  # None: a model of whole utterances
        settings = self.decode_settings(length, spec.sample_rate)
        read = ReadInputs(decoded_waves(scan.good, settings), scan.good, scan.bad)
        if length is None:
            read.batch = padded_batch
        return read

    def read_windows(
        self, path: str, spec: DataSpec, window_s: float, hop_s: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """`read_windows` with this source's loudness normalisation."""
        return read_windows(path, spec, window_s, hop_s, self.normalize, self.target_dbfs)


class AudioOptions(AudioInputs):
    """Options shared by every audio source that decodes files."""

    duration: PositiveFloat = Field(
        1.0,
        description="clip length, seconds: shorter clips are zero-padded at the end; longer ones "
        "are cropped (a random window in training when `random_crop`, else the centre)",
    )
    random_crop: bool = Field(
        True, description="training clips longer than `duration`: a new random window each epoch"
    )
    cache: Literal["memory", "disk", "none"] = Field(
        "memory",
        description="keep decoded clips: in memory after the first epoch, or on disk under "
        "`cache_dir`, reused by later runs on the same files and settings",
    )
    cache_dir: ResolvedPath | None = Field(
        None, description="for `cache: disk`; default ~/.cache/dlcli/audio"
    )
    on_bad_file: Literal["skip", "fail"] = Field(
        "fail",
        description="empty, silent, truncated or unreadable files: skip them (listed in the "
        "log) or stop",
    )

    @property
    def clip_samples(self) -> int:
        return round(self.duration * self.sample_rate)


def decode_split(
    paths: list[str], labels: list[Any], settings: DecodeSettings, options: AudioOptions
) -> tuple[ScanResult, Any]:
    """Scan one split's files and decode the good ones, cached as `options.cache` says."""
    if options.cache == "disk" and paths:
        return disk_cached(paths, labels, settings, options)
    scan = scan_audio(paths, labels, options.on_bad_file)
    waves = decoded_waves(scan.good, settings)
    return scan, waves.cache() if options.cache == "memory" else waves


def split_waves(
    paths: list[str], labels: list[int], options: AudioOptions, training: bool, seed: int
) -> tuple[ScanResult, Any]:
    """One split's scanned files and `(wave, label)` dataset of `clip_samples` each."""
    import tensorflow as tf

    length = options.clip_samples
    whole = training and options.random_crop  # crop later, differently each epoch
    scan, waves = decode_split(
        paths, labels, options.decode_settings(None if whole else length), options
    )
    ds = tf.data.Dataset.zip(
        waves, tf.data.Dataset.from_tensor_slices(tf.constant(scan.labels, tf.int32))
    )
    if whole:
        crop = random_crop(length, seed)
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, draws).map(
            lambda pair, draw: crop(*pair, draw), num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        ds = ds.map(lambda wave, label: (tf.ensure_shape(wave, (length,)), label))
    return scan, ds.apply(tf.data.experimental.assert_cardinality(len(scan.good)))


def audio_bundle(
    parts: dict[str, tuple[list[str], list[int]]],
    class_names: list[str],
    options: AudioOptions,
    seed: int,
) -> DataBundle:
    """Scan, decode and cache the files of each split."""
    splits, sizes, skipped, known = {}, {}, [], {}
    counts: list[int] = []
    for name in SPLITS:
        paths, labels = parts.get(name, ([], []))
        scan, splits[name] = split_waves(paths, labels, options, name == "train", seed)
        skipped += scan.bad
        sizes[name] = len(scan.good)
        known[name] = list(scan.labels)
        if name == "train":
            tally = Counter(scan.labels)
            counts = [tally.get(i, 0) for i in range(len(class_names))]
    log_skipped_audio(skipped)
    return DataBundle(
        class_names=class_names,
        input_shape=(options.clip_samples,),
        splits=splits,
        sizes=sizes,
        class_counts=counts,
        skipped=skipped,
        modality="audio",
        labels=known,
        sample_rate=options.sample_rate,
    )


def read_windows(
    path: str,
    spec: DataSpec,
    window_s: float,
    hop_s: float,
    normalize: str = "none",
    target_dbfs: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A long recording as windows of `window_s` every `hop_s` seconds, each levelled on its own
    (as training levels each clip) and fitted to the model's clip length.

    Returns `[n_windows, samples]` and each window's start in seconds; the last window is
    zero-padded, so the end of the recording is always covered.
    """
    import soundfile as sf

    rate = spec.sample_rate
    if rate is None or spec.modality != "audio":
        raise DataError("read_windows needs a run trained on audio (its spec has a sample rate)")
    window, hop = round(window_s * rate), round(hop_s * rate)
    if window < 1 or hop < 1:
        raise DataError(
            f"Invalid window. Received: window {window_s} s, hop {hop_s} s. "
            f"Expected both at least one sample (1/{rate} s)."
        )
    try:
        wave = read_audio(path, rate)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise DataError(f"Cannot read audio file {path}: {exc}") from None
    if wave.size == 0:
        raise DataError(f"Cannot read audio file {path}: empty: 0 frames of audio")
    count = 1 + max(0, -(-(wave.shape[0] - window) // hop))
    starts = np.arange(count) * hop
    windows = [
        fit_length(
            normalize_level(fit_length(wave[s : s + window], window), normalize, target_dbfs),
            spec.input_shape[0],
        )
        for s in starts
    ]
    return np.stack(windows).astype(np.float32), starts / rate
