"""Image-quality metrics on HWC float images in ``[0, 1]`` (data range 1).

``mse``/``psnr`` reduce over the last three axes, so ``(H, W, C)`` gives a scalar and
``(..., H, W, C)`` gives one value per leading index. ``psnr_sr``, ``nonzero_box`` and
``ssim`` are host-side evaluation helpers (numpy in, Python float out).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


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


def rgb_to_y(image: jax.Array) -> jax.Array:
  """Luma of an RGB image in [0, 1], BT.601 studio range (as OpenCV's RGB→YCrCb on floats).

  ``Y = (16 + 219 (0.299 R + 0.587 G + 0.114 B)) / 255``; returns ``(..., H, W, 1)``.
  """
  if image.shape[-1] != 3:
    raise ValueError(f"rgb_to_y: `image` must have 3 channels (..., H, W, 3), got shape {image.shape}.")
  weights = jnp.asarray([0.299, 0.587, 0.114], image.dtype)
  luma = jnp.sum(image * weights.reshape((1,) * (image.ndim - 1) + (3,)), axis=-1, keepdims=True)
  return (16.0 + 219.0 * luma) / 255.0


def nonzero_box(image) -> tuple[int, int, int, int]:
  """Inclusive bounding box ``(r0, r1, c0, c1)`` of the pixels of ``(H, W, C)`` that are not all zero.

  The reference pasted its super-resolution results (computed on a centre crop
  whose sides are multiples of 32) into a black canvas; the paper evaluates inside
  this box. Host-side (numpy): the box depends on the values.
  """
  arr = np.asarray(image)
  if arr.ndim != 3:
    raise ValueError(f"nonzero_box: `image` must be (H, W, C), got shape {arr.shape}.")
  mask = np.any(arr != 0, axis=-1)
  if not mask.any():
    raise ValueError("nonzero_box: `image` is entirely zero.")
  rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
  return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def psnr_sr(output, clean, *, box: tuple[int, int, int, int] | None = None, shave: int = 4) -> float:
  """The paper's super-resolution PSNR: Y channel (BT.601 studio), inside ``box`` shaved by ``shave``.

  Compares rows ``r0 + shave : r1 - shave`` and columns ``c0 + shave : c1 - shave``
  (Python slices of the inclusive box, so one more pixel goes at the bottom/right, as
  in the reference's evaluation script). ``box`` defaults to the whole image
  ``(0, H - 1, 0, W - 1)``; pass :func:`nonzero_box` of the DIP output to follow the
  paper exactly.

  Args:
    output: ``(H, W, 3)`` float image in [0, 1].
    clean: ``(H, W, 3)`` ground truth in [0, 1].
    box: inclusive ``(r0, r1, c0, c1)``.
    shave: border in pixels.

  Returns:
    PSNR in dB (a Python float).
  """
  output, clean = jnp.asarray(output, jnp.float32), jnp.asarray(clean, jnp.float32)
  if output.shape != clean.shape or output.ndim != 3:
    raise ValueError(f"psnr_sr: `output` {output.shape} and `clean` {clean.shape} must be equal (H, W, 3).")
  h, w = output.shape[:2]
  r0, r1, c0, c1 = box if box is not None else (0, h - 1, 0, w - 1)
  crop = lambda x: rgb_to_y(x)[r0 + shave:r1 - shave, c0 + shave:c1 - shave]
  return float(psnr(crop(output), crop(clean)))


def ssim(a, b) -> float:
  """SSIM of two ``(H, W, C)`` images in [0, 1] (scikit-image, data range 1, Gaussian-free defaults).

  Host-side: wraps ``skimage.metrics.structural_similarity(a, b, data_range=1,
  channel_axis=-1)``, the maintained implementation, rather than re-writing it.
  """
  from skimage.metrics import structural_similarity

  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 3:
    raise ValueError(f"ssim: `a` {a.shape} and `b` {b.shape} must be equal (H, W, C).")
  return float(structural_similarity(a, b, data_range=1.0, channel_axis=-1))
