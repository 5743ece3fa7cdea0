"""A 2-D convolution whose forward pass, VJP and batching are all matmuls.

Why this module exists: XLA:CPU runs the gradients of ``lax.conv_general_dilated``
inside a ``lax.scan``/while loop on a slow generic path (jax-ml/jax#12868; on the
project's 2-core CPU a 3x3, 128->128 weight gradient at 64x64 took 2.5 s per step
inside a scan against 0.03 s unrolled), and ``jax.vmap`` over per-seed weights turns
a convolution into a grouped convolution, which is slow on CPU too. Here the
convolution is written as patch extraction (``im2col``) followed by one matrix
product, and its VJP is written by hand as matrix products plus the adjoint of
patch extraction (``col2im``, a sum of shifted, strided pads). Under ``vmap`` every
matrix product becomes a batched ``dot_general``, so seeds stay on batched GEMMs.

Convention: single image, HWC, ``VALID`` padding (callers pad first), kernel in
HWIO layout ``(kh, kw, C_in, C_out)``, square kernels, equal strides.

    y[h, w, o] = b[o] + sum_{i, j, c} x[s*h + i, s*w + j, c] * k[i, j, c, o]
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax


def _out_size(size: int, kernel: int, stride: int) -> int:
  return (size - kernel) // stride + 1


def extract_patches(x: jax.Array, kernel_size: int, stride: int = 1) -> jax.Array:
  """Returns the ``(Ho, Wo, k*k*C)`` patches of ``x`` (im2col), ordered (i, j, c).

  Args:
    x: ``(H, W, C)`` array, already padded.
    kernel_size: square kernel size ``k``.
    stride: stride ``s`` in both spatial directions.

  Returns:
    ``p`` with ``p[h, w, (i*k + j)*C + c] = x[s*h + i, s*w + j, c]``.
  """
  k, s = kernel_size, stride
  h_out = _out_size(x.shape[0], k, s)
  w_out = _out_size(x.shape[1], k, s)
  if k == 1 and s == 1:
    return x
  cols = [
      lax.slice(x, (i, j, 0), (i + s * (h_out - 1) + 1, j + s * (w_out - 1) + 1, x.shape[2]), (s, s, 1))
      for i in range(k)
      for j in range(k)
  ]
  return jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]


def _fold_patches(dp: jax.Array, in_shape: tuple[int, ...], kernel_size: int, stride: int) -> jax.Array:
  """Adjoint of :func:`extract_patches` (col2im): scatters patch cotangents back."""
  k, s = kernel_size, stride
  height, width, channels = in_shape
  h_out, w_out = dp.shape[0], dp.shape[1]
  if k == 1 and s == 1:
    return dp
  zero = jnp.zeros((), dp.dtype)
  total = None
  for i in range(k):
    for j in range(k):
      idx = i * k + j
      block = dp[:, :, idx * channels:(idx + 1) * channels]
      hi_h = height - i - (s * (h_out - 1) + 1)
      hi_w = width - j - (s * (w_out - 1) + 1)
      placed = lax.pad(block, zero, ((i, hi_h, s - 1), (j, hi_w, s - 1), (0, 0, 0)))
      total = placed if total is None else total + placed
  return total


def _matmul_last(a: jax.Array, b: jax.Array) -> jax.Array:
  """``a[..., k] @ b[k, n]`` as one dot_general over the flattened leading axes."""
  return lax.dot_general(a, b, (((a.ndim - 1,), (0,)), ((), ())))


def _forward(x, kernel, bias, stride):
  patches = extract_patches(x, kernel.shape[0], stride)
  y = _matmul_last(patches, kernel.reshape(-1, kernel.shape[-1]))
  if bias is not None:
    y = y + bias.reshape((1,) * (y.ndim - 1) + (-1,))
  return y, patches


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv(x, kernel, bias, stride):
  return _forward(x, kernel, bias, stride)[0]


def _conv_fwd(x, kernel, bias, stride):
  y, patches = _forward(x, kernel, bias, stride)
  # The patches are kept for the weight gradient: measured faster than rebuilding them
  # in the backward pass, at a memory cost of k²·Ho·Wo·C_in floats (BUILD_NOTES.md §2.1).
  return y, (patches, kernel, x.shape, bias is not None)


def _conv_bwd(stride, residuals, dy):
  patches, kernel, x_shape, has_bias = residuals
  k, _, c_in, c_out = kernel.shape
  # dW[(i,j,c), o] = sum_{h,w} patches[h, w, (i,j,c)] * dy[h, w, o]  (Pᵀ·dy; the (dyᵀ·P)ᵀ
  # form was slower on XLA:CPU, BUILD_NOTES.md §2.1).
  d_kernel = lax.dot_general(patches, dy, (((0, 1), (0, 1)), ((), ())))
  d_kernel = d_kernel.reshape(k, k, c_in, c_out)
  # dP[h, w, (i,j,c)] = sum_o dy[h, w, o] * W[(i,j,c), o]; then col2im.
  d_patches = lax.dot_general(dy, kernel.reshape(-1, c_out), (((2,), (1,)), ((), ())))
  dx = _fold_patches(d_patches, x_shape, k, stride)
  d_bias = jnp.sum(dy, axis=(0, 1)) if has_bias else None
  return dx, d_kernel, d_bias


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, *, bias: jax.Array | None = None, stride: int = 1) -> jax.Array:
  """2-D cross-correlation of one HWC image with ``VALID`` padding, as matmuls.

  Values and gradients equal ``lax.conv_general_dilated(x[None], kernel, (s, s),
  'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))[0] + bias`` (to float32
  rounding); the VJP is hand-written as matrix products (see module docstring),
  which keeps it on XLA's fast GEMM path inside ``lax.scan`` and under ``vmap``.

  Args:
    x: ``(H, W, C_in)`` float array (already padded).
    kernel: ``(k, k, C_in, C_out)`` float array (HWIO).
    bias: optional ``(C_out,)`` array.
    stride: spatial stride ``s`` (1 or more).

  Returns:
    ``(Ho, Wo, C_out)`` with ``Ho = (H - k) // s + 1`` (same for ``Wo``).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> y = conv2d(jnp.ones((8, 8, 3)), jnp.ones((3, 3, 3, 4)), stride=2)
    >>> y.shape
    (3, 3, 4)
  """
  if x.ndim != 3:
    raise ValueError(f"conv2d: `x` must be (H, W, C_in), got shape {x.shape}.")
  if kernel.ndim != 4 or kernel.shape[0] != kernel.shape[1]:
    raise ValueError(f"conv2d: `kernel` must be square (k, k, C_in, C_out), got shape {kernel.shape}.")
  if kernel.shape[2] != x.shape[2]:
    raise ValueError(f"conv2d: `kernel` expects {kernel.shape[2]} input channels but `x` has {x.shape[2]}.")
  if not isinstance(stride, int) or stride < 1:
    raise ValueError(f"conv2d: `stride` must be a positive int, got {stride!r}.")
  k = kernel.shape[0]
  if x.shape[0] < k or x.shape[1] < k:
    raise ValueError(f"conv2d: `x` of spatial size {x.shape[:2]} is smaller than the kernel ({k}x{k}).")
  return _conv(x, kernel, bias, stride)
