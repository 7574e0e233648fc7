"""The reconstruction task: its noise, its measures, its models, and the CLI end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dlcli.data.base import DataSpec
from dlcli.tasks import create_task
from dlcli.tasks.reconstruction import (
    NoiseConfig,
    ReconstructionConfig,
    add_noise,
    per_example_errors,
    psnr,
    ssim,
)
from tests.conftest import assert_no_traceback, run_cli, write_pipeline

GRAY = np.full((4, 32, 32, 3), 128.0, dtype=np.float32)


def _digits_like(n: int = 8, size: int = 16, seed: int = 0) -> np.ndarray:
    """Bright bars on black: images with structure, for SSIM and training."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 1), dtype=np.float32)
    for image in images:
        row, col = rng.integers(2, size - 4, 2)
        image[row : row + 3, 2:-2] = 220.0
        image[2:-2, col : col + 2] = 180.0
    return images


# ---- noise ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["none", "gaussian", "salt_and_pepper", "masking"])
def test_level_zero_changes_nothing(kind: str):
    noisy = add_noise(GRAY, NoiseConfig(type=kind, level=0.0))
    np.testing.assert_array_equal(np.asarray(noisy), GRAY)
    noisy = add_noise(GRAY, NoiseConfig(type=kind, level=0.0), seed=3)
    np.testing.assert_array_equal(np.asarray(noisy), GRAY)


@pytest.mark.parametrize("kind", ["gaussian", "salt_and_pepper", "masking"])
@pytest.mark.parametrize("seed", [None, 5])
def test_noise_keeps_pixels_in_range_and_shape(kind: str, seed: int | None):
    extremes = np.concatenate([np.zeros_like(GRAY[:2]), np.full_like(GRAY[:2], 255.0)])
    noisy = np.asarray(add_noise(extremes, NoiseConfig(type=kind, level=1.0), seed=seed))
    assert noisy.shape == extremes.shape and noisy.dtype == np.float32
    assert noisy.min() >= 0.0 and noisy.max() <= 255.0


def test_masking_zeroes_about_level_of_the_pixels_all_channels_alike():
    noisy = np.asarray(add_noise(GRAY, NoiseConfig(type="masking", level=0.3), seed=1))
    zero = noisy == 0.0
    assert (zero.all(axis=-1) == zero.any(axis=-1)).all()  # whole pixels
    assert abs(zero[..., 0].mean() - 0.3) < 0.03
    np.testing.assert_array_equal(noisy[~zero], 128.0)


def test_salt_and_pepper_sets_whole_pixels_to_black_or_white():
    noisy = np.asarray(add_noise(GRAY, NoiseConfig(type="salt_and_pepper", level=0.2), seed=1))
    changed = noisy != 128.0
    assert (changed.all(axis=-1) == changed.any(axis=-1)).all()
    assert set(np.unique(noisy[changed])) == {0.0, 255.0}
    assert abs(changed[..., 0].mean() - 0.2) < 0.03
    assert 0.4 < (noisy[changed] == 255.0).mean() < 0.6


def test_gaussian_noise_has_std_level_times_255():
    noisy = np.asarray(add_noise(GRAY, NoiseConfig(type="gaussian", level=0.1), seed=1))
    assert abs((noisy - GRAY).std() - 25.5) < 1.0
    assert abs((noisy - GRAY).mean()) < 1.0


def test_evaluation_noise_is_fixed_and_training_noise_is_random():
    config = ReconstructionConfig(noise=NoiseConfig(type="gaussian", level=0.2))
    task = create_task(config, DataSpec(input_shape=(32, 32, 3)))
    labels = np.zeros(4, dtype=np.int32)
    a, clean = task.prepare((GRAY, labels), training=False)
    b, _ = task.prepare((GRAY, labels), training=False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(clean), GRAY)  # the target is the clean image
    c, _ = task.prepare((GRAY, labels), training=True)
    d, _ = task.prepare((GRAY, labels), training=True)
    assert not np.array_equal(np.asarray(c), np.asarray(d))


