"""The fixed network input ``z`` and its per-step perturbation.

* ``'noise'``: ``z ~ U(0, scale)`` with ``scale = 0.1`` (the reference's ``get_noise``:
  uniform ``U(0, 1)`` multiplied by ``var = 1/10``).
* ``'meshgrid'``: 2 channels, ``z[h, w] = (w / (W - 1), h / (H - 1))``.

Each step the network sees ``z + sigma_p * N(0, 1)`` (the reference's
``reg_noise_std``), drawn from ``fold_in(key, step)`` so that step ``t`` is
reproducible on its own and chunked runs equal one long run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

INPUT_KINDS = ("noise", "meshgrid")


def make_input(key: jax.Array, shape: tuple[int, int], *, channels: int = 32, kind: str = "noise",
               scale: float = 0.1) -> jax.Array:
  """Returns the fixed network input ``z`` of shape ``(H, W, channels)``, float32.

  Args:
    key: PRNG key (unused for ``'meshgrid'``).
    shape: spatial size ``(H, W)``.
    channels: number of channels ``C`` (must be 2 for ``'meshgrid'``).
    kind: ``'noise'`` (``U(0, scale)``) or ``'meshgrid'``.
    scale: upper bound of the uniform noise.

  Example:
    >>> import jax
    >>> make_input(jax.random.key(0), (32, 48), channels=32).shape
    (32, 48, 32)
  """
  if len(shape) != 2 or min(shape) < 1:
    raise ValueError(f"`shape` must be (H, W) with positive sizes, got {shape!r}.")
  h, w = int(shape[0]), int(shape[1])
  if kind == "noise":
    if channels < 1:
      raise ValueError(f"`channels` must be positive, got {channels!r}.")
    return jax.random.uniform(key, (h, w, channels), jnp.float32) * scale
  if kind == "meshgrid":
    if channels != 2:
      raise ValueError(f"`channels` must be 2 for kind='meshgrid', got {channels!r}.")
    xs = jnp.arange(w, dtype=jnp.float32) / max(w - 1, 1)
    ys = jnp.arange(h, dtype=jnp.float32) / max(h - 1, 1)
    gx, gy = jnp.meshgrid(xs, ys)
    return jnp.stack([gx, gy], axis=-1)
  raise ValueError(f"`kind` must be one of {INPUT_KINDS}, got {kind!r}.")


def perturb_input(key: jax.Array, z: jax.Array, *, std) -> jax.Array:
  """Returns ``z + std * N(0, 1)`` (the reference's per-iteration ``reg_noise_std``)."""
  return z + std * jax.random.normal(key, z.shape, z.dtype)
