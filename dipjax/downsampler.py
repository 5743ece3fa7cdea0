"""Fixed (never trained) anti-aliasing downsamplers: Lanczos, box and Gaussian.

Matches ``models/downsampler.py`` of the reference (dip_reference.md §1.5): a
``(4f) x (4f)`` Lanczos-2 kernel (``(6f) x (6f)`` for Lanczos-3) sampled with phase
0.5, normalised to sum 1, applied per channel with stride ``f`` after edge
(replication) padding of ``(K - f) / 2`` pixels, so ``H x W -> H/f x W/f``.

The 2-D kernel is the outer product of one 1-D kernel, so it is applied here as
two 1-D passes, each a matrix product with a banded ``(H/f, H + 2p)`` matrix:
``y = D_h · pad(x) · D_wᵀ`` per channel. That is exact, cheap, differentiable by
matmuls and batches under ``vmap``. Images are HWC float arrays.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

KERNEL_TYPES = ("lanczos2", "lanczos3", "box", "gauss")


def kernel_1d(factor: int, *, kernel_type: str = "lanczos2", phase: float = 0.5, sigma: float | None = None) -> np.ndarray:
  """The normalised 1-D taps of the reference downsampler (float64 numpy).

  Lanczos-a taps are ``val(d) = a sin(pi d) sin(pi d / a) / (pi^2 d^2)`` (1 at 0) with
  ``d = |i + 0.5 - center| / factor`` for ``i = 1..K`` and ``center = (K + 2) / 2``,
  ``K = 2 a factor`` (phase 0.5). ``box`` is ``factor`` equal taps;
  ``gauss`` is a sampled Gaussian of std ``sigma`` (default ``factor / 2``) over
  ``4 factor`` taps with the same phase-0.5 centring.

  Args:
    factor: integer downsampling factor ``f >= 1``.
    kernel_type: one of ``KERNEL_TYPES``.
    phase: must be 0.5 (the only phase the reference uses with preserve_size).
    sigma: Gaussian std in pixels of the high-resolution grid (``gauss`` only).

  Returns:
    ``(K,)`` taps summing to 1, where ``K = 4f`` (lanczos2, gauss), ``6f`` (lanczos3), ``f`` (box).
  """
  if not isinstance(factor, (int, np.integer)) or factor < 1:
    raise ValueError(f"`factor` must be a positive integer, got {factor!r}.")
  if phase != 0.5:
    raise ValueError(f"`phase` must be 0.5 (as in the reference), got {phase!r}.")
  if kernel_type in ("lanczos2", "lanczos3"):
    support = 2 if kernel_type == "lanczos2" else 3
    size = 2 * support * factor
    center = (size + 2) / 2.0  # reference: (kernel_width + 1) / 2 with kernel_width = size + 1
    taps = np.zeros(size)
    for i in range(1, size + 1):
      d = abs(i + 0.5 - center) / factor
      if d == 0:
        val = 1.0
      elif d < support:
        val = support * math.sin(math.pi * d) * math.sin(math.pi * d / support) / (math.pi ** 2 * d ** 2)
      else:
        val = 0.0
      taps[i - 1] = val
  elif kernel_type == "box":
    taps = np.ones(factor)
  elif kernel_type == "gauss":
    sigma = factor / 2.0 if sigma is None else float(sigma)
    if sigma <= 0:
      raise ValueError(f"`sigma` must be positive, got {sigma!r}.")
    size = 4 * factor
    center = (size + 1) / 2.0
    d = np.arange(1, size + 1) - center
    taps = np.exp(-(d ** 2) / (2 * sigma ** 2))
  else:
    raise ValueError(f"`kernel_type` must be one of {KERNEL_TYPES}, got {kernel_type!r}.")
  return taps / taps.sum()


def _band_matrix(size: int, taps: np.ndarray, factor: int) -> np.ndarray:
  """``(out, size + 2p)`` matrix applying ``taps`` with stride ``factor`` after padding."""
  k = len(taps)
  pad = (k - factor) // 2
  out = (size + 2 * pad - k) // factor + 1
  m = np.zeros((out, size + 2 * pad), np.float64)
  for o in range(out):
    m[o, o * factor:o * factor + k] = taps
  return m


def downsample(image, factor: int, *, kernel_type: str = "lanczos2", sigma: float | None = None):
  """Downsamples an ``(H, W, C)`` image by ``factor`` with a fixed separable kernel.

  ``y[p, q, c] = sum_{u, v} k[u] k[v] x_pad[f p + u, f q + v, c]`` with ``x_pad`` the
  edge-padded image (``(K - f) / 2`` pixels each side). For ``H`` and ``W``
  divisible by ``f`` the output is exactly ``(H / f, W / f, C)``.

  Args:
    image: ``(H, W, C)`` float array.
    factor: integer factor ``f``.
    kernel_type: ``'lanczos2'`` (the reference's SR loss), ``'lanczos3'``, ``'box'`` or ``'gauss'``.
    sigma: Gaussian std (``'gauss'`` only).

  Returns:
    The downsampled ``(H', W', C)`` array, same dtype as ``image``.

  Example:
    >>> import jax.numpy as jnp
    >>> downsample(jnp.ones((64, 48, 3)), 4).shape
    (16, 12, 3)
  """
  if image.ndim != 3:
    raise ValueError(f"`image` must be (H, W, C), got shape {image.shape}.")
  taps = kernel_1d(factor, kernel_type=kernel_type, sigma=sigma)
  k = len(taps)
  if (k - factor) % 2:
    raise ValueError(f"kernel of {k} taps cannot be centred for factor {factor}.")
  pad = (k - factor) // 2
  height, width = image.shape[0], image.shape[1]
  if height + 2 * pad < k or width + 2 * pad < k:
    raise ValueError(f"`image` of size {height}x{width} is too small for a {k}-tap kernel.")
  dh = jnp.asarray(_band_matrix(height, taps, factor), image.dtype)
  dw = jnp.asarray(_band_matrix(width, taps, factor), image.dtype)
  x = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else image
  x = jnp.einsum("oh,hwc->owc", dh, x)
  return jnp.einsum("pw,owc->opc", dw, x)
