"""Generative adversarial network: a generator and a discriminator trained against each other,
each with its own optimizer, in the task's own train step (so it runs under every
tf.distribute strategy the trainer picks, and a checkpoint holds both optimizers).

Losses:
- `standard`: the non-saturating GAN loss (Goodfellow et al. 2014) with one-sided label
  smoothing (real targets 1 - `label_smoothing`, Salimans et al. 2016);
- `wgan_gp`: the Wasserstein critic loss with a gradient penalty on random interpolates
  between real and generated images (Gulrajani et al. 2017), `critic_steps` critic updates per
  generator update (on the same real batch, with fresh noise each time).

`d_real` and `d_fake` are the discriminator's mean verdict on real and generated images: a
probability (standard) or a critic score (wgan_gp; their difference estimates the Wasserstein
distance). A training `d_real` far above the validation one means the discriminator memorises.
None of these numbers measures sample quality: a run keeps its last epoch's weights unless
early stopping is set, and `evaluate` with `task.scores` is what judges the images.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt

from dlcli.registry import TASKS
from dlcli.tasks.base import Direction, EvalContext
from dlcli.tasks.generation import GenerativeConfig, GenerativeTask

EVAL_NOISE_SEED = 13
log = logging.getLogger("dlcli")


class GANTaskConfig(GenerativeConfig):
    """`task:` for `type: gan`."""

    type: Literal["gan"] = "gan"
    loss: Literal["standard", "wgan_gp"] = Field(
        "standard",
        description="wgan_gp wants a slower optimizer (Adam 1e-4, beta_1 0.5, beta_2 0.9) and "
        "no batch norm in the critic (model.discriminator_norm: none or layer)",
    )
    label_smoothing: float = Field(
        0.1, ge=0.0, lt=0.5, description="standard loss: real targets are 1 minus this"
    )
    gradient_penalty: PositiveFloat = Field(10.0, description="wgan_gp: weight of the penalty")
    mode_seeking: float = Field(
        0.2,
        ge=0.0,
        description="weight of the mode-seeking term (MSGAN, Mao et al. 2019): the generator is "
        "rewarded for making different images from different noise, so a conditional GAN does "
        "not draw one image per class; 0 turns it off. The paper's 1 made the digits GAN "
        "ignore the class it was asked for",
    )
    critic_steps: PositiveInt | None = Field(
        None, description="discriminator updates per generator update (default: 1; wgan_gp 5)"
    )

    metrics: ClassVar[dict[str, Direction]] = {
        "loss": "min",
        "d_loss": "min",
        "g_loss": "min",
        "d_real": "max",
        "d_fake": "min",
        "gp": "min",
    }
    example: ClassVar[dict[str, Any]] = {"conditional": True}

    @property
    def steps_per_generator_step(self) -> int:
        if self.critic_steps is not None:
            return self.critic_steps
        return 5 if self.loss == "wgan_gp" else 1


@TASKS.register("gan", config=GANTaskConfig)
class GANTask(GenerativeTask):
    """Adversarial training of a generator against a discriminator (two optimizers, one step)."""

    config: GANTaskConfig
    kind = "gan"
    sampler_name = "generator"
    report_keys = ("d_real", "d_fake")
    _latent = 0  # the generator's noise size, known once the model is built

    def model_inputs(self, images: Any, labels: Any) -> Any:
        z = np.random.default_rng(0).standard_normal((len(images), self._latent), np.float32)
        return [z, np.asarray(labels, np.int32)] if self.config.conditional else z

    def build_model(self, model_config: Any) -> Any:
        model = super().build_model(model_config)
        self._latent = self.latent_size(model)
        critic = model.get_layer("discriminator")
        if self.config.loss == "wgan_gp" and any(
            type(layer).__name__ == "BatchNormalization" for layer in critic.layers
        ):
            log.warning(
                "loss wgan_gp with batch norm in the discriminator: the gradient penalty is "
                "per example and batch norm mixes examples (Gulrajani et al. 2017); set "
                "model.discriminator_norm: layer or none"
            )
        return model

    def optimizer_variables(self, model: Any) -> dict[str, list[Any]]:
        return {
            "generator": model.get_layer("generator").trainable_variables,
            "discriminator": model.get_layer("discriminator").trainable_variables,
        }

    # ---- losses (TensorFlow, per example) ---------------------------------------------------
    def _d_inputs(self, images: Any, labels: Any) -> Any:
        return [images, labels] if self.config.conditional else images

    def _d_losses(self, real_logit: Any, fake_logit: Any) -> Any:
        import tensorflow as tf

        if self.config.loss == "wgan_gp":
            return fake_logit - real_logit
        real_target = tf.fill(tf.shape(real_logit), 1.0 - self.config.label_smoothing)
        real = tf.nn.sigmoid_cross_entropy_with_logits(labels=real_target, logits=real_logit)
        fake = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.zeros_like(fake_logit), logits=fake_logit
        )
        return real + fake

    def _g_losses(self, fake_logit: Any) -> Any:
        import tensorflow as tf

        if self.config.loss == "wgan_gp":
            return -fake_logit
        return tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.ones_like(fake_logit), logits=fake_logit
        )

    def _verdict(self, logit: Any) -> Any:
        import tensorflow as tf

        return logit if self.config.loss == "wgan_gp" else tf.sigmoid(logit)

    def _penalty(self, discriminator: Any, real: Any, fake: Any, labels: Any) -> Any:
        """(|grad D(x_hat)| - 1)^2 per example at random points between real and fake."""
        import tensorflow as tf

        alpha = self.noise.uniform([tf.shape(real)[0], 1, 1, 1])
        mixed = real + alpha * (fake - real)
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            logit = discriminator(self._d_inputs(mixed, labels), training=True)
        grads = tf.cast(tape.gradient(logit, mixed), tf.float32)
        # The critic sees pixels scaled to [-1, 1] (its first layer divides by 127.5): measure
        # the gradient in that space, where the penalty's target norm of 1 is meant.
        norm = 127.5 * tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
        return tf.square(norm - 1.0)

    def _mode_seeking(self, generator: Any, z: Any, fake: Any, labels: Any) -> Any:
        """1 / (|G(z) - G(z')| / |z - z'|) per example for fresh noise z' and the same labels:
        large when two noise vectors give the same image."""
        import tensorflow as tf

        other_z = self.noise.normal(tf.shape(z))
        other = generator(self.sampler_inputs(other_z, labels), training=True)
        # Pixel differences in the [-1, 1] scale of the paper, so the weight means the same.
        images = tf.reduce_mean(tf.abs(tf.cast(fake - other, tf.float32)) / 127.5, [1, 2, 3])
        noise = tf.reduce_mean(tf.abs(z - other_z), axis=1)
        return 1.0 / (images / noise + 1e-5)

    # ---- steps ------------------------------------------------------------------------------
    def train_step(self, model: Any, optimizers: dict[str, Any], batch: Any) -> dict[str, Any]:
        import tensorflow as tf

        generator, discriminator = model.get_layer("generator"), model.get_layer("discriminator")
        g_opt, d_opt = optimizers["generator"], optimizers["discriminator"]
        images, labels = self.prepare(batch, training=True)
        real = tf.cast(images, tf.float32)
        n = tf.shape(real)[0]
        latent = self.latent_size(model)
        d_vars = discriminator.trainable_variables
        for _ in range(self.config.steps_per_generator_step):
            z = self.noise.normal([n, latent])
            with tf.GradientTape() as tape:
                fake = generator(self.sampler_inputs(z, labels), training=True)
                real_logit = discriminator(self._d_inputs(real, labels), training=True)[:, 0]
                fake_logit = discriminator(self._d_inputs(fake, labels), training=True)[:, 0]
                d_losses = self._d_losses(real_logit, fake_logit)
                penalty = tf.zeros_like(d_losses)
                if self.config.loss == "wgan_gp":
                    penalty = self._penalty(discriminator, real, fake, labels)
                objective = d_losses + self.config.gradient_penalty * penalty
                d_loss = tf.nn.compute_average_loss(objective)
                scaled = d_opt.scale_loss(d_loss)
            grads = tape.gradient(scaled, d_vars)
            d_opt.apply_gradients(zip(grads, d_vars, strict=True))
        g_vars = generator.trainable_variables
        z = self.noise.normal([n, latent])
        with tf.GradientTape() as tape:
            fake = generator(self.sampler_inputs(z, labels), training=True)
            g_logit = discriminator(self._d_inputs(fake, labels), training=True)[:, 0]
            g_losses = self._g_losses(g_logit)
            objective = g_losses
            if self.config.mode_seeking:
                objective += self.config.mode_seeking * self._mode_seeking(
                    generator, z, fake, labels
                )
            scaled = g_opt.scale_loss(tf.nn.compute_average_loss(objective))
        grads = tape.gradient(scaled, g_vars)
        g_opt.apply_gradients(zip(grads, g_vars, strict=True))
        sums = self._sums(d_losses, g_losses, real_logit, fake_logit)
        sums["gp"] = tf.reduce_sum(penalty)
        return sums

    def eval_step(self, model: Any, batch: Any) -> dict[str, Any]:
        """The same losses on held-out real images and fresh generated ones, no updates."""
        import tensorflow as tf

        generator, discriminator = model.get_layer("generator"), model.get_layer("discriminator")
        images, labels = self.prepare(batch, training=False)
        real = tf.cast(images, tf.float32)
        shape = [tf.shape(real)[0], self.latent_size(model)]
        z = tf.random.stateless_normal(shape, seed=[EVAL_NOISE_SEED, 0])
        fake = generator(self.sampler_inputs(z, labels), training=False)
        real_logit = discriminator(self._d_inputs(real, labels), training=False)[:, 0]
        fake_logit = discriminator(self._d_inputs(fake, labels), training=False)[:, 0]
        d_losses = self._d_losses(real_logit, fake_logit)
        return self._sums(d_losses, self._g_losses(fake_logit), real_logit, fake_logit)

    def _sums(self, d_losses: Any, g_losses: Any, real_logit: Any, fake_logit: Any) -> Any:
        import tensorflow as tf

        return {
            "d_loss": tf.reduce_sum(d_losses),
            "g_loss": tf.reduce_sum(g_losses),
            "d_real": tf.reduce_sum(self._verdict(real_logit)),
            "d_fake": tf.reduce_sum(self._verdict(fake_logit)),
            "count": tf.cast(tf.shape(d_losses)[0], tf.float32),
        }

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums.get("count", 0.0), 1.0)
        d_loss, g_loss = sums["d_loss"] / count, sums["g_loss"] / count
        values = {
            "loss": d_loss + g_loss,
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": sums["d_real"] / count,
            "d_fake": sums["d_fake"] / count,
        }
        if self.config.loss == "wgan_gp" and "gp" in sums:  # training only: no penalty in eval
            values["gp"] = sums["gp"] / count
        return values

    def reported_metrics(self, has_validation: bool) -> list[str]:
        names = [m for m in self.config.metrics if m != "gp"]
        train = [*names, "gp"] if self.config.loss == "wgan_gp" else names
        return train + [f"val_{m}" for m in names] * has_validation

    def eval_keys(self, train_keys: list[str]) -> list[str]:
        return [k for k in train_keys if k != "gp"]

    def updates_per_step(self, optimizer: str) -> int:
        return self.config.steps_per_generator_step if optimizer == "discriminator" else 1

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> dict[str, Any]:
        real, labels = self.real_images(ctx.data, ctx.split, ctx.batch_size)
        sums = self.split_sums(ctx.model, real, labels, ctx.batch_size)
        report: dict[str, Any] = {"examples": len(real), **self.metrics(sums)}
        report["loss_type"] = self.config.loss
        report.update(self.scores(ctx, real, labels))
        return report
