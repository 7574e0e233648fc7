"""The audio front-end layers: shapes, agreement with librosa on real recordings, SpecAugment's
masks, config round trips, and a saved model that loads in plain Keras with identical outputs.

librosa agreement, measured on all 3,000 FSDD recordings (8 kHz, float32) with both settings
below: at most 9e-4 dB between `LogMelSpectrogram(backend="librosa")` and
`librosa.power_to_db(librosa.feature.melspectrogram(...))` over every bin, floored ones included
(1.5e-4 dB within 60 dB of each clip's peak), and 3.3e-4 between `MFCC` and
`librosa.feature.mfcc`. The tests assert 0.01 (dB, or MFCC units) on 18 of the files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlcli.layers.audio import (
    MFCC,
    AttentionPooling,
    LogMelSpectrogram,
    SpecAugment,
    SpectrogramImage,
    STFTMagnitude,
    UtteranceNormalization,
    slaney_mel_matrix,
)
from tests.conftest import REPO, SHARED

FSDD = SHARED / "data" / "fsdd" / "recordings"
SR = 8000
LIBROSA_TOLERANCE = 0.01  # dB for log-mel, coefficient units for MFCC


def waveforms(count: int = 2, samples: int = 4000, seed: int = 0) -> np.ndarray:
    """Chirps in noise: energy that moves across bands, like speech, not white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SR
    chirps = [np.sin(2 * np.pi * (200 + 1500 * (i + 1) * t) * t) for i in range(count)]
    return (0.5 * np.stack(chirps) + 0.01 * rng.normal(size=(count, samples))).astype("float32")


def fsdd_sample() -> list[Path]:
    """Three recordings per speaker, digits and takes spread out."""
    if not FSDD.is_dir():
        pytest.skip(f"FSDD not found at {FSDD}")
    speakers = sorted({p.name.split("_")[1] for p in FSDD.glob("*.wav")})
    picks = [(0, 0), (5, 17), (9, 49)]
    return [FSDD / f"{d}_{s}_{take}.wav" for s in speakers for d, take in picks]


def read(path: Path) -> np.ndarray:
    import soundfile

    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    assert rate == SR
    return audio.mean(axis=1)


# ---- shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["tf", "librosa"])
@pytest.mark.parametrize(
    ("layer", "bins"),
    [
        (STFTMagnitude(256, 80, win_length=200), 129),
        (LogMelSpectrogram(SR, 256, 80, win_length=200, n_mels=40), 40),
        (MFCC(SR, 256, 80, win_length=200, n_mels=40, n_mfcc=13), 13),
    ],
    ids=["stft", "log_mel", "mfcc"],
)
def test_front_ends_give_frames_by_bins(layer, bins: int, backend: str):
    layer = layer.__class__.from_config({**layer.get_config(), "backend": backend, "center": None})
    out = layer(waveforms(samples=8000)).numpy()
    frames = 1 + 8000 // 80 if backend == "librosa" else 1 + (8000 - 200) // 80
    assert out.shape == (2, frames, bins) == layer.compute_output_shape((2, 8000))
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_tf_backend_is_tf_signal():
    import tensorflow as tf

    x = waveforms()
    stft = tf.signal.stft(x, 200, 80, fft_length=256, window_fn=tf.signal.hann_window)
    power = tf.abs(stft) ** 2
    matrix = tf.signal.linear_to_mel_weight_matrix(40, 129, SR, 0.0, SR / 2)
    expected = tf.math.log(tf.tensordot(power, matrix, 1) + 1e-6).numpy()
    got = LogMelSpectrogram(SR, 256, 80, win_length=200, scale="log", backend="tf")(x).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-3)


# ---- librosa agreement -------------------------------------------------------------------


@pytest.mark.parametrize(("n_fft", "fmin", "fmax"), [(256, 0.0, None), (512, 60.0, 3800.0)])
def test_slaney_mel_matrix_is_librosas(n_fft: int, fmin: float, fmax: float | None):
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=40, fmin=fmin, fmax=fmax)
    got = slaney_mel_matrix(SR, n_fft, 40, fmin, fmax or SR / 2).T
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-8)


