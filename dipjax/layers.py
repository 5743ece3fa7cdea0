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

from dipjax import conv as conv_lib
from dipjax import downsampler

PADDINGS = ("reflect", "zero")
ACTIVATIONS = ("leaky_relu", "swish", "elu", "none")
UPSAMPLE_MODES = ("nearest", "bilinear")
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
  A stride-2, 3x3 conv therefore maps ``H`` to ``ceil(H / 2)``.
  """

  features: int  # C_out
  kernel_size: int = 3  # square kernel size k
  stride: int = 1  # spatial stride
  use_bias: bool = True  # add a learned bias
  padding: str = "reflect"  # 'reflect' or 'zero'
  # True when a BatchNorm follows: BN subtracts the per-channel mean, so the bias cancels
  # exactly; it is kept as a parameter (reference parameter count) but not added.
  bias_cancelled: bool = False

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
    return conv_lib.conv2d(x, kernel, bias=None if self.bias_cancelled else bias, stride=self.stride)


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
  ``jax.image.resize(x, (2H, 2W, C), 'bilinear')``.
  """
  if mode == "nearest":
    return jnp.repeat(jnp.repeat(x, 2, axis=0), 2, axis=1)
  if mode == "bilinear":
    return _bilinear_axis(_bilinear_axis(x, 0), 1)
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
