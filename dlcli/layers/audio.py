"""Audio front ends as Keras layers: a raw waveform `[batch, samples]` in, features
`[batch, frames, bins]` out, so saved and exported models take waveforms.

Two conventions, chosen by `backend`:

- `tf`: what TensorFlow's audio tutorials compute: `tf.signal.stft` frames without centering
  (`1 + (samples - win_length) // hop_length` frames), a periodic Hann window and the HTK mel
  matrix of `tf.signal.linear_to_mel_weight_matrix`.
- `librosa`: librosa's defaults, reproduced in the graph: centered frames (`1 + samples //
  hop_length`) padded by `pad_mode` (`constant` since librosa 0.10, `reflect` before), the
  periodic Hann window centered in `n_fft`, the Slaney mel scale and area norm of
  `librosa.filters.mel` (ported below, so neither training nor loading needs librosa), and
  `power_to_db` with `ref`, `amin` and a per-utterance `top_db`.

Keras's own `MelSpectrogram` is not used: it returns `[batch, mels, frames]`, and its `top_db`
floor is taken from the maximum over the whole batch, so one clip's features would depend on the
clips batched with it.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

BACKENDS = ("tf", "librosa")
SCALES = ("db", "log", "linear")


def _check(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(
            f"Invalid value for argument `{name}`. Received: {name}={value!r}. "
            f"Expected one of: {', '.join(map(repr, allowed))}."
        )


def periodic_hann(length: int) -> np.ndarray:
    """scipy's `get_window('hann', length, fftbins=True)`, as librosa and `tf.signal` use."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mels = hz / f_sp
    high = hz >= min_log_hz
    mels[high] = min_log_mel + np.log(hz[high] / min_log_hz) / logstep
    return mels


def _slaney_mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    hz = f_sp * mels
    high = mels >= min_log_mel
    hz[high] = min_log_hz * np.exp(logstep * (mels[high] - min_log_mel))
    return hz


def slaney_mel_matrix(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """`librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax).T` (Slaney scale and norm), in numpy:
    `[n_fft // 2 + 1, n_mels]`."""
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges_mel = np.linspace(
        _hz_to_slaney_mel(np.array([fmin], float))[0],
        _hz_to_slaney_mel(np.array([fmax], float))[0],
        n_mels + 2,
    )
    edges_hz = _slaney_mel_to_hz(edges_mel)
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]  # equal area per band
    return weights.astype("float32").T


def dct_matrix(size: int, keep: int) -> np.ndarray:
    """The orthonormal DCT-II (scipy's `dct(type=2, norm="ortho")`, as librosa's MFCC uses) as
    a `[size, keep]` matrix that keeps the first `keep` coefficients."""
    n = np.arange(size)
    basis = np.cos(np.pi * np.arange(keep)[:, None] * (2 * n[None, :] + 1) / (2 * size))
    basis *= np.sqrt(2.0 / size)
    basis[0] /= np.sqrt(2.0)
    return basis.T.astype("float32")


