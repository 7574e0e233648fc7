"""The audio front end every audio builder starts with: raw waveform in, features out, all as
layers inside the model (`dlcli.layers.audio`), so a saved model takes waveforms; and the
pieces every audio body shares (its input, pooling over time, its dense top)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from dlcli.config.base import StrictModel
from dlcli.errors import ConfigError
from dlcli.models.heads import EMBEDDING_LAYER


class SpecAugmentConfig(StrictModel):
    """`model.frontend.spec_augment`: SpecAugment's masks, in training only."""

    freq_masks: NonNegativeInt = Field(2, description="frequency masks per example")
    freq_width: NonNegativeInt = Field(8, description="widest frequency mask, in bins")
    time_masks: NonNegativeInt = Field(2, description="time masks per example")
    time_width: NonNegativeInt = Field(10, description="widest time mask, in frames")


class FrontEndConfig(StrictModel):
    """`model.frontend`: waveform to features `[frames, bins]`."""

    type: Literal["stft", "log_mel", "mfcc"] = "log_mel"
    backend: Literal["tf", "librosa"] = Field(
        "tf",
        description="tf: tf.signal conventions (uncentered frames, HTK mel); librosa: librosa's "
        "(centered frames, Slaney mel and norm, power_to_db), to match features computed with it",
    )
    window_ms: PositiveFloat = Field(25.0, description="analysis window")
    hop_ms: PositiveFloat = Field(10.0, description="step between frames")
    win_length: PositiveInt | None = Field(
        None, description="window in samples (librosa's win_length); overrides window_ms"
    )
    hop_length: PositiveInt | None = Field(
        None, description="hop in samples (librosa's hop_length); overrides hop_ms"
    )
    n_fft: PositiveInt | None = Field(None, description="FFT size; default: the next power of 2")
    n_mels: PositiveInt = 40
    n_mfcc: PositiveInt = Field(13, description="type mfcc: coefficients kept")
    fmin: float = Field(0.0, ge=0.0, description="lowest mel band edge, Hz")
    fmax: PositiveFloat | None = Field(None, description="highest mel band edge; default: Nyquist")
    power: PositiveFloat = Field(2.0, description="2: power spectrum; 1: magnitude")
    scale: Literal["db", "log", "linear"] = Field(
        "db",
        description="db: 10 log10 with top_db (librosa's power_to_db); log: ln(x + 1e-6); "
        "linear: none (stft only)",
    )
    top_db: PositiveFloat | None = Field(80.0, description="db: floor this far below the peak")
    pad_mode: Literal["constant", "reflect"] = Field(
        "constant", description="librosa backend: padding of centered frames (reflect: < 0.10)"
    )
    normalize: Literal["none", "utterance"] = Field(
        "utterance", description="utterance: zero mean, unit variance per bin over each clip"
    )
    vtlp: tuple[float, float] | None = Field(
        None,
        description="training only: [min, max] factor that scales each clip's frequency axis "
        "(vocal tract length perturbation), e.g. [0.9, 1.1]: new voices from few speakers",
    )
    spec_augment: SpecAugmentConfig | None = Field(
        None, description="time and frequency masks in training, e.g. {} for the defaults"
    )

    @model_validator(mode="after")
    def _consistent(self) -> FrontEndConfig:
        if self.type == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) must be at most n_mels ({self.n_mels})")
        if self.type != "stft" and self.scale == "linear":
            raise ValueError(f"type {self.type} needs a log scale: db or log")
        if self.vtlp is not None and not 0.5 <= self.vtlp[0] <= self.vtlp[1] <= 2.0:
            raise ValueError(f"vtlp is [min, max] within [0.5, 2], got {list(self.vtlp)}")
        if self.fmax is not None and self.fmax <= self.fmin:
            raise ValueError(f"fmax ({self.fmax}) must be above fmin ({self.fmin})")
        return self

    def lengths(self, sample_rate: int) -> tuple[int, int, int]:
        """(win_length, hop_length, n_fft) in samples at `sample_rate`."""
        win = self.win_length or round(sample_rate * self.window_ms / 1000)
        hop = self.hop_length or round(sample_rate * self.hop_ms / 1000)
        n_fft = self.n_fft or 2 ** math.ceil(math.log2(max(win, 2)))
        if n_fft < win:
            raise ConfigError(
                f"model.frontend.n_fft must be at least the window. Received: n_fft={n_fft}, "
                f"window {win} samples ({self.window_ms} ms at {sample_rate} Hz)."
            )
        return win, max(hop, 1), n_fft

    def framing(self, sample_rate: int, pools: list[int] | None = None) -> dict[str, Any]:
        """How the front end frames a waveform (see `dlcli.layers.sequence.frame_mask`): its hop,
        its window when frames are not centered (0: centered, librosa's), and time pools."""
        win, hop, _ = self.lengths(sample_rate)
        return {"hop": hop, "window": 0 if self.backend == "librosa" else win, "pools": pools or []}

    def layer_arguments(self, sample_rate: int) -> dict[str, Any]:
        win, hop, n_fft = self.lengths(sample_rate)
        args: dict[str, Any] = {
            "n_fft": n_fft,
            "hop_length": hop,
            "win_length": win,
            "power": self.power,
            "scale": self.scale,
            "backend": self.backend,
            "pad_mode": self.pad_mode,
            "top_db": self.top_db,
            "warp": self.vtlp,
        }
        if self.type != "stft":
            nyquist = sample_rate / 2
            if self.fmax is not None and self.fmax > nyquist:
                raise ConfigError(
                    f"model.frontend.fmax is above the Nyquist frequency. Received: fmax="
                    f"{self.fmax}. Expected at most {nyquist:g} at {sample_rate} Hz."
                )
            args |= {"sample_rate": sample_rate, "n_mels": self.n_mels}
            args |= {"fmin": self.fmin, "fmax": self.fmax}
        if self.type == "mfcc":
            args["n_mfcc"] = self.n_mfcc
        return args

    def build(self, inputs: Any, sample_rate: int | None) -> Any:
        """Waveforms `[batch, samples]` to features `[batch, frames, bins]`."""
        from dlcli.layers.audio import (
            MFCC,
            LogMelSpectrogram,
            SpecAugment,
            STFTMagnitude,
            UtteranceNormalization,
        )
        from dlcli.layers.sequence import PaddingFrames

        if not sample_rate:
            raise ConfigError(
                "An audio model needs the data's sample rate, and the data spec has none.",
                hint="use an audio data source (it sets data.sample_rate)",
            )
        layer = {"stft": STFTMagnitude, "log_mel": LogMelSpectrogram, "mfcc": MFCC}[self.type]
        frontend = layer(**self.layer_arguments(sample_rate), name="frontend")
        samples = inputs.shape[1]
        frames = frontend.frames(samples)
        if frames is not None and frames < 1:
            raise ConfigError(
                f"Clips of {samples} samples are shorter than one front-end window "
                f"({frontend.win_length} samples).",
                hint="lengthen data.duration or shorten model.frontend.window_ms",
            )
        x = frontend(inputs)
        if self.normalize == "utterance":
            if samples is None:  # whole utterances, zero-padded in batches: ignore the padding
                framing = self.framing(sample_rate)
                valid = PaddingFrames(framing, name="frontend_frames")(inputs, x)
                x = UtteranceNormalization(name="frontend_norm")(x, valid)
            else:
                x = UtteranceNormalization(name="frontend_norm")(x)
        if self.spec_augment is not None:
            x = SpecAugment(**self.spec_augment.model_dump(), name="spec_augment")(x)
        return x


