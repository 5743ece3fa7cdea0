r"""Non-blind deblurring pieces: blur kernels, the blur operator ``A`` and its adjoint, baselines.

A blur is a 2-D convolution of each channel of an ``(H, W, C)`` image ``x`` with one
``(kh, kw)`` kernel ``k`` (non-negative, sum 1), ``y = k ∗ x``. Two boundary
conventions, both true convolutions (the kernel is flipped, as ``scipy.signal.convolve``):

* ``boundary='circular'`` — the image is periodic; ``y`` has the size of ``x``:
  ``y[i, j] = Σ_{u,v} k[u, v] · x[(i − u + ch) mod H, (j − v + cw) mod W]`` with the
  kernel's centre ``(ch, cw) = (kh // 2, kw // 2)``, so a centred delta kernel is the
  identity. Computed with FFTs: ``y = F⁻¹(F(x) · F(k̃))`` where ``k̃`` is ``k``
  zero-padded to ``(H, W)`` and rolled so its centre is at ``(0, 0)`` (the model
  ``skimage.restoration.wiener`` assumes).
* ``boundary='valid'`` — no assumption about the outside of the image; ``y`` is
  smaller by ``k − 1``: ``(H − kh + 1, W − kw + 1, C)``, with
  ``y[i, j] = Σ_{u,v} k[u, v] · x[i + kh − 1 − u, j + kw − 1 − v]``
  (``scipy.signal.convolve2d(x, k, mode='valid')``). This is the physically honest
  model for a photo: the blurred border depends on pixels outside the frame.

:func:`blur_adjoint` is the exact adjoint ``Aᵀ`` of each (``⟨A x, y⟩ = ⟨x, Aᵀ y⟩``):
correlation instead of convolution — for ``circular``, multiplication by the complex
conjugate ``conj(F(k̃))``; for ``valid``, correlation of ``y`` zero-padded by
``k − 1`` on every side, which gives back ``(H, W, C)``.

For DIP, the forward operator is ``lambda x: blur(x, kernel)``; fitting it to a
blurred observation is non-blind deconvolution. :func:`wiener` and
:func:`richardson_lucy` are scikit-image's classical answers (host-side, per channel).

Kernels: :func:`gaussian_kernel`, :func:`motion_kernel`, :func:`load_kernel` (an image
or ``.npy`` file, e.g. one of Levin et al.'s kernels); all ``float32`` and sum to 1.

Example:
  >>> import jax.numpy as jnp
  >>> from dipjax import blur
  >>> k = blur.gaussian_kernel(1.0)
  >>> k.shape, round(float(k.sum()), 6)
  ((7, 7), 1.0)
  >>> blur.blur(jnp.ones((16, 16, 3)), k, boundary="valid").shape
  (10, 10, 3)
"""

from __future__ import annotations

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

BOUNDARIES = ("circular", "valid")


def _odd_size(where: str, size) -> int:
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
    raise ValueError(f"blur.{where}: `size` must be a positive odd integer, got {size!r}.")
  return int(size)


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
  """An isotropic Gaussian blur kernel ``exp(−(u² + v²) / 2σ²)``, centred, normalised to sum 1.

  Args:
    sigma: standard deviation in pixels, ``>= 0`` (0 gives a delta).
    size: odd side length; default ``2 ⌈3σ⌉ + 1``.

  Returns:
    ``(size, size)`` float32 numpy array, sum 1.

  Example:
    >>> gaussian_kernel(0.0).tolist()
    [[1.0]]
  """
  if not (isinstance(sigma, (int, float, np.number)) and math.isfinite(sigma) and sigma >= 0):
    raise ValueError(f"blur.gaussian_kernel: `sigma` must be a finite number >= 0, got {sigma!r}.")
  size = 2 * math.ceil(3 * sigma) + 1 if size is None else _odd_size("gaussian_kernel", size)
  r = np.arange(size, dtype=np.float64) - (size - 1) / 2
  g = np.exp(-r**2 / (2 * sigma**2)) if sigma > 0 else (r == 0).astype(np.float64)
  k = np.outer(g, g)
  return (k / k.sum()).astype(np.float32)


