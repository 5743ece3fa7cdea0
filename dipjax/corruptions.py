r"""Synthetic corruptions: how a clean image becomes the observation ``x0`` of each task.

Every corruption the entry points synthesise lives here (image I/O is in
:mod:`dipjax.image_io`, the forward operators ``A`` the fit uses in
:mod:`dipjax.operators`):

* :func:`add_gaussian_noise` — ``clip(x + σ n, 0, 1)``, ``n ~ N(0, I)`` (denoising; the
  no-flash image of the synthetic flash pair);
* :func:`jpeg_compress` — Pillow JPEG at a quality (deblocking);
* :func:`low_resolution` — 8-bit PIL Lanczos downscale (super-resolution's input, as
  the reference makes it; *not* the Lanczos-2 kernel of the loss);
* :func:`text_mask`, :func:`box_mask`, :func:`bernoulli_mask` — masks with 1 = known
  pixel (inpainting, missing pixels), applied with :func:`apply_mask`;
* :func:`synthetic_flash` — a relit "flash" version of a clean image.

Images follow the package convention: float32 ``(H, W, C)`` in ``[0, 1]``. The
random ones take a PRNG ``key`` first and are jit- and vmap-able; the Pillow-based
ones (JPEG, PIL Lanczos, text) run on the host.
"""

from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from dipjax import image_io


def add_gaussian_noise(key: jax.Array, image: jax.Array, *, sigma) -> jax.Array:
  """Returns ``clip(image + sigma * N(0, 1), 0, 1)``, float32 (the reference's ``get_noisy_image``).

  Args:
    key: PRNG key of the noise realisation.
    image: ``(H, W, C)`` float image in [0, 1].
    sigma: noise std on the **[0, 1] scale** (σ = 25 on the 0–255 scale is ``25 / 255``), >= 0.

  Returns:
    ``(H, W, C)`` float32 noisy image.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> noisy = add_gaussian_noise(jax.random.key(0), jnp.full((8, 8, 3), 0.5), sigma=25 / 255)
    >>> noisy.shape
    (8, 8, 3)
  """
  if image.ndim != 3:
    raise ValueError(f"`image` must be (H, W, C), got shape {image.shape}.")
  if isinstance(sigma, (int, float)) and not (np.isfinite(sigma) and sigma >= 0):
    raise ValueError(f"`sigma` must be a finite number >= 0, got {sigma!r}.")
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
  if not 0.0 < keep_fraction <= 1.0:
    raise ValueError(f"`keep_fraction` must be in (0, 1], got {keep_fraction!r}.")
  h, w, c = shape
  draw_shape = (h, w, c) if per_channel else (h, w, 1)
  keep = jax.random.bernoulli(key, keep_fraction, draw_shape).astype(jnp.float32)
  return jnp.broadcast_to(keep, (h, w, c))