def audio_input(spec: Any) -> Any:
    """The model input for an audio spec: `[batch, samples]` float32 waveforms."""
    import keras

    if spec.modality != "audio" or len(spec.input_shape) != 1:
        raise ConfigError(
            "This model reads audio. Received data of modality "
            f"`{spec.modality}` with input shape {tuple(spec.input_shape)}. "
            "Expected an audio source: input shape (samples,).",
            hint="pick an audio data source, or an image model (`dlcli list models`)",
        )
    return keras.Input(shape=tuple(spec.input_shape), name="waveform")


def pool_over_time(x: Any, pooling: str, *, name: str) -> Any:
    """`[batch, frames, features]` to `[batch, features]`: `mean`, or `attention` (a learned
    weighted mean: the frames with the word outweigh the silence around it)."""
    from keras import layers

    from dlcli.layers.audio import AttentionPooling

    if pooling == "attention":
        return AttentionPooling(name=name)(x)
    return layers.GlobalAveragePooling1D(name=name)(x)


def dense_head(x: Any, dense: list[int], dropout: float, regularizer: Any) -> Any:
    """Hidden dense layers, the `embedding` identity and dropout: what every audio body ends in."""
    from keras import layers

    for i, size in enumerate(dense):
        x = layers.Dropout(dropout, name=f"head_dropout{i + 1}")(x)
        x = layers.Dense(
            size, activation="relu", kernel_regularizer=regularizer, name=f"head_dense{i + 1}"
        )(x)
    x = layers.Identity(name=EMBEDDING_LAYER)(x)
    return layers.Dropout(dropout, name="head_dropout")(x)