class _Spectral(keras.layers.Layer):
    """STFT framing, magnitude and log scaling shared by every front end. Computes in float32
    whatever the mixed-precision policy: an FFT in float16 loses the quiet bins."""

    def __init__(
        self,
        n_fft: int,
        hop_length: int,
        win_length: int | None = None,
        power: float = 2.0,
        scale: str = "db",
        backend: str = "tf",
        center: bool | None = None,
        pad_mode: str = "constant",
        top_db: float | None = 80.0,
        amin: float = 1e-10,
        ref: float = 1.0,
        log_offset: float = 1e-6,
        warp: tuple[float, float] | list[float] | None = None,
        warp_boundary: float = 0.8,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        _check("backend", backend, BACKENDS)
        _check("scale", scale, SCALES)
        _check("pad_mode", pad_mode, ("constant", "reflect"))
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.win_length = int(win_length or n_fft)
        if self.win_length > self.n_fft:
            raise ValueError(
                f"Invalid value for argument `win_length`. Received: win_length="
                f"{self.win_length}. Expected at most n_fft={self.n_fft}."
            )
        self.power, self.scale, self.backend_convention = float(power), scale, backend
        self.center = (backend == "librosa") if center is None else bool(center)
        self.pad_mode = pad_mode
        self.top_db, self.amin, self.ref, self.log_offset = top_db, amin, ref, log_offset
        self.warp = None if warp is None else (float(warp[0]), float(warp[1]))
        if self.warp is not None and not 0.5 <= self.warp[0] <= self.warp[1] <= 2.0:
            raise ValueError(
                f"Invalid value for argument `warp`. Received: warp={warp}. Expected "
                "[min, max] with 0.5 <= min <= max <= 2."
            )
        if not 0.0 < warp_boundary < 1.0:
            raise ValueError(
                f"Invalid value for argument `warp_boundary`. Received: {warp_boundary}. "
                "Expected a fraction of the Nyquist frequency in (0, 1)."
            )
        self.warp_boundary, self.seed = float(warp_boundary), seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.warp else None

    def frames(self, samples: int | None) -> int | None:
        if samples is None:
            return None
        if self.center:
            return 1 + samples // self.hop_length
        return 1 + (samples - self.win_length) // self.hop_length

    def spectrum(self, waveform: Any, training: bool | None = None) -> Any:
        """|STFT|^power: `[batch, frames, n_fft // 2 + 1]`, frequency-warped in training when
        `warp` is set."""
        import tensorflow as tf

        x = tf.cast(waveform, tf.float32)
        window = periodic_hann(self.win_length)
        if self.center:
            pad = self.n_fft // 2
            x = tf.pad(x, [[0, 0], [pad, pad]], mode=self.pad_mode.upper())
            left = (self.n_fft - self.win_length) // 2
            window = np.pad(window, (left, self.n_fft - self.win_length - left))
            frames = tf.signal.frame(x, self.n_fft, self.hop_length)
        else:
            frames = tf.signal.frame(x, self.win_length, self.hop_length)
        frames = frames * tf.constant(window, tf.float32)
        stft = tf.signal.rfft(frames, fft_length=[self.n_fft])
        if self.power == 2.0:
            power = tf.math.real(stft) ** 2 + tf.math.imag(stft) ** 2
        else:
            magnitude = tf.abs(stft)
            power = magnitude if self.power == 1.0 else magnitude**self.power
        if training and self.warp is not None:
            power = self.warp_frequencies(power)
        return power

    def warp_frequencies(self, spectrum: Any) -> Any:
        """Vocal tract length perturbation (Jaitly and Hinton 2013): each example's frequency
        axis is scaled by a factor drawn from `warp`, piecewise linearly so the band edges stay
        put: below `warp_boundary` of Nyquist (times the factor when it is under 1) a bin takes
        the energy found at its frequency divided by the factor; above, a straight line joins
        that point to Nyquist. Interpolated linearly between bins."""
        import tensorflow as tf

        assert self.warp is not None
        low, high = self.warp
        bins = spectrum.shape[-1]
        top = float(bins - 1)
        alpha = keras.random.uniform(
            (tf.shape(spectrum)[0], 1), low, high, seed=self.seed_generator
        )
        out = tf.range(bins, dtype=tf.float32)[None, :]  # each output bin's frequency
        knee = self.warp_boundary * top * tf.minimum(alpha, 1.0)  # where the line bends
        below = out / alpha
        above = top - (top - out) * (top - knee / alpha) / (top - knee)
        source = tf.clip_by_value(tf.where(out <= knee, below, above), 0.0, top)
        left = tf.floor(source)
        weight = (source - left)[:, None, :]
        left = tf.cast(left, tf.int32)
        right = tf.minimum(left + 1, bins - 1)
        at_left = tf.gather(spectrum, left, axis=2, batch_dims=1)
        at_right = tf.gather(spectrum, right, axis=2, batch_dims=1)
        return at_left + (at_right - at_left) * weight

    def compress(self, x: Any) -> Any:
        """`db`: librosa's `power_to_db` per utterance; `log`: log(x + log_offset)."""
        import tensorflow as tf

        if self.scale == "linear":
            return x
        if self.scale == "log":
            return tf.math.log(x + self.log_offset)
        ten_over_ln10 = 10.0 / np.log(10.0)
        db = ten_over_ln10 * tf.math.log(tf.maximum(x, self.amin))
        db -= 10.0 * np.log10(max(self.ref, self.amin))
        if self.top_db is not None:
            floor = tf.reduce_max(db, axis=[1, 2], keepdims=True) - self.top_db
            db = tf.maximum(db, floor)
        return db

    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (input_shape[0], self.frames(input_shape[1]), self.bins())

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "win_length": self.win_length,
            "power": self.power,
            "scale": self.scale,
            "backend": self.backend_convention,
            "center": self.center,
            "pad_mode": self.pad_mode,
            "top_db": self.top_db,
            "amin": self.amin,
            "ref": self.ref,
            "log_offset": self.log_offset,
            "warp": self.warp,
            "warp_boundary": self.warp_boundary,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="dlcli")
