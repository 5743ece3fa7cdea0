"""Linen building blocks of the DIP hourglass, for one HWC image.

Every layer follows the reference's order (pad -> conv -> pool -> BN -> act) and
PyTorch's defaults (dip_reference.md §1.1): convolution weights and biases are
drawn from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = C_in k k``; BatchNorm
always normalises with the statistics of the current image (the reference never
enters eval mode), ``eps = 1e-5``, biased variance.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dipjax import conv as conv_lib
from dipjax import downsampler

PADDINGS = ("reflect", "zero")
ACTIVATIONS = ("leaky_relu", "swish", "elu", "none")
UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")  # parameter-free; SkipNet also takes "deconv"
DOWNSAMPLE_MODES = ("stride", "avg", "max", "lanczos2", "lanczos3")
BN_SCALE_INITS = ("ones", "uniform")


def torch_uniform_init(fan_in: int):
  """PyTorch's default Conv2d init for kernels and biases: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class Conv(nn.Module):
  """Padded 2-D convolution on one ``(H, W, C_in)`` image (matmul-based, see :mod:`dipjax.conv`).

  Pads ``(k - 1) // 2`` pixels on each side (reflection without edge repeat, as
  ``torch.nn.ReflectionPad2d``, or zeros), then convolves with stride ``stride``.
  A stride-2, 3x3 conv therefore maps ``H`` to ``ceil(H / 2)``. ``precision`` and
  ``conv_impl`` choose the arithmetic and the implementation of
  :func:`dipjax.conv.conv2d`; the parameters are float32 either way.
  """

  features: int  # C_out
  kernel_size: int = 3  # square kernel size k
  stride: int = 1  # spatial stride
  use_bias: bool = True  # add a learned bias
  padding: str = "reflect"  # 'reflect' or 'zero'
  # True when a BatchNorm follows: BN subtracts the per-channel mean, so the bias cancels
  # exactly; it is kept as a parameter (reference parameter count) but not added.
  bias_cancelled: bool = False
  precision: str = "float32"  # 'float32' | 'float32_highest' | 'bfloat16' (dipjax.conv.PRECISIONS)
  conv_impl: str = "auto"  # 'auto' | 'matmul' | 'rows' | 'xla' (dipjax.conv.CONV_IMPLS; 'auto' picks by backend)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    fan_in = x.shape[-1] * k * k
    kernel = self.param("kernel", torch_uniform_init(fan_in), (k, k, x.shape[-1], self.features))
    bias = self.param("bias", torch_uniform_init(fan_in), (self.features,)) if self.use_bias else None
    p = (k - 1) // 2
    if p:
      mode = "reflect" if self.padding == "reflect" else "constant"
      x = jnp.pad(x, ((p, p), (p, p), (0, 0)), mode=mode)
    return conv_lib.conv2d(x, kernel, bias=None if self.bias_cancelled else bias, stride=self.stride,
                           precision=self.precision, impl=self.conv_impl)


class BatchNorm(nn.Module):
  """BatchNorm over the spatial axes of one image, always in batch-statistics mode.

  ``y = (x - mean_hw(x)) / sqrt(var_hw(x) + eps) * scale + bias`` per channel, with the
  biased variance. The reference's running averages are never read (its network is
  never put in eval mode), so they are not kept here (see BUILD_NOTES.md).
  """

  eps: float = 1e-5  # as torch.nn.BatchNorm2d
  scale_init: str = "ones"  # 'ones' (PyTorch >= 1.2) or 'uniform' (U(0,1), PyTorch <= 1.1)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    if self.scale_init == "uniform":
      scale = self.param("scale", nn.initializers.uniform(1.0), (c,))
    else:
      scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    mean = jnp.mean(x, axis=(0, 1), keepdims=True)
    centred = x - mean
    var = jnp.mean(jnp.square(centred), axis=(0, 1), keepdims=True)
    return centred * (jax.lax.rsqrt(var + self.eps) * scale.reshape(1, 1, c)) + bias.reshape(1, 1, c)


def activation(x: jax.Array, kind: str) -> jax.Array:
  """LeakyReLU (slope 0.2, as the reference), Swish ``x sigmoid(x)``, ELU, or identity."""
  if kind == "leaky_relu":
    return jnp.where(x >= 0, x, 0.2 * x)
  if kind == "swish":
    return x * jax.nn.sigmoid(x)
  if kind == "elu":
    return jax.nn.elu(x)
  if kind == "none":
    return x
  raise ValueError(f"`activation` must be one of {ACTIVATIONS}, got {kind!r}.")


