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


def bernoulli_mask(key: jax.Array, shape: tuple[int, int, int], *, keep_fraction: float,
                   per_channel: bool = False) -> jax.Array:
  """A random ``{0, 1}`` float32 mask of ``shape = (H, W, C)``: 1 = known pixel.

  Each pixel is kept with probability ``keep_fraction``. By default one draw per
  pixel is shared by all channels (the reference's kate 2% setting); with
  ``per_channel=True`` each channel is drawn on its own (the reference's
  ``get_bernoulli_mask``).

  Example:
    >>> import jax
    >>> m = bernoulli_mask(jax.random.key(0), (64, 64, 3), keep_fraction=0.5)
    >>> m.shape, m.dtype
    ((64, 64, 3), dtype('float32'))
  """
  if len(shape) != 3:
    raise ValueError(f"`shape` must be (H, W, C), got {shape!r}.")
  if not 0.0 <= keep_fraction <= 1.0:
    raise ValueError(f"`keep_fraction` must be in [0, 1], got {keep_fraction!r}.")
  h, w, c = shape
  draw_shape = (h, w, c) if per_channel else (h, w, 1)
  keep = jax.random.bernoulli(key, keep_fraction, draw_shape).astype(jnp.float32)
  return jnp.broadcast_to(keep, (h, w, c))


def apply_mask(image: jax.Array, mask: jax.Array) -> jax.Array:
  """The inpainting forward operator ``A(x) = x ⊙ mask`` (mask ``(H, W, 1)`` or ``(H, W, C)``, 1 = known)."""
  if mask.ndim != 3 or mask.shape[:2] != image.shape[:2] or mask.shape[2] not in (1, image.shape[2]):
    raise ValueError(f"`mask` of shape {mask.shape} does not fit `image` of shape {image.shape}; "
                     "it must be (H, W, 1) or (H, W, C) with the image's H and W.")
  if mask.shape[2] != image.shape[2]:
    mask = jnp.broadcast_to(mask, image.shape)
  return image * mask


def masked_mse(prediction: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """``mean((prediction ⊙ mask − target ⊙ mask)²)`` over *all* pixels, as the reference's inpainting loss."""
  return jnp.mean(jnp.square(apply_mask(prediction, mask) - apply_mask(target, mask)))
