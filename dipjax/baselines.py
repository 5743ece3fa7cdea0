"""Classical baselines from scikit-image, so a run shows what the deep prior buys.

Host-side (numpy in, numpy out), float32 ``(H, W, C)`` images in ``[0, 1]``:

* denoising / deblocking: non-local means (noise level estimated from the image,
  ``h = 0.8 σ̂``), total-variation (Chambolle, weight 0.1) and wavelet shrinkage
  (BayesShrink, soft, in YCbCr for colour);
* super-resolution: bicubic interpolation of the low-resolution image (PIL bicubic
  as the reference notebook's baseline, :func:`bicubic_upscale`);
* inpainting / missing pixels: biharmonic inpainting of the holes.

Parameters are scikit-image's documented defaults or its gallery's choices, not
tuned per image: the point is a fair, reproducible reference line.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


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


DENOISERS = {"nlm": non_local_means, "tv": total_variation, "wavelet": wavelet}
