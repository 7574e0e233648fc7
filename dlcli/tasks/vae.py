"""Variational autoencoder (Kingma & Welling 2014): images are encoded to a Gaussian over a
latent space and decoded back; the loss is the negative ELBO, a reconstruction term plus the
KL divergence to N(0, I), with the KL weight warmed up from 0 (Bowman et al. 2016) so the
decoder learns to use the latent before the prior pulls it in.

Reported in nats per image: `reconstruction` (-log p(x|z), Bernoulli over pixels in [0, 1] or
Gaussian with `sigma`), `kl`, `nelbo` (their sum) and `loss` (what is minimised: the KL
weighted). `nelbo` is the default monitor: it does not move with the weight. With the Gaussian
likelihood it bounds -log p(x); the Bernoulli one on grey levels (not binary pixels) is not a
normalised density, so there `nelbo` compares runs and epochs, not models of other papers.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveFloat

from dlcli.registry import TASKS
from dlcli.tasks.base import Direction, EvalContext
from dlcli.tasks.generation import GenerativeConfig, GenerativeTask, tile, write_png

EVAL_NOISE_SEED = 11  # validation and `evaluate` draw the same latent samples every time
PROB_FLOOR = 1e-6
INTERPOLATION_PAIRS, INTERPOLATION_STEPS = 6, 8


class VAETaskConfig(GenerativeConfig):
    """`task:` for `type: vae`."""

    type: Literal["vae"] = "vae"
    kl_weight: PositiveFloat = Field(1.0, description="beta: 1 is the ELBO; > 1 a beta-VAE")
    kl_warmup_epochs: float = Field(
        5.0, ge=0.0, description="the KL weight grows linearly from 0 over these epochs"
    )
    reconstruction: Literal["bernoulli", "gaussian"] = Field(
        "bernoulli", description="the decoder's likelihood of pixels scaled to [0, 1]"
    )
    sigma: PositiveFloat = Field(0.1, description="gaussian: the pixel noise std in [0, 1]")

    metrics: ClassVar[dict[str, Direction]] = {
        "loss": "min",
        "reconstruction": "min",
        "kl": "min",
        "nelbo": "min",
    }
    example: ClassVar[dict[str, Any]] = {"kl_warmup_epochs": 1}

    def default_monitor(self, has_validation: bool) -> str:
        return "val_nelbo" if has_validation else "nelbo"


@TASKS.register("vae", config=VAETaskConfig)
class VAETask(GenerativeTask):
    """Train an encoder and decoder by the ELBO; generate by decoding N(0, I) samples."""

    config: VAETaskConfig
    kind = "vae"
    sampler_name = "decoder"
    report_keys = ("nelbo", "reconstruction", "kl", "psnr")

    def __init__(self, config: VAETaskConfig, spec: Any) -> None:
        super().__init__(config, spec)
        self.warmup_steps = 0

    def on_train_begin(self, steps_per_epoch: int) -> None:
        self.warmup_steps = round(self.config.kl_warmup_epochs * steps_per_epoch)

    def model_inputs(self, images: Any, labels: Any) -> Any:
        return [images, labels] if self.config.conditional else images

    # ---- the loss, per example (TensorFlow) -------------------------------------------------
    def _terms(self, model: Any, images: Any, labels: Any, eps: Any, training: bool) -> Any:
        """(reconstruction, kl) per example, in nats, for latent samples mean + std * eps."""
        import tensorflow as tf

        encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
        mean, log_var = encoder(self.model_inputs(images, labels), training=training)
        z = mean + tf.exp(0.5 * log_var) * eps
        pixels = decoder(self.sampler_inputs(z, labels), training=training)
        target = tf.cast(images, tf.float32) / 255.0
        p = tf.cast(pixels, tf.float32) / 255.0
        axes = tf.range(1, tf.rank(target))
        if self.config.reconstruction == "bernoulli":
            p = tf.clip_by_value(p, PROB_FLOOR, 1.0 - PROB_FLOOR)
            nll = -(target * tf.math.log(p) + (1.0 - target) * tf.math.log(1.0 - p))
        else:
            s = self.config.sigma
            nll = 0.5 * tf.square((target - p) / s) + math.log(s * math.sqrt(2 * math.pi))
        reconstruction = tf.reduce_sum(nll, axes)
        kl = -0.5 * tf.reduce_sum(1.0 + log_var - tf.square(mean) - tf.exp(log_var), axis=-1)
        return reconstruction, kl

    def _weight(self, iterations: Any) -> Any:
        import tensorflow as tf

        if not self.warmup_steps:
            return tf.constant(self.config.kl_weight, tf.float32)
        ramp = tf.minimum(1.0, tf.cast(iterations + 1, tf.float32) / float(self.warmup_steps))
        return self.config.kl_weight * ramp

    def _sums(self, reconstruction: Any, kl: Any, weight: Any) -> dict[str, Any]:
        import tensorflow as tf

        return {
            "loss": tf.reduce_sum(reconstruction + weight * kl),
            "reconstruction": tf.reduce_sum(reconstruction),
            "kl": tf.reduce_sum(kl),
            "count": tf.cast(tf.shape(kl)[0], tf.float32),
        }

    def train_step(self, model: Any, optimizers: dict[str, Any], batch: Any) -> dict[str, Any]:
        import tensorflow as tf

        optimizer = optimizers["model"]
        images, labels = self.prepare(batch, training=True)
        latent = self.latent_size(model)
        eps = self.noise.normal([tf.shape(images)[0], latent])
        weight = self._weight(optimizer.iterations)
        with tf.GradientTape() as tape:
            reconstruction, kl = self._terms(model, images, labels, eps, True)
            loss = tf.nn.compute_average_loss(reconstruction + weight * kl)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return self._sums(reconstruction, kl, weight)

    def eval_step(self, model: Any, batch: Any) -> dict[str, Any]:
        import tensorflow as tf

        images, labels = self.prepare(batch, training=False)
        shape = [tf.shape(images)[0], self.latent_size(model)]
        eps = tf.random.stateless_normal(shape, seed=[EVAL_NOISE_SEED, 0])
        reconstruction, kl = self._terms(model, images, labels, eps, False)
        return self._sums(reconstruction, kl, self.config.kl_weight)

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums.get("count", 0.0), 1.0)
        reconstruction, kl = sums["reconstruction"] / count, sums["kl"] / count
        return {
            "loss": sums["loss"] / count,
            "reconstruction": reconstruction,
            "kl": kl,
            "nelbo": reconstruction + kl,
        }

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> dict[str, Any]:
        from dlcli.report.images import plot_image_rows
        from dlcli.tasks.reconstruction import psnr

        real, labels = self.real_images(ctx.data, ctx.split, ctx.batch_size)
        sums = self.split_sums(ctx.model, real, labels, ctx.batch_size)
        recon = np.asarray(
            ctx.model.predict(self.model_inputs(real, labels), ctx.batch_size, verbose=0)
        )
        report: dict[str, Any] = {"examples": len(real), **self.metrics(sums)}
        del report["loss"]
        report["psnr"] = float(np.mean(np.asarray(psnr(real, recon))))
        shown = np.linspace(0, len(real) - 1, min(8, len(real))).round().astype(int)
        plot_image_rows(
            [("input", list(real[shown])), ("output", list(recon[shown]))],
            ctx.out_dir / "reconstructions.png",
        )
        write_png(self.interpolation(ctx.model, real, labels), ctx.out_dir / "interpolation.png")
        report.update(self.scores(ctx, real, labels))
        return report

    def interpolation(self, model: Any, real: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Rows of decoded latent means on straight lines between two images of the split
        (a conditional model keeps the first image's class along the row)."""
        rng = np.random.default_rng(EVAL_NOISE_SEED)
        pairs = min(INTERPOLATION_PAIRS, max(len(real) // 2, 1))
        picked = rng.choice(len(real), size=(pairs, 2), replace=len(real) < 2 * pairs)
        encoder = model.get_layer("encoder")
        flat = picked.reshape(-1)
        mean, _ = encoder(self.model_inputs(real[flat], labels[flat]), training=False)
        mean = np.asarray(mean).reshape(pairs, 2, -1)
        t = np.linspace(0.0, 1.0, INTERPOLATION_STEPS, dtype=np.float32)[None, :, None]
        z = (mean[:, :1] * (1 - t) + mean[:, 1:] * t).reshape(pairs * INTERPOLATION_STEPS, -1)
        row_labels = np.repeat(labels[picked[:, 0]], INTERPOLATION_STEPS).astype(np.int32)
        images = self.sampler(model)(self.sampler_inputs(z, row_labels), training=False)
        return tile(np.asarray(images), pairs, INTERPOLATION_STEPS)