def test_noise_level_outside_zero_one_is_a_config_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ReconstructionConfig.model_validate({"noise": {"type": "gaussian", "level": 1.5}})
    with pytest.raises(ValidationError):
        ReconstructionConfig.model_validate({"noise": {"type": "blur"}})


# ---- measures -------------------------------------------------------------------------------
def test_identical_images_score_capped_psnr_and_ssim_one():
    images = _digits_like()
    assert np.all(np.asarray(psnr(images, images)) == pytest.approx(100.0))
    np.testing.assert_allclose(np.asarray(ssim(images, images)), 1.0, atol=1e-6)
    mse, mae = per_example_errors(images, images)
    assert np.all(np.asarray(mse) == 0) and np.all(np.asarray(mae) == 0)


def test_psnr_and_errors_of_a_known_offset():
    other = GRAY + 25.5  # 0.1 of the pixel range everywhere
    mse, mae = per_example_errors(GRAY, other)
    np.testing.assert_allclose(np.asarray(mse), 0.01, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(mae), 0.1, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(psnr(GRAY, other)), 20.0, rtol=1e-5)


def test_more_noise_means_lower_psnr_and_ssim_even_on_8x8_images():
    images = _digits_like(size=8)
    scores = []
    for level in (0.05, 0.2, 0.5):
        noisy = add_noise(images, NoiseConfig(type="gaussian", level=level), seed=0)
        scores.append((float(np.mean(psnr(images, noisy))), float(np.mean(ssim(images, noisy)))))
    assert scores[0][0] > scores[1][0] > scores[2][0]
    assert scores[0][1] > scores[1][1] > scores[2][1]
    assert 20.0 < scores[0][0] < 30.0  # std 0.05: about 26 dB before clipping


def test_metrics_divide_the_summed_batch_scores():
    task = create_task(ReconstructionConfig(loss="mae"), DataSpec(input_shape=(32, 32, 3)))
    outputs = GRAY + np.array([0.0, 25.5, 25.5, 51.0], dtype=np.float32)[:, None, None, None]
    loss = task.per_example_loss(GRAY, outputs)
    sums = {k: float(v) for k, v in task.batch_sums(GRAY, outputs, loss).items()}
    metrics = task.metrics(sums)
    assert metrics["loss"] == pytest.approx(metrics["mae"]) == pytest.approx(0.1, rel=1e-5)
    assert metrics["mse"] == pytest.approx((0 + 0.01 + 0.01 + 0.04) / 4, rel=1e-5)
    assert metrics["psnr"] == pytest.approx((100 + 20 + 20 + 10 * np.log10(25)) / 4, rel=1e-4)


# ---- models ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "filters", "latent"),
    [((8, 8, 1), [4, 4, 4], 8), ((10, 10, 3), [4, 8, 8], None), ((16, 12, 1), [4], 4)],
)
def test_conv_autoencoder_gives_back_the_input_shape(shape, filters, latent):
    from dlcli.models.autoencoder import ConvAutoencoderConfig
    from dlcli.models.heads import EMBEDDING_LAYER, FeaturesHead

    spec = DataSpec(input_shape=shape)
    task = create_task(ReconstructionConfig(), spec)
    config = ConvAutoencoderConfig(filters=filters, latent=latent, batch_norm=False)
    model = task.build_model(config)
    assert model.output_shape == (None, *shape)
    assert model.output.dtype == "float32"
    embedding = model.get_layer(EMBEDDING_LAYER).output.shape  # what `dlcli embed` reads
    assert embedding[0] is None and embedding[-1] == (latent or filters[-1])
    from dlcli.models import create_model

    features = create_model(config, spec, head=FeaturesHead())
    assert features.output_shape == (None, latent or filters[-1])