def box_mask(shape: tuple[int, int]) -> np.ndarray:
  """``(H, W, 1)`` float32 mask with a centred hole of a third of each side (1/9 of the area).

  Example:
    >>> float(box_mask((9, 9)).mean())
    0.8888888955116272
  """
  h, w = (int(s) for s in shape)
  mask = np.ones((h, w, 1), np.float32)
  mask[h // 3:h - h // 3, w // 3:w - w // 3] = 0.0
  return mask


def text_mask(shape: tuple[int, int], text: str = "hello world", *, font_size: int | None = None,
              line_spacing: float = 1.5) -> np.ndarray:
  """A float32 ``(H, W, 1)`` mask with 0 where ``text`` is drawn (the holes) and 1 elsewhere.

  The text is drawn with Pillow's bundled scalable font, repeated on lines that cover
  the image, like the overlaid text of the paper's text-inpainting figure.

  Example:
    >>> m = text_mask((48, 64))
    >>> m.shape, 0.5 < float(m.mean()) < 1.0
    ((48, 64, 1), True)
  """
  from PIL import ImageDraw, ImageFont

  h, w = int(shape[0]), int(shape[1])
  size = font_size or max(8, h // 12)
  canvas = Image.new("L", (w, h), 255)
  draw = ImageDraw.Draw(canvas)
  font = ImageFont.load_default(size=size)
  y = size // 2
  while y < h:
    draw.text((size // 2, y), (text + "  ") * (1 + w // max(size, 1)), fill=0, font=font)
    y += int(size * line_spacing)
  return (np.asarray(canvas, np.float32) / 255.0 > 0.5).astype(np.float32)[..., None]


def apply_mask(image: jax.Array, mask: jax.Array) -> jax.Array:
  """The masking corruption ``x ⊙ mask`` (mask ``(H, W, 1)`` or ``(H, W, C)``, 1 = known)."""
  if mask.ndim != 3 or mask.shape[:2] != image.shape[:2] or mask.shape[2] not in (1, image.shape[2]):
    raise ValueError(f"`mask` of shape {mask.shape} does not fit `image` of shape {image.shape}; "
                     "it must be (H, W, 1) or (H, W, C) with the image's H and W.")
  if mask.shape[2] != image.shape[2]:
    mask = jnp.broadcast_to(mask, image.shape)
  return image * mask


def masked_mse(prediction: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """``mean((prediction ⊙ mask − target ⊙ mask)²)`` over *all* pixels, as the reference's inpainting loss."""
  return jnp.mean(jnp.square(apply_mask(prediction, mask) - apply_mask(target, mask)))


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
  """JPEG-compresses a float ``(H, W, C)`` image at ``quality`` (1–95) and decodes it back (float32 [0, 1]).

  Example:
    >>> jpeg_compress(np.full((16, 16, 3), 0.5, np.float32), 10).shape
    (16, 16, 3)
  """
  if not isinstance(quality, (int, np.integer)) or not 1 <= int(quality) <= 95:
    raise ValueError(f"`quality` must be an integer in 1..95, got {quality!r}.")
  arr = image_io.to_uint8(image)
  pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
  buf = io.BytesIO()
  pil.save(buf, format="JPEG", quality=int(quality))
  buf.seek(0)
  with Image.open(buf) as decoded:
    out = np.asarray(decoded, np.float32) / 255.0
  return out[..., None] if out.ndim == 2 else out


def low_resolution(image: np.ndarray, factor: int) -> np.ndarray:
  """The reference's low-resolution input: PIL Lanczos (antialiased) resize to ``(H // f, W // f)``.

  As the reference, the image is resized as an 8-bit PIL image (``Image.LANCZOS``, the
  old ``ANTIALIAS``), so the result is quantised to 1/255. This is *not* the
  Lanczos-2 kernel used inside the super-resolution loss (:class:`dipjax.operators.Downsample`),
  exactly as in the reference (dip_reference.md §1.8).

  Example:
    >>> low_resolution(np.zeros((32, 48, 3), np.float32), 4).shape
    (8, 12, 3)
  """
  if not isinstance(factor, (int, np.integer)) or factor < 1:
    raise ValueError(f"`factor` must be a positive integer, got {factor!r}.")
  h, w = image.shape[:2]
  if h // factor < 1 or w // factor < 1:
    raise ValueError(f"`image` of size {w}x{h} is too small for factor {factor}.")
  arr = image_io.to_uint8(image)
  pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
  out = np.asarray(pil.resize((w // factor, h // factor), Image.LANCZOS), np.float32) / 255.0
  return out[..., None] if out.ndim == 2 else out


def synthetic_flash(clean: np.ndarray) -> np.ndarray:
  """A flash-lit version of ``clean``: brighter (gamma 0.6), bluer, with a centred light falloff.

  ``flash = clip(clean^0.6 · tint · (1.25 − 0.9 r²), 0, 1)`` with ``r`` the distance from
  the centre in image-size units and ``tint = (0.85, 0.95, 1.15)`` for RGB. Only a
  demonstration of the flash/no-flash mechanics; use a real pair for a real result.

  Example:
    >>> synthetic_flash(np.full((8, 8, 3), 0.25, np.float32)).shape
    (8, 8, 3)
  """
  h, w = clean.shape[:2]
  yy, xx = np.mgrid[0:h, 0:w]
  r2 = ((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2
  light = 1.25 - 0.9 * r2
  tint = np.array([0.85, 0.95, 1.15], np.float32)[:clean.shape[-1]] if clean.shape[-1] == 3 else 1.0
  return np.clip(clean ** 0.6 * tint * light[..., None], 0, 1).astype(np.float32)