LIBROSA_SETTINGS = [
    # dlcli's default front end at 8 kHz (25 ms window, 10 ms hop), librosa >= 0.10 padding
    {"n_fft": 256, "hop_length": 80, "win_length": 200, "n_mels": 40},
    # magnitude mel, band limits, reflect padding (librosa < 0.10), window = n_fft
    {"n_fft": 512, "hop_length": 128, "n_mels": 64, "fmin": 60.0, "fmax": 3800.0,
     "power": 1.0, "pad_mode": "reflect"},
]  # fmt: skip


@pytest.mark.parametrize("settings", LIBROSA_SETTINGS, ids=["default", "magnitude_reflect"])
def test_librosa_backend_matches_librosa_on_fsdd(settings: dict):
    librosa = pytest.importorskip("librosa")
    mel = LogMelSpectrogram(SR, backend="librosa", **settings)
    mfcc = MFCC(SR, n_mfcc=20, backend="librosa", **settings)
    worst_db = worst_mfcc = 0.0
    for path in fsdd_sample():
        y = read(path)
        spectrogram = librosa.feature.melspectrogram(y=y, sr=SR, **settings)
        expected_db = librosa.power_to_db(spectrogram)  # ref 1.0, amin 1e-10, top_db 80
        expected_mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, **settings)
        got_db = mel(y[None])[0].numpy().T
        got_mfcc = mfcc(y[None])[0].numpy().T
        assert got_db.shape == expected_db.shape and got_mfcc.shape == expected_mfcc.shape
        worst_db = max(worst_db, float(np.abs(got_db - expected_db).max()))
        worst_mfcc = max(worst_mfcc, float(np.abs(got_mfcc - expected_mfcc).max()))
    assert worst_db < LIBROSA_TOLERANCE, f"log-mel differs by {worst_db:.4f} dB"
    assert worst_mfcc < LIBROSA_TOLERANCE, f"MFCC differs by {worst_mfcc:.4f}"


def test_top_db_is_per_utterance_not_per_batch():
    loud, quiet = waveforms(2)
    layer = LogMelSpectrogram(SR, 256, 80, backend="librosa")
    alone = layer(quiet[None] * 1e-3).numpy()
    batched = layer(np.stack([loud, quiet * 1e-3])).numpy()
    np.testing.assert_allclose(batched[1:], alone, atol=1e-4)


# ---- normalisation, pooling, image -------------------------------------------------------


def test_utterance_normalization_standardises_each_bin_over_time():
    features = LogMelSpectrogram(SR, 256, 80)(waveforms()).numpy()
    out = UtteranceNormalization()(features).numpy()
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=1), 1.0, atol=1e-2)


def test_attention_pooling_is_a_weighted_mean_over_time():
    frames = np.random.default_rng(0).normal(size=(3, 7, 5)).astype("float32")
    pooled = AttentionPooling(units=4)(frames).numpy()
    assert pooled.shape == (3, 5)
    assert np.all(pooled <= frames.max(axis=1) + 1e-6) and np.all(pooled >= frames.min(axis=1))
    constant = np.repeat(frames[:, :1], 7, axis=1)
    np.testing.assert_allclose(AttentionPooling(units=4)(constant).numpy(), frames[:, 0], 1e-5)


def test_spectrogram_image_is_0_255_in_three_channels():
    image = SpectrogramImage()(LogMelSpectrogram(SR, 256, 80)(waveforms())).numpy()
    assert image.shape[-1] == 3 and image.min() == 0.0 and abs(image.max() - 255.0) < 1e-3
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


# ---- SpecAugment -------------------------------------------------------------------------


def test_spec_augment_is_identity_outside_training():
    features = np.random.default_rng(0).normal(size=(4, 50, 20)).astype("float32")
    layer = SpecAugment(seed=1)
    np.testing.assert_array_equal(layer(features).numpy(), features)
    np.testing.assert_array_equal(layer(features, training=False).numpy(), features)
    assert not np.array_equal(layer(features, training=True).numpy(), features)