def upsample2x(x: jax.Array, mode: str) -> jax.Array:
  """2x upsampling of an ``(H, W, C)`` map, as ``torch.nn.Upsample(scale_factor=2)``.

  ``'nearest'`` repeats pixels. ``'bilinear'`` uses half-pixel centres
  (``align_corners=False``, PyTorch >= 0.4) with clamped borders, which for a factor
  of 2 reduces to ``out[2i] = 0.75 x[i] + 0.25 x[i-1]`` and
  ``out[2i+1] = 0.75 x[i] + 0.25 x[i+1]`` (indices clamped); it equals
  ``jax.image.resize(x, (2H, 2W, C), 'bilinear')``. ``'bicubic'``: :func:`upsample2x_bicubic`.
  """
  if mode == "nearest":
    return jnp.repeat(jnp.repeat(x, 2, axis=0), 2, axis=1)
  if mode == "bilinear":
    return _bilinear_axis(_bilinear_axis(x, 0), 1)
  if mode == "bicubic":
    return upsample2x_bicubic(x)
  raise ValueError(f"`upsample` mode must be one of {UPSAMPLE_MODES}, got {mode!r}.")


def _bilinear_axis(x: jax.Array, axis: int) -> jax.Array:
  n = x.shape[axis]
  take = lambda start, stop: jax.lax.slice_in_dim(x, start, stop, axis=axis)
  prev = jnp.concatenate([take(0, 1), take(0, n - 1)], axis=axis)
  nxt = jnp.concatenate([take(1, n), take(n - 1, n)], axis=axis)
  even = 0.75 * x + 0.25 * prev
  odd = 0.75 * x + 0.25 * nxt
  out = jnp.stack([even, odd], axis=axis + 1)
  shape = list(x.shape)
  shape[axis] = 2 * n
  return out.reshape(shape)


