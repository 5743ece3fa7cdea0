r"""How far a seed's result moves between its single-seed program and a batched one.

Fits the same keys once each with ``fit`` and together with ``dipjax.fit_seeds``
(vmapped groups), then prints each seed's PSNR both ways and the largest pixel
difference. Float rounding differs between the two compiled programs, and Adam's
``m / sqrt(v)`` amplifies it over hundreds of steps.

    python -m experiments.seed_consistency --steps=500
"""

from __future__ import annotations

from absl import flags

import jax
import jax.numpy as jnp
from skimage import data

import dipjax
from dipjax import corruptions
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 500, "Adam steps.")
flags.DEFINE_integer("seeds", 2, "Number of seeds.")
flags.DEFINE_integer("seeds_per_group", 2, "Seeds vmapped together in the batched program.")


def main():
  clean = jnp.asarray(data.astronaut()[200:264, 200:264] / 255.0, jnp.float32)
  noisy = corruptions.add_gaussian_noise(jax.random.key(0), clean, sigma=25 / 255)
  net = dipjax.skip_tiny(channels_down=(32,) * 3, channels_up=(32,) * 3, channels_skip=(2,) * 3)
  fit = dipjax.make_fit(net, num_steps=FLAGS.steps, input_channels=8, reg_noise_std=1 / 30, guard_every=1)
  keys = jax.random.split(jax.random.key(1), FLAGS.seeds)
  batched = dipjax.fit_seeds(fit, keys, noisy, clean=clean, seeds_per_group=FLAGS.seeds_per_group)
  print("| seed | single: output / EMA PSNR | batched: output / EMA PSNR | max abs pixel difference |")
  print("|---|---|---|---|")
  for i in range(FLAGS.seeds):
    single = fit(keys[i], noisy, clean=clean)
    p = lambda x: float(dipjax.psnr(x, clean))
    diff = float(jnp.max(jnp.abs(single.output - batched.output[i])))
    print(f"| {i} | {p(single.output):.3f} / {p(single.ema):.3f} | "
          f"{p(batched.output[i]):.3f} / {p(batched.ema[i]):.3f} | {diff:.3f} |")


if __name__ == "__main__":
  cli.run(main)