def _masked_runs(flags: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D boolean array."""
    padded = np.concatenate([[0], flags.astype(int), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return list(edges[1::2] - edges[::2])


@pytest.mark.parametrize("axis", ["time", "freq"])
def test_spec_augment_masks_at_most_the_stated_widths(axis: str):
    features = np.random.default_rng(0).normal(size=(300, 60, 30)).astype("float32")
    widths = {"time": (1, 7, 0, 0), "freq": (0, 0, 1, 5)}[axis]
    layer = SpecAugment(
        time_masks=widths[0], time_width=widths[1], freq_masks=widths[2], freq_width=widths[3],
        seed=3,
    )  # fmt: skip
    out = layer(features, training=True).numpy()
    width = max(widths)
    means = features.mean(axis=(1, 2), keepdims=True)
    masked = out != features
    # Whole frames (time) or whole bins (freq) are masked, and only those.
    lines = masked.all(axis=2) if axis == "time" else masked.all(axis=1)
    assert np.array_equal(masked.any(axis=2) if axis == "time" else masked.any(axis=1), lines)
    runs = [run for example in lines for run in _masked_runs(example)]
    assert max(runs) == width  # 300 draws from 0..width reach it
    assert all(len(_masked_runs(example)) <= 1 for example in lines)  # one mask asked for
    expected = np.broadcast_to(means, out.shape)[masked]
    np.testing.assert_allclose(out[masked], expected, rtol=1e-5, atol=1e-6)  # the example's mean


def test_spec_augment_counts_and_widths_bound_the_masked_area():
    features = np.random.default_rng(0).normal(size=(100, 80, 40)).astype("float32")
    out = SpecAugment(time_masks=3, time_width=4, freq_masks=0, seed=0)(features, training=True)
    masked_frames = (out.numpy() != features).all(axis=2).sum(axis=1)
    assert masked_frames.max() <= 3 * 4 and masked_frames.mean() > 1


# ---- vocal tract length perturbation ------------------------------------------------------


def test_vtlp_is_identity_outside_training_and_at_factor_one():
    x = waveforms(4, 4000)
    plain = LogMelSpectrogram(SR, 256, 80, win_length=200)(x).numpy()
    warped = LogMelSpectrogram(SR, 256, 80, win_length=200, warp=(0.8, 1.2), seed=0)
    np.testing.assert_array_equal(warped(x).numpy(), plain)
    np.testing.assert_array_equal(warped(x, training=False).numpy(), plain)
    assert not np.allclose(warped(x, training=True).numpy(), plain)
    unit = LogMelSpectrogram(SR, 256, 80, win_length=200, warp=(1.0, 1.0))
    np.testing.assert_allclose(unit(x, training=True).numpy(), plain, atol=1e-4)


@pytest.mark.parametrize("factor", [0.85, 1.15])
def test_vtlp_moves_a_tone_by_its_factor_and_keeps_nyquist(factor: float):
    """A 1 kHz tone comes out at factor x 1 kHz (below the bend); the top bin stays the top."""
    tone = np.sin(2 * np.pi * 1000 * np.arange(4000) / SR).astype("float32")[None]
    layer = STFTMagnitude(256, 80, win_length=200, power=2.0, warp=(factor, factor))
    spectrum = layer.spectrum(tone, training=True).numpy().mean(axis=1)[0]
    hz_per_bin = SR / 256
    assert abs(spectrum.argmax() * hz_per_bin - 1000 * factor) <= hz_per_bin
    ramp = np.linspace(0, 1, 129, dtype="float32")[None, None, :]
    warped = layer.warp_frequencies(ramp).numpy()[0, 0]
    assert warped[0] == 0 and abs(warped[-1] - 1) < 1e-6 and np.all(np.diff(warped) >= 0)


def test_vtlp_draws_one_factor_per_clip():
    """Clips in one batch are warped differently (not one factor for the whole batch)."""
    tone = np.sin(2 * np.pi * 1000 * np.arange(4000) / SR).astype("float32")[None]
    layer = STFTMagnitude(256, 80, win_length=200, power=2.0, warp=(0.7, 1.3), seed=5)
    peaks = layer.spectrum(np.repeat(tone, 16, 0), training=True).numpy().mean(1).argmax(1)
    assert len(set(peaks.tolist())) > 3 and peaks.min() >= 22 and peaks.max() <= 42


# ---- serialisation -----------------------------------------------------------------------

LAYERS = [
    STFTMagnitude(256, 80, win_length=200, power=2.0, scale="db", backend="librosa"),
    LogMelSpectrogram(SR, 256, 80, win_length=200, n_mels=32, fmin=20.0, scale="log"),
    LogMelSpectrogram(SR, 256, 80, n_mels=32, warp=(0.9, 1.1), warp_boundary=0.7, seed=4),
    MFCC(SR, 512, 128, n_mfcc=10, backend="librosa", pad_mode="reflect", top_db=None),
    UtteranceNormalization(epsilon=1e-3),
    SpecAugment(freq_masks=1, freq_width=3, time_masks=2, time_width=5, seed=2),
    SpectrogramImage(channels=1),
    AttentionPooling(units=8),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_get_config_round_trips(layer):
    import keras

    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


def test_saved_model_loads_in_plain_keras_with_identical_outputs(tmp_path: Path):
    """The front end travels inside the .keras file: another process with only Keras and
    `dlcli.layers` gets the same outputs from raw waveforms."""
    import keras

    inputs = keras.Input(shape=(4000,), name="waveform")
    x = MFCC(SR, 256, 80, win_length=200, n_mfcc=13, backend="librosa")(inputs)
    x = UtteranceNormalization()(x)
    x = SpecAugment(seed=0)(x)
    stft = STFTMagnitude(256, 80, win_length=200, scale="log")(inputs)
    pooled = [AttentionPooling(units=4)(x), keras.layers.GlobalAveragePooling1D()(stft)]
    outputs = keras.layers.Dense(3)(keras.layers.Concatenate()(pooled))
    model = keras.Model(inputs, outputs)
    x_test = waveforms(3, 4000)
    np.save(tmp_path / "x.npy", x_test)
    np.save(tmp_path / "y.npy", model.predict(x_test, verbose=0))
    model.save(tmp_path / "m.keras")
    script = (
        "import sys, numpy as np, keras\n"
        "import dlcli.layers\n"
        "model = keras.saving.load_model(sys.argv[1] + '/m.keras')\n"
        "y = model.predict(np.load(sys.argv[1] + '/x.npy'), verbose=0)\n"
        "np.testing.assert_array_equal(y, np.load(sys.argv[1] + '/y.npy'))\n"
        "assert not [m for m in sys.modules if m.startswith('dlcli.models')]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


# ---- the front end as configured ---------------------------------------------------------


def test_frontend_config_defaults_and_errors():
    import keras

    from dlcli.errors import ConfigError
    from dlcli.models.frontend import FrontEndConfig

    assert FrontEndConfig().lengths(8000) == (200, 80, 256)
    assert FrontEndConfig().lengths(16000) == (400, 160, 512)
    assert FrontEndConfig(hop_length=512, win_length=2048).lengths(22050) == (2048, 512, 2048)
    with pytest.raises(ValueError, match="n_mfcc"):
        FrontEndConfig(type="mfcc", n_mfcc=50, n_mels=40)
    with pytest.raises(ConfigError, match="Nyquist"):
        FrontEndConfig(fmax=5000).build(keras.Input((8000,)), 8000)
    with pytest.raises(ConfigError, match="shorter than one front-end window"):
        FrontEndConfig().build(keras.Input((100,)), 8000)
    augmented = FrontEndConfig(type="mfcc", spec_augment={}).build(keras.Input((8000,)), 8000)
    assert tuple(augmented.shape) == (None, 98, 13)
    with pytest.raises(ValueError, match="vtlp"):
        FrontEndConfig(vtlp=(1.2, 0.9))
    warped = FrontEndConfig(vtlp=(0.9, 1.1)).layer_arguments(8000)
    assert warped["warp"] == (0.9, 1.1)
