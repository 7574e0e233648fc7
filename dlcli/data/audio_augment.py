"""Training-time augmentation of waveforms, declared under `data.augment` of an audio source.

Speed perturbation, background noise (recordings, or generated white, pink or brown noise) at a
random signal-to-noise ratio, time shift and gain, applied to whole training batches inside
tf.data; nothing here runs at evaluation or prediction time.
SpecAugment masks spectrograms, so it lives with the front-end layers in the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from dlcli.config.base import ResolvedPath, StrictModel
from dlcli.errors import DataError

MAX_NOISE_SECONDS = 1800  # noise is held in memory, inside the input pipeline's graph
log = logging.getLogger("dlcli")
NoiseColor = Literal["white", "pink", "brown"]
# Generated noise: amplitude spectrum proportional to f ** -exponent (power 1/f for pink).
COLOR_EXPONENTS: dict[str, float] = {"white": 0.0, "pink": 0.5, "brown": 1.0}


class BackgroundNoiseConfig(StrictModel):
    """`data.augment.noise`: noise mixed under training clips, from recordings or generated."""

    path: ResolvedPath | None = Field(
        None,
        description="folder of noise recordings (searched recursively); without it the noise "
        "is generated, in the `colors` given",
    )
    colors: list[NoiseColor] = Field(
        ["white", "pink"],
        min_length=1,
        description="generated noise (no path): a colour drawn per clip; white is flat, pink "
        "falls 3 dB and brown 6 dB per octave",
    )
    snr_db: tuple[float, float] = Field(
        (5.0, 20.0),
        description="[min, max] signal-to-noise ratio in dB, drawn for each clip, over the "
        "recording (not the zero padding after it)",
    )
    probability: float = Field(1.0, ge=0.0, le=1.0, description="share of clips that get noise")

    @model_validator(mode="after")
    def _ordered(self) -> BackgroundNoiseConfig:
        low, high = self.snr_db
        if low > high:
            raise ValueError(f"snr_db is [min, max], got [{low}, {high}]")
        if self.path is not None and "colors" in self.model_fields_set:
            raise ValueError(
                "colors is for generated noise; with `path`, the recordings are the noise. "
                "Remove one of them"
            )
        return self


class AudioAugmentConfig(StrictModel):
    """`data.augment` of an audio source: all off by default."""

    shift: float = Field(
        0.0, ge=0.0, lt=1.0, description="max time shift either way, fraction of the clip"
    )
    shift_mode: Literal["roll", "pad"] = Field(
        "roll", description="roll: what leaves one end comes back at the other; pad: zeros come in"
    )
    gain_db: float = Field(0.0, ge=0.0, description="max gain change either way, dB")
    speed: tuple[float, float] | None = Field(
        None,
        description="[min, max] speed factor drawn per clip, e.g. [0.9, 1.1]: tempo and pitch "
        "change together, as Kaldi's speed perturbation (new voices from few speakers)",
    )

    @model_validator(mode="after")
    def _speed_range(self) -> AudioAugmentConfig:
        if self.speed is not None:
            low, high = self.speed
            if not 0.5 <= low <= high <= 2.0:
                raise ValueError(f"speed is [min, max] within [0.5, 2], got [{low}, {high}]")
        return self

    noise: BackgroundNoiseConfig | None = Field(
        None,
        description="background noise: recordings from a folder ({path: noises/}), or generated "
        "({} for white and pink): new microphones and rooms from few recordings",
    )

    def active(self) -> bool:
        return self != AudioAugmentConfig()


def load_noise(folder: Path, sample_rate: int) -> np.ndarray:
    """Every noise recording in `folder`, decoded as training clips are and joined end to end."""
    from dlcli.data.audio import AUDIO_EXTENSIONS, log_skipped_audio, read_audio, scan_audio

    files = sorted(
        str(p) for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
    )
    scan = scan_audio(files, files, on_bad_file="skip")
    log_skipped_audio(scan.bad)
    if not scan.good:
        raise DataError(
            f"No usable noise recordings in {folder}. Received: {len(files)} audio file(s).",
            hint=f"point `data.augment.noise.path` at {', '.join(AUDIO_EXTENSIONS)} files",
        )
    noise = np.concatenate([read_audio(f, sample_rate) for f in scan.good])
    if noise.shape[0] > MAX_NOISE_SECONDS * sample_rate:
        log.warning("noise: using the first %d s of %s", MAX_NOISE_SECONDS, folder)
        noise = noise[: MAX_NOISE_SECONDS * sample_rate]
    return noise


def build_audio_augmenter(
    config: AudioAugmentConfig, sample_rate: int, seed: int, *, whole: bool = False
) -> Callable[[Any, Any], tuple[Any, Any]]:
    """A function for `dataset.map` over *batches* of (waveforms [batch, samples], labels).

    Draws come from one seeded generator whose state carries on across epochs, so every epoch
    sees new shifts, noise and gains. `whole`: zero-padded whole utterances, which a slower
    speed lengthens (clips keep their length).
    """
    import tensorflow as tf

    from dlcli.layers.sequence import recording_lengths

    generator = tf.random.Generator.from_seed(seed)
    recorded = None
    if config.noise is not None and config.noise.path is not None:
        recorded = tf.constant(load_noise(config.noise.path, sample_rate))

    def shift(waves: Any) -> Any:
        batch, length = tf.shape(waves)[0], tf.shape(waves)[1]
        most = tf.cast(tf.cast(length, tf.float32) * config.shift, tf.int32)
        offsets = generator.uniform([batch], -most, most + 1, dtype=tf.int32)
        source = tf.range(length)[None, :] - offsets[:, None]
        if config.shift_mode == "roll":
            return tf.gather(waves, tf.math.floormod(source, length), batch_dims=1)
        inside = (source >= 0) & (source < length)
        moved = tf.gather(waves, tf.clip_by_value(source, 0, length - 1), batch_dims=1)
        return tf.where(inside, moved, tf.zeros_like(moved))

    def recorded_noise(batch: Any, length: Any, noise: Any) -> Any:
        """A random stretch of the noise recordings per clip (wrapping around their end)."""
        total = tf.shape(noise)[0]
        starts = generator.uniform([batch], 0, total, dtype=tf.int32)
        return tf.gather(noise, tf.math.floormod(starts[:, None] + tf.range(length), total))

    def generated_noise(batch: Any, length: Any, colors: list[NoiseColor]) -> Any:
        """Gaussian noise shaped in frequency: a colour of `colors` per clip."""
        white = generator.normal([batch, length])
        exponents = [COLOR_EXPONENTS[c] for c in colors]
        if not any(exponents):
            return white
        spectrum = tf.signal.rfft(white, fft_length=[length])
        bins = tf.shape(spectrum)[1]
        drawn = generator.uniform([batch], 0, len(colors), dtype=tf.int32)
        exponent = tf.gather(tf.constant(exponents, tf.float32), drawn)[:, None]
        index = tf.maximum(tf.cast(tf.range(bins), tf.float32), 1.0)[None, :]
        shape = tf.where(tf.range(bins)[None, :] > 0, index ** (-exponent), 0.0)  # no DC
        return tf.signal.irfft(spectrum * tf.cast(shape, tf.complex64), fft_length=[length])

    def add_noise(waves: Any, noise_config: BackgroundNoiseConfig) -> Any:
        """Noise at the drawn SNR over each clip's recording: up to its last non-zero sample,
        so the zero padding after it stays silent, as it is at evaluation (and whole
        utterances keep the length their frame masks read from it)."""
        batch, length = tf.shape(waves)[0], tf.shape(waves)[1]
        if recorded is not None:
            segments = recorded_noise(batch, length, recorded)
        else:
            segments = generated_noise(batch, length, noise_config.colors)
        heard = recording_lengths(waves)[:, None]
        span = tf.cast(tf.range(length)[None, :] < heard, tf.float32)
        count = tf.maximum(tf.cast(heard, tf.float32), 1.0)
        segments = segments * span
        low, high = noise_config.snr_db
        snr = generator.uniform([batch, 1], low, high)
        signal_power = tf.reduce_sum(tf.square(waves), axis=1, keepdims=True) / count
        noise_power = tf.reduce_sum(tf.square(segments), axis=1, keepdims=True) / count + 1e-12
        scale = tf.sqrt(signal_power / (noise_power * 10.0 ** (snr / 10.0)))
        chosen = generator.uniform([batch, 1]) < noise_config.probability
        return waves + tf.where(chosen, scale, 0.0) * segments

    def change_speed(waves: Any, low: float, high: float) -> Any:
        """Resample each clip by its own factor (linear interpolation); what runs past the
        input is zeros."""
        batch, length = tf.shape(waves)[0], tf.shape(waves)[1]
        out = length
        if whole:
            out = tf.cast(tf.math.ceil(tf.cast(length, tf.float32) / low), tf.int32)
        rates = generator.uniform([batch, 1], low, high)
        position = tf.cast(tf.range(out), tf.float32)[None, :] * rates
        left = tf.cast(tf.floor(position), tf.int32)
        fraction = position - tf.floor(position)
        a = tf.gather(waves, tf.minimum(left, length - 1), batch_dims=1)
        b = tf.gather(waves, tf.minimum(left + 1, length - 1), batch_dims=1)
        return tf.where(left < length - 1, a + fraction * (b - a), 0.0)

    def augment(waves: Any, labels: Any) -> tuple[Any, Any]:
        if config.speed is not None:
            waves = change_speed(waves, *config.speed)
        if config.noise is not None:  # before the shift: the noise moves with its clip
            waves = add_noise(waves, config.noise)
        if config.shift:
            waves = shift(waves)
        if config.gain_db:
            batch = tf.shape(waves)[0]
            gain_db = generator.uniform([batch, 1], -config.gain_db, config.gain_db)
            waves = waves * 10.0 ** (gain_db / 20.0)
        return waves, labels

    return augment
