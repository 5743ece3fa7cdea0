"""Classical baselines from scikit-image, so a run shows what the deep prior buys.

Host-side (numpy in, numpy out), float32 ``(H, W, C)`` images in ``[0, 1]``:

* denoising / deblocking: non-local means (noise level estimated from the image,
  ``h = 0.8 σ̂``), total-variation (Chambolle, weight 0.1), wavelet shrinkage
  (BayesShrink, soft, in YCbCr for colour) and CBM3D, the paper's own comparator
  (the ``bm3d`` package, an optional extra: ``pip install bm3d``; with the known noise
  level where there is one, see :func:`call`);
* super-resolution: bicubic interpolation of the low-resolution image (PIL bicubic
  as the reference notebook's baseline, :func:`bicubic_upscale`);
* inpainting / missing pixels: biharmonic inpainting of the holes.

Parameters are scikit-image's documented defaults or its gallery's choices (CBM3D:
the ``bm3d`` package's default profile), not tuned per image: the point is a fair,
reproducible reference line.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from PIL import Image

BM3D_INSTALL = "pip install bm3d (or pip install 'dipjax[bm3d]')"
NO_NOISE_SIGMA = 1e-4  # an estimated σ at or below this ([0, 1] scale, < 1/40 of an 8-bit level): no noise
SMALL_IMAGE_PIXELS = 128 * 128  # CBM3D runs single-threaded up to this size (measured: half the CPU time at 32x32)


class MissingDependency(ImportError):
  """A baseline's optional package is not installed; the one-line message says what to install."""


def _channel_axis(image: np.ndarray):
  return -1 if image.shape[-1] > 1 else None


def _squeeze(image: np.ndarray) -> np.ndarray:
  return image if image.shape[-1] > 1 else image[..., 0]


def _unsqueeze(out: np.ndarray) -> np.ndarray:
  out = np.clip(np.asarray(out, np.float32), 0.0, 1.0)
  return out if out.ndim == 3 else out[..., None]


def estimate_noise_sigma(image: np.ndarray) -> float:
  """The Gaussian noise std of ``image`` ([0, 1] scale): skimage ``estimate_sigma`` (wavelet MAD), channel mean."""
  from skimage.restoration import estimate_sigma

  x = _squeeze(np.asarray(image, np.float64))
  return float(np.mean(estimate_sigma(x, channel_axis=_channel_axis(image))))


def non_local_means(image: np.ndarray) -> np.ndarray:
  """Non-local means with the noise std estimated from ``image`` (skimage ``denoise_nl_means``)."""
  from skimage.restoration import denoise_nl_means

  x = _squeeze(np.asarray(image, np.float64))
  sigma = estimate_noise_sigma(image)
  out = denoise_nl_means(x, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6,
                         channel_axis=_channel_axis(image))
  return _unsqueeze(out)


def total_variation(image: np.ndarray, *, weight: float = 0.1) -> np.ndarray:
  """Total-variation denoising (skimage ``denoise_tv_chambolle``)."""
  from skimage.restoration import denoise_tv_chambolle

  x = _squeeze(np.asarray(image, np.float64))
  return _unsqueeze(denoise_tv_chambolle(x, weight=weight, channel_axis=_channel_axis(image)))


def wavelet(image: np.ndarray) -> np.ndarray:
  """Wavelet shrinkage, BayesShrink soft thresholds (skimage ``denoise_wavelet``; needs PyWavelets)."""
  from skimage.restoration import denoise_wavelet

  x = _squeeze(np.asarray(image, np.float64))
  colour = image.shape[-1] == 3
  out = denoise_wavelet(x, channel_axis=_channel_axis(image), convert2ycbcr=colour, method="BayesShrink",
                        mode="soft", rescale_sigma=True)
  return _unsqueeze(out)