def motion_kernel(length: float, angle_deg: float, size: int | None = None) -> np.ndarray:
  """A linear motion-blur kernel: a centred segment of ``length`` pixels at ``angle_deg``.

  The segment runs from ``−length/2`` to ``+length/2`` about the kernel's centre; it
  is cut into 32 pieces per pixel of length and each piece's length goes to the pixel
  whose cell holds the piece's midpoint (box integration along the segment), then the
  kernel is normalised. A horizontal segment of integer length ``L`` is thus ``L``
  equal taps. The angle is counter-clockwise from the column axis (+x, to the right)
  as seen on screen: 0° is a horizontal blur, 90° a vertical one.

  Args:
    length: end-to-end length in pixels, ``>= 0`` (0 gives a delta).
    angle_deg: direction in degrees.
    size: odd side length; default ``2 ⌈(length − 1) / 2⌉ + 1`` (at least 1), the smallest
      that holds the segment at any angle.

  Returns:
    ``(size, size)`` float32 numpy array, sum 1.

  Example:
    >>> k = motion_kernel(4, 0)
    >>> k.shape, k[2].tolist()
    ((5, 5), [0.125, 0.25, 0.25, 0.25, 0.125])
    >>> [round(float(v), 3) for v in motion_kernel(3, 90)[:, 1]]
    [0.333, 0.333, 0.333]
  """
  if not (isinstance(length, (int, float, np.number)) and math.isfinite(length) and length >= 0):
    raise ValueError(f"blur.motion_kernel: `length` must be a finite number >= 0, got {length!r}.")
  if not (isinstance(angle_deg, (int, float, np.number)) and math.isfinite(angle_deg)):
    raise ValueError(f"blur.motion_kernel: `angle_deg` must be a finite number, got {angle_deg!r}.")
  size = 2 * math.ceil(max(length - 1, 0) / 2) + 1 if size is None else _odd_size("motion_kernel", size)
  pieces = max(1, math.ceil(32 * length))
  t = (np.arange(pieces) + 0.5) / pieces * length - length / 2  # midpoints of the pieces
  theta = math.radians(angle_deg)
  c = size // 2
  rows = np.rint(c - t * math.sin(theta)).astype(int)
  cols = np.rint(c + t * math.cos(theta)).astype(int)
  if min(rows.min(), cols.min()) < 0 or max(rows.max(), cols.max()) >= size:
    raise ValueError(f"blur.motion_kernel: `size` {size} is too small for a segment of length {length!r}.")
  k = np.zeros((size, size))
  np.add.at(k, (rows, cols), 1.0)
  return (k / k.sum()).astype(np.float32)