def pool2x(x: jax.Array, mode: str) -> jax.Array:
  """2x2 average or max pooling with stride 2 (floor), as ``nn.AvgPool2d(2)``/``nn.MaxPool2d(2)``."""
  h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
  x = x[:h, :w].reshape(h // 2, 2, w // 2, 2, x.shape[2])
  if mode == "avg":
    return jnp.mean(x, axis=(1, 3))
  if mode == "max":
    return jnp.max(x, axis=(1, 3))
  raise ValueError(f"pooling mode must be 'avg' or 'max', got {mode!r}.")


def downsample2x(x: jax.Array, mode: str) -> jax.Array:
  """The pooling that follows a stride-1 conv in non-``'stride'`` modes."""
  if mode in ("avg", "max"):
    return pool2x(x, mode)
  if mode in ("lanczos2", "lanczos3"):
    return downsampler.downsample(x, 2, kernel_type=mode)
  raise ValueError(f"`downsample` mode must be one of {DOWNSAMPLE_MODES}, got {mode!r}.")


def concat_centre_crop(xs: Sequence[jax.Array]) -> jax.Array:
  """Concatenates HWC maps along channels after centre-cropping all to the smallest H, W.

  Same rule as the reference's ``Concat``: offset ``(size - min_size) // 2``.
  """
  h = min(x.shape[0] for x in xs)
  w = min(x.shape[1] for x in xs)
  cropped = []
  for x in xs:
    dh, dw = (x.shape[0] - h) // 2, (x.shape[1] - w) // 2
    cropped.append(x[dh:dh + h, dw:dw + w])
  return jnp.concatenate(cropped, axis=-1)


def conv_transpose2x(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *, precision: str = "float32",
                     impl: str = "matmul") -> jax.Array:
  r"""2x transposed convolution, as ``torch.nn.ConvTranspose2d(C_in, C_out, 4, stride=2, padding=1)``.

  .. math::
     y[p, q, o] = b[o] + \sum_{h, w, i, j, c:\ 2h + i - 1 = p,\ 2w + j - 1 = q} x[h, w, c]\, K[i, j, o, c]

  computed as a stride-1 :func:`dipjax.conv.conv2d` (matmuls, hand-written VJP) of the
  zero-stuffed input (one zero between pixels), zero-padded by ``k - 1 - padding = 2``,
  with the spatially flipped kernel: ``(H, W) -> (2H, 2W)``.

  Args:
    x: ``(H, W, C_in)`` array.
    kernel: ``(4, 4, C_out, C_in)`` array, ``kernel[i, j, o, c] = torch_weight[c, o, i, j]``
      (this layout makes ``prod(shape[:-1]) = 16 C_out`` the fan-in PyTorch uses for
      the init of a transposed conv).
    bias: optional ``(C_out,)`` array.
    precision / impl: as :func:`dipjax.conv.conv2d`.

  Returns:
    ``(2H, 2W, C_out)`` array.

  Example:
    >>> import jax.numpy as jnp
    >>> conv_transpose2x(jnp.ones((3, 5, 2)), jnp.ones((4, 4, 7, 2))).shape
    (6, 10, 7)
  """
  if x.ndim != 3:
    raise ValueError(f"conv_transpose2x: `x` must be (H, W, C_in), got shape {x.shape}.")
  if kernel.ndim != 4 or kernel.shape[:2] != (4, 4) or kernel.shape[3] != x.shape[2]:
    raise ValueError(f"conv_transpose2x: `kernel` must be (4, 4, C_out, {x.shape[2]}), got shape {kernel.shape}.")
  zero = jnp.zeros((), x.dtype)
  stuffed = jax.lax.pad(x, zero, ((2, 2, 1), (2, 2, 1), (0, 0, 0)))
  flipped = jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
  return conv_lib.conv2d(stuffed, flipped, bias=bias, precision=precision, impl=impl)


def _bicubic_weights(n: int, phase: int) -> np.ndarray:
  """(n, 4) Keys (a = -0.5) weights of taps ``i-2..i+1`` (phase 0) or ``i-1..i+2`` (phase 1), renormalised."""
  offsets = np.arange(4) - (2 if phase == 0 else 1)
  centre = -0.25 if phase == 0 else 0.25
  d = np.abs(offsets - centre)
  a = -0.5
  w = np.where(d <= 1, (a + 2) * d**3 - (a + 3) * d**2 + 1, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a)
  pos = np.arange(n)[:, None] + offsets[None, :]
  w = np.where((pos >= 0) & (pos < n), w[None, :], 0.0)
  return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _bicubic_axis(x: jax.Array, axis: int) -> jax.Array:
  n = x.shape[axis]
  pads = [(0, 0)] * x.ndim
  pads[axis] = (2, 2)
  xp = jnp.pad(x, pads, mode="edge")  # values at the pads get weight 0
  phases = []
  for phase in (0, 1):
    w = _bicubic_weights(n, phase)
    first = 0 if phase == 0 else 1
    acc = None
    for t in range(4):
      shape = [1] * x.ndim
      shape[axis] = n
      tap = jax.lax.slice_in_dim(xp, first + t, first + t + n, axis=axis) * jnp.asarray(w[:, t]).reshape(shape)
      acc = tap if acc is None else acc + tap
    phases.append(acc)
  out = jnp.stack(phases, axis=axis + 1)
  shape = list(x.shape)
  shape[axis] = 2 * n
  return out.reshape(shape)


def upsample2x_bicubic(x: jax.Array) -> jax.Array:
  r"""2x bicubic upsampling of an ``(H, W, C)`` map, equal to ``jax.image.resize(x, (2H, 2W, C), 'bicubic')``.

  Keys' cubic kernel with ``a = -0.5`` (as ``jax.image`` and PIL; PyTorch's
  ``F.interpolate(mode='bicubic')`` uses ``a = -0.75`` and clamps indices instead, so it
  differs), half-pixel centres: output pixel ``2i + r`` samples the input at
  ``i - 1/4`` (``r = 0``) or ``i + 1/4`` (``r = 1``) with the four taps

  .. math:: y[2i] = -0.0234\,x[i-2] + 0.2266\,x[i-1] + 0.8672\,x[i] - 0.0703\,x[i+1]

  (mirrored for ``r = 1``); near the border taps outside the image are dropped and the
  remaining weights renormalised to sum 1, exactly as ``jax.image.scale_and_translate``.
  Separable: rows, then columns; cost ``O(HWC)`` (static slices, no gathers).

  Args:
    x: ``(H, W, C)`` array.

  Returns:
    ``(2H, 2W, C)`` array.

  Example:
    >>> import jax.numpy as jnp
    >>> upsample2x_bicubic(jnp.ones((4, 3, 2))).shape
    (8, 6, 2)
  """
  if x.ndim != 3:
    raise ValueError(f"upsample2x_bicubic: `x` must be (H, W, C), got shape {x.shape}.")
  return _bicubic_axis(_bicubic_axis(x, 0), 1)


class ConvTranspose(nn.Module):
  """Learned 2x upsampling ``ConvTranspose2d(C_in, features, 4, stride=2, padding=1)``: ``(H, W) -> (2H, 2W)``.

  Kernel ``(4, 4, features, C_in)`` and bias drawn from PyTorch's default
  ``U(-1/sqrt(16 features), 1/sqrt(16 features))`` (its fan-in of a transposed conv).
  """

  features: int  # C_out
  use_bias: bool = True
  precision: str = "float32"  # as dipjax.layers.Conv
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fan_in = 16 * self.features
    kernel = self.param("kernel", torch_uniform_init(fan_in), (4, 4, self.features, x.shape[-1]))
    bias = self.param("bias", torch_uniform_init(fan_in), (self.features,)) if self.use_bias else None
    return conv_transpose2x(x, kernel, bias, precision=self.precision, impl=self.conv_impl)