class STFTMagnitude(_Spectral):
    """The STFT's magnitude (`power=1`) or power (`power=2`), optionally in dB or log:
    `[batch, frames, n_fft // 2 + 1]`."""

    def __init__(self, n_fft: int, hop_length: int, **kwargs: Any) -> None:
        kwargs.setdefault("power", 1.0)
        kwargs.setdefault("scale", "linear")
        super().__init__(n_fft, hop_length, **kwargs)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.compress(self.spectrum(inputs, training))


@keras.saving.register_keras_serializable(package="dlcli")
class LogMelSpectrogram(_Spectral):
    """Mel band energies of the STFT power, in dB (default) or log: `[batch, frames, n_mels]`.
    With `backend="librosa"` this is `librosa.power_to_db(librosa.feature.melspectrogram(...))`.
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        n_mels: int = 40,
        fmin: float = 0.0,
        fmax: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(n_fft, hop_length, **kwargs)
        self.sample_rate, self.n_mels = int(sample_rate), int(n_mels)
        self.fmin = float(fmin)
        self.fmax = float(fmax) if fmax is not None else self.sample_rate / 2.0
        if not 0.0 <= self.fmin < self.fmax <= self.sample_rate / 2.0:
            raise ValueError(
                f"Invalid value for arguments `fmin`, `fmax`. Received: fmin={self.fmin}, "
                f"fmax={self.fmax}. Expected 0 <= fmin < fmax <= sample_rate / 2 = "
                f"{self.sample_rate / 2}."
            )
        self.mel_matrix = self._mel_matrix()

    def _mel_matrix(self) -> np.ndarray:
        if self.backend_convention == "librosa":
            return slaney_mel_matrix(
                self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax
            )
        import tensorflow as tf

        matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=self.n_mels,
            num_spectrogram_bins=self.n_fft // 2 + 1,
            sample_rate=self.sample_rate,
            lower_edge_hertz=self.fmin,
            upper_edge_hertz=self.fmax,
        )
        return np.asarray(matrix, dtype="float32")

    def mel(self, inputs: Any, training: bool | None = None) -> Any:
        import tensorflow as tf

        power = self.spectrum(inputs, training)
        return self.compress(tf.tensordot(power, tf.constant(self.mel_matrix), axes=1))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.mel(inputs, training)

    def bins(self) -> int:
        return self.n_mels

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "n_mels": self.n_mels,
            "fmin": self.fmin,
            "fmax": self.fmax,
        }


@keras.saving.register_keras_serializable(package="dlcli")
class MFCC(LogMelSpectrogram):
    """The first `n_mfcc` coefficients of the orthonormal DCT-II of the log-mel spectrogram:
    `[batch, frames, n_mfcc]`. With `backend="librosa"` this is `librosa.feature.mfcc(...)`."""

    def __init__(
        self, sample_rate: int, n_fft: int, hop_length: int, n_mfcc: int = 13, **kwargs: Any
    ) -> None:
        super().__init__(sample_rate, n_fft, hop_length, **kwargs)
        self.n_mfcc = int(n_mfcc)
        if self.scale == "linear" or not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(
                f"Invalid value for arguments `n_mfcc`, `scale`. Received: n_mfcc={self.n_mfcc},"
                f" scale={self.scale!r}. Expected 1 <= n_mfcc <= n_mels={self.n_mels} and a "
                "log scale (db or log)."
            )
        self.dct_matrix = dct_matrix(self.n_mels, self.n_mfcc)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        import tensorflow as tf

        # A matmul, not tf.signal.dct: the same numbers, and TFLite converts it.
        mel = self.mel(inputs, training)
        return tf.tensordot(mel, tf.constant(self.dct_matrix), axes=1)

    def bins(self) -> int:
        return self.n_mfcc

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_mfcc": self.n_mfcc}


@keras.saving.register_keras_serializable(package="dlcli")
class UtteranceNormalization(keras.layers.Layer):
    """Zero mean and unit variance over time, per feature bin and per utterance (cepstral mean
    and variance normalisation): removes a clip's loudness and channel colouring."""

    def __init__(self, epsilon: float = 1e-5, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, inputs: Any, valid: Any = None) -> Any:
        """`valid` (`[batch, frames]`, True on audio): statistics over those frames only, and
        padded frames come out as 0, so a clip normalises the same alone or in a padded batch."""
        from keras import ops

        if valid is None:
            mean = ops.mean(inputs, axis=1, keepdims=True)
            variance = ops.var(inputs, axis=1, keepdims=True)
            return (inputs - mean) * ops.rsqrt(variance + self.epsilon)
        weight = ops.cast(valid, inputs.dtype)[:, :, None]
        count = ops.maximum(ops.sum(weight, axis=1, keepdims=True), 1.0)
        mean = ops.sum(inputs * weight, axis=1, keepdims=True) / count
        variance = ops.sum(ops.square(inputs - mean) * weight, axis=1, keepdims=True) / count
        return (inputs - mean) * ops.rsqrt(variance + self.epsilon) * weight

    def compute_output_shape(self, inputs_shape: Any, valid_shape: Any = None) -> Any:
        return inputs_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="dlcli")
