"""Synthetic corruptions of HWC float32 images in [0, 1]."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def add_gaussian_noise(key: jax.Array, image: jax.Array, *, sigma) -> jax.Array:
  """Returns ``clip(image + sigma * N(0, 1), 0, 1)``, float32 (the reference's ``get_noisy_image``).

  Args:
    key: PRNG key of the noise realisation.
    image: ``(H, W, C)`` float image in [0, 1].
    sigma: noise std on the **[0, 1] scale** (σ = 25 on the 0–255 scale is ``25 / 255``).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> noisy = add_gaussian_noise(jax.random.key(0), jnp.full((8, 8, 3), 0.5), sigma=25 / 255)
    >>> noisy.shape
    (8, 8, 3)
  """
  if image.ndim != 3:
    raise ValueError(f"`image` must be (H, W, C), got shape {image.shape}.")
  noisy = image + sigma * jax.random.normal(key, image.shape, jnp.float32)
  return jnp.clip(noisy, 0.0, 1.0).astype(jnp.float32)