def test_dense_autoencoder_gives_back_the_input_shape():
    from dlcli.models.autoencoder import DenseAutoencoderConfig

    task = create_task(ReconstructionConfig(), DataSpec(input_shape=(8, 8, 1)))
    model = task.build_model(DenseAutoencoderConfig(hidden=[16], latent=4, l2=1e-4, dropout=0.1))
    assert model.output_shape == (None, 8, 8, 1)
    assert model.losses  # L2 on the kernels
    out = model.predict(_digits_like(2, 8), verbose=0)
    assert out.min() >= 0.0 and out.max() <= 255.0


def test_a_small_conv_autoencoder_learns_to_denoise():
    import keras
    import tensorflow as tf

    from dlcli.models.autoencoder import ConvAutoencoderConfig
    from dlcli.train.loop import StepRunner, distribute

    keras.utils.set_random_seed(0)
    spec = DataSpec(input_shape=(8, 8, 1))
    task = create_task(ReconstructionConfig(noise=NoiseConfig(type="gaussian", level=0.1)), spec)
    model = task.build_model(ConvAutoencoderConfig(filters=[8, 16], latent=None))
    images = _digits_like(64, 8)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(64, np.int32)))
    strategy = tf.distribute.get_strategy()
    runner = StepRunner(strategy, model, {"model": keras.optimizers.Adam(1e-2)}, task)
    losses = []
    for _ in range(8):
        dist, steps = distribute(strategy, dataset, 16, training=True)
        losses.append(task.metrics(runner.train(iter(dist), steps))["loss"])
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses


def test_prediction_rows_score_each_input_as_given():
    import keras

    task = create_task(ReconstructionConfig(), DataSpec(input_shape=(8, 8, 1)))
    inputs = keras.Input((8, 8, 1))
    identity = keras.Model(inputs, keras.layers.Identity()(inputs))
    images = _digits_like(3, 8)
    outputs = task.predict_outputs(identity, images)
    rows = list(task.predict_rows(outputs, ["a.png", "b.png", "c.png"], top_k=1))
    assert [r["path"] for r in rows] == ["a.png", "b.png", "c.png"]
    assert all(r["mse"] == 0.0 and r["psnr"] == pytest.approx(100.0) for r in rows)
    assert set(task.flat_row(rows[0])) == {"path", "mse", "psnr"}


# ---- the CLI --------------------------------------------------------------------------------
@pytest.mark.e2e
def test_denoiser_runs_evaluates_and_predicts_from_the_cli(small_digits: Path, tmp_path: Path):
    pipeline = write_pipeline(
        tmp_path / "denoise.yaml",
        small_digits,
        model="model:\n  type: conv_autoencoder\n  filters: [8, 16]\n  latent: 16\n",
        task="task:\n  type: reconstruction\n  noise: {type: gaussian, level: 0.2}\n",
    )
    result = run_cli("run", pipeline, "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert_no_traceback(result)
    run = tmp_path / "runs" / "tiny" / "1"
    report = json.loads((run / "evaluation" / "test" / "metrics.json").read_text())
    assert report["task"] == "reconstruction" and report["noise"] == "gaussian 0.2"
    for key in ("psnr", "ssim", "psnr_gain", "noisy_psnr", "mse", "mae"):
        assert np.isfinite(report[key]), key
    assert (run / "evaluation" / "test" / "reconstructions.png").read_bytes()[:4] == b"\x89PNG"
    assert "psnr" in result.stderr and "gain" in result.stderr

    out = tmp_path / "out.csv"
    files = sorted((small_digits / "4").glob("*.png"))[:5]
    predicted = run_cli("predict", run, *files, "-o", out, cwd=tmp_path)
    assert predicted.code == 0, predicted.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5 and set(rows[0]) == {"path", "mse", "psnr"}
    assert all(float(r["mse"]) >= 0 and 0 < float(r["psnr"]) <= 100 for r in rows)