class SpecAugment(keras.layers.Layer):
    """SpecAugment's masks (Park et al. 2019) on `[batch, frames, bins, ...]` features, in
    training only: per example, `time_masks` runs of 0 to `time_width` frames and `freq_masks`
    runs of 0 to `freq_width` bins, each at a uniformly drawn place, are set to the example's
    mean (zero after utterance normalisation, as in the paper)."""

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 8,
        time_masks: int = 2,
        time_width: int = 10,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.time_masks, self.time_width = int(time_masks), int(time_width)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _masked(self, batch: Any, size: Any, count: int, width: int) -> Any:
        """`[batch, size]` booleans: the union of `count` random runs of 0..width positions."""
        from keras import ops

        if count == 0 or width == 0:
            return ops.zeros((batch, size), dtype="bool")
        width = ops.minimum(width, size)
        draw = keras.random.uniform((batch, count, 2), seed=self.seed_generator)
        widths = ops.floor(draw[..., 0] * ops.cast(width + 1, "float32"))
        starts = ops.floor(draw[..., 1] * (ops.cast(size, "float32") - widths + 1.0))
        positions = ops.cast(ops.arange(size), "float32")[None, None, :]
        inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])
        return ops.any(inside, axis=1)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        from keras import ops

        if not training:
            return inputs
        shape = ops.shape(inputs)
        batch, frames, bins = shape[0], shape[1], shape[2]
        extra = [1] * (len(inputs.shape) - 3)
        time = ops.reshape(
            self._masked(batch, frames, self.time_masks, self.time_width),
            [batch, frames, 1, *extra],
        )
        freq = ops.reshape(
            self._masked(batch, bins, self.freq_masks, self.freq_width), [batch, 1, bins, *extra]
        )
        axes = list(range(1, len(inputs.shape)))
        mean = ops.mean(inputs, axis=axes, keepdims=True)
        return ops.where(time | freq, mean, inputs)

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "freq_masks": self.freq_masks,
            "freq_width": self.freq_width,
            "time_masks": self.time_masks,
            "time_width": self.time_width,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="dlcli")
class SpectrogramImage(keras.layers.Layer):
    """Features `[batch, frames, bins]` to an image `[batch, frames, bins, channels]` of 0-255
    pixels, min-max scaled per example: what an ImageNet backbone's `preprocess_input` expects,
    whatever the front end's units."""

    def __init__(self, channels: int = 3, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.channels = int(channels)

    def call(self, inputs: Any) -> Any:
        from keras import ops

        low = ops.min(inputs, axis=[1, 2], keepdims=True)
        high = ops.max(inputs, axis=[1, 2], keepdims=True)
        pixels = 255.0 * (inputs - low) / ops.maximum(high - low, 1e-6)
        return ops.repeat(ops.expand_dims(pixels, -1), self.channels, axis=-1)

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*input_shape, self.channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="dlcli")
class AttentionPooling(keras.layers.Layer):
    """A weighted mean over time, `[batch, frames, features]` to `[batch, features]`: each frame
    scores `v . tanh(W h + b)`, softmax over frames gives the weights, so the frames that carry
    the word count, not the silence around it."""

    def __init__(self, units: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape: tuple[Any, ...]) -> None:
        features = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(features, self.units), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.query = self.add_weight(
            name="query", shape=(self.units, 1), initializer="glorot_uniform"
        )

    def call(self, inputs: Any) -> Any:
        from keras import ops

        hidden = ops.tanh(ops.matmul(inputs, self.kernel) + self.bias)
        scores = ops.cast(ops.matmul(hidden, self.query), "float32")  # softmax in float32
        weights = ops.cast(ops.softmax(scores, axis=1), inputs.dtype)
        return ops.sum(weights * inputs, axis=1)

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


AUDIO_LAYERS: dict[str, Any] = {
    cls.__name__: cls
    for cls in (
        STFTMagnitude,
        LogMelSpectrogram,
        MFCC,
        UtteranceNormalization,
        SpecAugment,
        SpectrogramImage,
        AttentionPooling,
    )
}