def load_kernel(path) -> np.ndarray:
  """Reads a blur kernel from a ``.npy`` file or an image (PNG, …) and normalises it to sum 1.

  An image with identical colour channels (a grey PNG saved as RGB) is read as one
  channel; an alpha channel is ignored.

  Args:
    path: file path (``str`` or ``pathlib.Path``).

  Returns:
    ``(kh, kw)`` float32 numpy array, non-negative, sum 1.

  Raises:
    ValueError: (one line) the file is missing or unreadable, or the kernel is not
      2-D, empty, not finite, has a negative entry, or is all zero.

  Example:
    >>> import numpy as np, pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "k.npy"
    >>> np.save(p, np.ones((3, 3)))
    >>> load_kernel(p).shape, round(float(load_kernel(p)[1, 1]), 6)
    ((3, 3), 0.111111)
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise ValueError(f"blur.load_kernel: no kernel file at {str(path)!r}.")
  try:
    if path.suffix.lower() == ".npy":
      arr = np.load(path, allow_pickle=False)
    else:
      from PIL import Image
      with Image.open(path) as im:
        arr = np.asarray(im)
  except Exception as e:  # noqa: BLE001 - any reader failure becomes the one-line error below.
    reason = " ".join(str(e).split()) or type(e).__name__
    raise ValueError(f"blur.load_kernel: cannot read {str(path)!r}: {reason}") from None
  if arr.ndim == 3 and path.suffix.lower() != ".npy":
    arr = arr[..., :3] if arr.shape[-1] == 4 else arr[..., :1] if arr.shape[-1] == 2 else arr
    if not np.all(arr == arr[..., :1]):
      raise ValueError(f"blur.load_kernel: {str(path)!r} is a colour image; a kernel must be grey (2-D).")
    arr = arr[..., 0]
  if arr.ndim != 2 or arr.size == 0:
    raise ValueError(f"blur.load_kernel: {str(path)!r} holds shape {arr.shape}; a kernel must be non-empty and 2-D.")
  if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool):
    raise ValueError(f"blur.load_kernel: {str(path)!r} holds dtype {arr.dtype}; a kernel must be real numbers.")
  arr = arr.astype(np.float64)
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"blur.load_kernel: {str(path)!r} has NaN or infinite entries.")
  if arr.min() < 0:
    raise ValueError(f"blur.load_kernel: {str(path)!r} has negative entries (min {arr.min():.3g}).")
  if arr.sum() <= 0:
    raise ValueError(f"blur.load_kernel: {str(path)!r} is all zero.")
  return (arr / arr.sum()).astype(np.float32)


def _check_blur_args(where: str, image_shape, kernel, boundary: str) -> jax.Array:
  if boundary not in BOUNDARIES:
    raise ValueError(f"blur.{where}: `boundary` must be one of {BOUNDARIES}, got {boundary!r}.")
  kernel = jnp.asarray(kernel, jnp.float32)
  if kernel.ndim != 2:
    raise ValueError(f"blur.{where}: `kernel` must be 2-D (kh, kw), got shape {kernel.shape}.")
  if len(image_shape) != 3:
    raise ValueError(f"blur.{where}: the image must be (H, W, C), got shape {tuple(image_shape)}.")
  if kernel.shape[0] > image_shape[0] or kernel.shape[1] > image_shape[1]:
    raise ValueError(f"blur.{where}: `kernel` {kernel.shape} is larger than the image {tuple(image_shape)}.")
  return kernel


def _kernel_spectrum(kernel: jax.Array, height: int, width: int) -> jax.Array:
  """``rfft2`` of ``kernel`` zero-padded to ``(height, width)`` with its centre rolled to ``(0, 0)``."""
  kh, kw = kernel.shape
  padded = jnp.zeros((height, width), jnp.float32).at[:kh, :kw].set(kernel)
  padded = jnp.roll(padded, (-(kh // 2), -(kw // 2)), axis=(0, 1))
  return jnp.fft.rfft2(padded)


def _depthwise_correlate(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  """Cross-correlates each channel of ``(H, W, C)`` ``x`` with the 2-D ``kernel`` (XLA convolution)."""
  c = x.shape[-1]
  rhs = jnp.broadcast_to(kernel[:, :, None, None], kernel.shape + (1, c))
  out = lax.conv_general_dilated(x[None], rhs, window_strides=(1, 1), padding=padding,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c,
                                 precision=lax.Precision.HIGHEST)
  return out[0]


def blur(x: jax.Array, kernel: jax.Array, *, boundary: str = "circular") -> jax.Array:
  """Convolves each channel of ``x`` with ``kernel`` (the blur operator ``A``).

  Args:
    x: ``(H, W, C)`` float image.
    kernel: ``(kh, kw)`` kernel, not larger than the image (need not be normalised;
      may be traced, e.g. for blind deblurring).
    boundary: ``'circular'`` (periodic, same size) or ``'valid'`` (output
      ``(H − kh + 1, W − kw + 1, C)``); see the module docstring.

  Returns:
    The blurred float32 image.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.zeros((5, 5, 1)).at[2, 2, 0].set(1.0)
    >>> y = blur(x, jnp.asarray([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]]))
    >>> (jnp.round(y[2, :, 0], 6) + 0.0).tolist()  # circular, via FFTs: exact to float32 rounding
    [0.0, 0.0, 0.5, 0.5, 0.0]
  """
  x = jnp.asarray(x, jnp.float32)
  kernel = _check_blur_args("blur", x.shape, kernel, boundary)
  if boundary == "valid":
    return _depthwise_correlate(x, kernel[::-1, ::-1], "VALID")
  h, w, _ = x.shape
  spectrum = _kernel_spectrum(kernel, h, w)[:, :, None]
  out = jnp.fft.irfft2(jnp.fft.rfft2(x, axes=(0, 1)) * spectrum, s=(h, w), axes=(0, 1))
  return out.astype(jnp.float32)


def blur_adjoint(y: jax.Array, kernel: jax.Array, *, boundary: str = "circular",
                 image_shape: tuple[int, int, int] | None = None) -> jax.Array:
  """The exact adjoint ``Aᵀ y`` of :func:`blur` (correlation with ``kernel``).

  Args:
    y: a blurred-space ``(h, w, C)`` float image: the image's size for ``'circular'``,
      ``(H − kh + 1, W − kw + 1, C)`` for ``'valid'``.
    kernel: the ``(kh, kw)`` kernel given to :func:`blur`.
    boundary: ``'circular'`` or ``'valid'``, as for :func:`blur`.
    image_shape: ``(H, W, C)`` of the image space; required for ``'valid'``, and
      must equal ``y.shape`` for ``'circular'`` (default).

  Returns:
    ``(H, W, C)`` float32 array with ``⟨blur(x), y⟩ = ⟨x, blur_adjoint(y)⟩``.

  Example:
    >>> import jax.numpy as jnp
    >>> blur_adjoint(jnp.ones((6, 6, 3)), jnp.ones((3, 3)) / 9, boundary="valid",
    ...              image_shape=(8, 8, 3)).shape
    (8, 8, 3)
  """
  y = jnp.asarray(y, jnp.float32)
  if y.ndim != 3:
    raise ValueError(f"blur.blur_adjoint: `y` must be (h, w, C), got shape {y.shape}.")
  if image_shape is None:
    if boundary == "valid":
      raise ValueError("blur.blur_adjoint: `image_shape` is required for boundary='valid'.")
    image_shape = y.shape
  image_shape = tuple(int(s) for s in image_shape)
  kernel = _check_blur_args("blur_adjoint", image_shape, kernel, boundary)
  kh, kw = kernel.shape
  expected = image_shape if boundary == "circular" else (image_shape[0] - kh + 1, image_shape[1] - kw + 1,
                                                          image_shape[2])
  if y.shape != expected:
    raise ValueError(f"blur.blur_adjoint: `y` has shape {y.shape}; boundary={boundary!r} with kernel "
                     f"{kernel.shape} and image_shape {image_shape} needs {expected}.")
  if boundary == "valid":
    return _depthwise_correlate(y, kernel, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
  h, w, _ = image_shape
  spectrum = jnp.conj(_kernel_spectrum(kernel, h, w))[:, :, None]
  out = jnp.fft.irfft2(jnp.fft.rfft2(y, axes=(0, 1)) * spectrum, s=(h, w), axes=(0, 1))
  return out.astype(jnp.float32)


def wiener(image: np.ndarray, kernel: np.ndarray, *, balance: float) -> np.ndarray:
  """Wiener–Hunt deconvolution, channel by channel (``skimage.restoration.wiener``).

  scikit-image's filter assumes the **circular** blur model above (same kernel
  centring) and regularises with a Laplacian prior weighted by ``balance``
  (larger = smoother). Host-side: numpy in, numpy out; the result is clipped to [0, 1].

  Args:
    image: ``(H, W, C)`` blurred float image in [0, 1].
    kernel: ``(kh, kw)`` blur kernel (sum 1).
    balance: regularisation weight ``> 0`` (scikit-image has no default; its
      gallery example uses values around 0.1–1 for mild noise).

  Returns:
    ``(H, W, C)`` float32 deconvolved image in [0, 1].

  Example:
    >>> import numpy as np
    >>> wiener(np.full((16, 16, 3), 0.5, np.float32), np.ones((3, 3)) / 9, balance=0.1).shape
    (16, 16, 3)
  """
  from skimage.restoration import wiener as sk_wiener

  if not balance > 0:
    raise ValueError(f"blur.wiener: `balance` must be > 0, got {balance!r}.")
  image, psf = np.asarray(image, np.float64), np.asarray(kernel, np.float64)
  out = [sk_wiener(image[..., c], psf, balance, clip=False) for c in range(image.shape[-1])]
  return np.clip(np.stack(out, axis=-1), 0.0, 1.0).astype(np.float32)


def richardson_lucy(image: np.ndarray, kernel: np.ndarray, *, num_iter: int = 50) -> np.ndarray:
  """Richardson–Lucy deconvolution, channel by channel (``skimage.restoration.richardson_lucy``).

  The multiplicative EM iteration for Poisson noise,
  ``x ← x · (kᵀ ∗ (y / (k ∗ x)))``, from a flat 0.5 start. scikit-image convolves with
  ``mode='same'`` (zero padding), so its model differs from both boundaries above
  near the border. Host-side; the result is clipped to [0, 1].

  Args:
    image: ``(H, W, C)`` blurred float image in [0, 1].
    kernel: ``(kh, kw)`` blur kernel (sum 1).
    num_iter: number of iterations ``>= 1`` (scikit-image's default, 50).

  Returns:
    ``(H, W, C)`` float32 deconvolved image in [0, 1].

  Example:
    >>> import numpy as np
    >>> richardson_lucy(np.full((16, 16, 1), 0.5, np.float32), np.ones((3, 3)) / 9, num_iter=5).shape
    (16, 16, 1)
  """
  from skimage.restoration import richardson_lucy as sk_richardson_lucy

  if isinstance(num_iter, bool) or not isinstance(num_iter, (int, np.integer)) or num_iter < 1:
    raise ValueError(f"blur.richardson_lucy: `num_iter` must be a positive integer, got {num_iter!r}.")
  image, psf = np.asarray(image, np.float64), np.asarray(kernel, np.float64)
  out = [sk_richardson_lucy(image[..., c], psf, num_iter=int(num_iter), clip=False) for c in range(image.shape[-1])]
  return np.clip(np.stack(out, axis=-1), 0.0, 1.0).astype(np.float32)
