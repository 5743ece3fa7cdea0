"""Image-quality metrics on HWC float images in ``[0, 1]`` (data range 1).

They reduce over the last three axes, so ``(H, W, C)`` gives a scalar and
``(..., H, W, C)`` gives one value per leading index.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def mse(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean squared error over all pixels and channels (``torch.nn.MSELoss()``)."""
  if a.shape != b.shape:
    raise ValueError(f"mse: shapes differ: {a.shape} vs {b.shape}.")
  return jnp.mean(jnp.square(a - b), axis=(-3, -2, -1))


def psnr(a: jax.Array, b: jax.Array) -> jax.Array:
  """PSNR in dB with data range 1: ``10 log10(1 / mse(a, b))`` over all pixels and channels.

  Equal images give ``+inf``. Matches ``skimage.metrics.peak_signal_noise_ratio(...,
  data_range=1)``.
  """
  return -10.0 * jnp.log10(mse(a, b))