def cbm3d(image: np.ndarray, *, sigma: Optional[float] = None) -> np.ndarray:
  """CBM3D (BM3D for colour, in the opponent colour space; BM3D for gray) with noise std ``sigma``.

  The ``bm3d`` package's ``bm3d_rgb`` / ``bm3d`` with its default profile. Free for
  non-commercial use only (its licence), hence an optional extra.

  Args:
    image: ``(H, W, 1)`` or ``(H, W, 3)`` noisy image in [0, 1].
    sigma: the Gaussian noise std on the [0, 1] scale; default: estimated from ``image``
      (:func:`estimate_noise_sigma`; an estimate <= ``NO_NOISE_SIGMA`` returns ``image``
      unchanged). A colour image with three equal channels is denoised as gray.

  Returns:
    ``(H, W, C)`` float32 in [0, 1].

  Raises:
    MissingDependency: ``bm3d`` is not installed.
  """
  try:
    import bm3d
  except (ImportError, OSError) as e:  # OSError: bm4d's binary does not load on this platform
    reason = "" if isinstance(e, ModuleNotFoundError) else f" (importing it failed: {e})"
    raise MissingDependency(f"CBM3D needs the bm3d package: {BM3D_INSTALL}{reason}.") from None
  x = np.asarray(image, np.float64)
  if sigma is None:
    sigma = estimate_noise_sigma(image)
    if not sigma > NO_NOISE_SIGMA:  # no noise found (e.g. a flat image): nothing to remove
      return _unsqueeze(x)
  elif not (np.isfinite(sigma) and sigma > 0):
    raise ValueError(f"cbm3d: `sigma` must be a finite number > 0 ([0, 1] scale), got {sigma!r}.")
  profile = bm3d.BM3DProfile()  # the default ('np') profile
  if x.shape[0] * x.shape[1] <= SMALL_IMAGE_PIXELS:  # one thread: the pool's start-up would double the CPU time
    profile.num_threads = 1
  gray = all(np.array_equal(x[..., 0], x[..., c]) for c in range(1, x.shape[-1]))
  if not gray:
    return _unsqueeze(bm3d.bm3d_rgb(x, sigma, profile))
  # Gray, or colour with three equal channels (bm3d_rgb divides by the chroma's range, 0 there: NaN).
  return _unsqueeze(np.repeat(bm3d.bm3d(x[..., 0], sigma, profile)[..., None], x.shape[-1], axis=-1))


def bicubic_upscale(image: np.ndarray, factor: int) -> np.ndarray:
  """Bicubic ``factor``x upscaling of a low-resolution image (PIL ``BICUBIC`` on 8-bit, as the reference)."""
  from dipjax.image_io import to_uint8

  arr = to_uint8(image)
  pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
  out = pil.resize((pil.width * factor, pil.height * factor), Image.BICUBIC)
  return _unsqueeze(np.asarray(out, np.float32) / 255.0)


def biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Fills the holes (``mask == 0``) by biharmonic inpainting (skimage ``inpaint_biharmonic``).

  Args:
    image: ``(H, W, C)``; values under the holes are ignored.
    mask: ``(H, W, 1)`` or ``(H, W, C)``, 1 = known pixel. A per-channel mask is
      applied channel by channel.
  """
  from skimage.restoration import inpaint_biharmonic

  image = np.asarray(image, np.float64)
  mask = np.asarray(mask)
  if mask.shape[-1] == 1 or np.all(mask == mask[..., :1]):
    holes = mask[..., 0] < 0.5
    return _unsqueeze(inpaint_biharmonic(_squeeze(image), holes, channel_axis=_channel_axis(image)))
  return _unsqueeze(np.stack([inpaint_biharmonic(image[..., c], mask[..., c] < 0.5) for c in range(image.shape[-1])],
                             axis=-1))


DENOISERS = {"nlm": non_local_means, "tv": total_variation, "wavelet": wavelet, "cbm3d": cbm3d}
NEEDS_SIGMA = frozenset({"cbm3d"})  # the baselines that take the noise std as `sigma=` (else they estimate it)


def call(name: str, baseline: Callable[..., np.ndarray], *, sigma: Optional[float] = None) -> np.ndarray:
  """Runs one of a problem's baselines (``Problem.baselines[name]``), passing the noise std where it takes one.

  Args:
    name: the baseline's name (a key of ``Problem.baselines``).
    baseline: the no-argument callable stored there.
    sigma: the observation's noise std ([0, 1] scale), known or estimated
      (``Problem.noise_sigma``); None: the baseline estimates it itself.

  Returns:
    The restored ``(H, W, C)`` image.

  Raises:
    MissingDependency: the baseline's optional package is not installed.

  Example:
    >>> noisy = np.full((16, 16, 1), 0.5, np.float32)
    >>> call("tv", lambda: total_variation(noisy)).shape
    (16, 16, 1)
  """
  if name in NEEDS_SIGMA and sigma is not None:
    return baseline(sigma=sigma)
  return baseline()
