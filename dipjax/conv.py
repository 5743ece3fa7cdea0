"""A 2-D convolution whose forward pass, VJP and batching are all matmuls (and its alternatives).

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

Implementations (``impl``, :data:`CONV_IMPLS`; :func:`resolve_impl` turns ``'auto'``
into one by backend):

* ``'matmul'`` — im2col: the ``(Ho, Wo, k²C)`` patch buffer and one GEMM; hand-written VJP.
* ``'rows'`` — row-im2col (stride 1; strided convs fall back to ``'matmul'``): only the
  k horizontal shifts are concatenated, ``R = (Hp, Wo, kC)``; one GEMM with the kernel
  stacked as ``(kC, k C_out)`` gives ``Z[h, w, i, o] = sum_{j,c} R[h, w, (j,c)] k[i, j, c, o]``
  and ``y[h] = sum_i Z[h + i, :, i]``. Same GEMM FLOPs (times ``Hp/Ho``), a k× instead
  of k²× buffer saved for the backward; hand-written VJP.
* ``'xla'`` — ``lax.conv_general_dilated`` differentiated by JAX (cuDNN on GPUs; slow
  inside a scan on XLA:CPU, and a grouped convolution under ``vmap``).

Precision (:data:`PRECISIONS`): ``'float32'`` computes everything in f32 at XLA's default
matmul precision — exact f32 on CPU, TF32 operands (10-bit mantissa, f32 accumulation) for
GEMMs and convolutions on NVIDIA Ampere/Hopper GPUs, bf16 passes on TPUs (``'matmul'`` in f32
is bit-identical to the code before these options existed; ``'rows'`` sums the same products
in another order). ``'float32_highest'`` asks for ``lax.Precision.HIGHEST``: full f32 on
every backend (on CPU the same values as ``'float32'``, tests/conv_test.py).
``'bfloat16'`` rounds the GEMM/conv operands —
the input (hence the saved patches), the kernel and the incoming cotangent — to
bfloat16 (8 significant bits, relative rounding error ≤ 2⁻⁹ ≈ 0.2 %) and accumulates the
products in float32 (``preferred_element_type=float32``); outputs, gradients and the
patch-cotangent sum (col2im) are float32, the patch cotangent is stored in bf16 between
its GEMM and col2im. Parameters stay float32 (they are cast at each use), so Adam's
state and updates are unaffected; only the values the network computes change: each
conv output and gradient is off by a few 2⁻⁹ relative to its scale (the rounding errors
of the ``k² C_in`` products are independent, so they grow like the sum itself; measured
≤ 5e-3 of the largest entry in tests/conv_test.py).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

PRECISIONS = ("float32", "float32_highest", "bfloat16")
_HIGHEST = lax.Precision.HIGHEST
CONV_IMPLS = ("auto", "matmul", "rows", "xla")
# What 'auto' picks per backend. CPU: 'rows', measured quietly faster than 'matmul' at 64², 128² and 256² in both
# precisions (5-20 % per step, 17-40 % less memory; BUILD_NOTES.md §19). GPU/TPU: not measured yet; 'matmul'
# keeps seeds under vmap on batched GEMMs ('xla' becomes a grouped convolution with a slow backward there,
# jax-ml/jax#13800); a single-fit GPU run may try conv_impl='xla' (cuDNN).
AUTO_IMPL = {"cpu": "rows"}
DEFAULT_AUTO_IMPL = "matmul"


def resolve_impl(impl: str = "auto", backend: str | None = None) -> str:
  """The implementation ``impl`` names: ``'auto'`` becomes :data:`AUTO_IMPL`'s choice for ``backend``.

  Args:
    impl: one of :data:`CONV_IMPLS`.
    backend: a JAX backend name; default ``jax.default_backend()``.

  Returns:
    ``'matmul'``, ``'rows'`` or ``'xla'``.

  Example:
    >>> resolve_impl("auto", "cpu"), resolve_impl("xla", "cpu")
    ('rows', 'xla')
  """
  if impl not in CONV_IMPLS:
    raise ValueError(f"`conv_impl` must be one of {CONV_IMPLS}, got {impl!r}.")
  if impl != "auto":
    return impl
  return AUTO_IMPL.get(backend or jax.default_backend(), DEFAULT_AUTO_IMPL)


def check_precision(precision: str) -> str:
  """Returns ``precision`` if it is one of :data:`PRECISIONS`, else raises a one-line ``ValueError``."""
  if precision not in PRECISIONS:
    raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
  return precision


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


def _fold_patches(dp: jax.Array, in_shape: tuple[int, ...], kernel_size: int, stride: int,
                  accumulate=None) -> jax.Array:
  """Adjoint of :func:`extract_patches` (col2im): scatters patch cotangents back (summed in ``accumulate``)."""
  k, s = kernel_size, stride
  height, width, channels = in_shape
  h_out, w_out = dp.shape[0], dp.shape[1]
  if k == 1 and s == 1:
    return dp if accumulate is None else dp.astype(accumulate)
  zero = jnp.zeros((), dp.dtype)
  total = None
  for i in range(k):
    for j in range(k):
      idx = i * k + j
      block = dp[:, :, idx * channels:(idx + 1) * channels]
      hi_h = height - i - (s * (h_out - 1) + 1)
      hi_w = width - j - (s * (w_out - 1) + 1)
      placed = lax.pad(block, zero, ((i, hi_h, s - 1), (j, hi_w, s - 1), (0, 0, 0)))
      if accumulate is not None:
        placed = placed.astype(accumulate)
      total = placed if total is None else total + placed
  return total


def _dot(a: jax.Array, b: jax.Array, dims, arith: str) -> jax.Array:
  """``lax.dot_general`` in the arithmetic ``arith`` (a :data:`PRECISIONS` entry).

  ``'bfloat16'``: bf16 operands accumulated and returned in float32; ``'float32_highest'``:
  ``Precision.HIGHEST`` (full f32 on every backend); ``'float32'``: XLA's default.
  """
  if arith == "bfloat16":
    return lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)
  return lax.dot_general(a, b, dims, precision=_HIGHEST if arith == "float32_highest" else None)


def _matmul_last(a: jax.Array, b: jax.Array, arith: str = "float32") -> jax.Array:
  """``a[..., k] @ b[k, n]`` as one dot_general over the flattened leading axes."""
  return _dot(a, b, (((a.ndim - 1,), (0,)), ((), ())), arith)


def _operand(a: jax.Array, arith: str) -> jax.Array:
  return a.astype(jnp.bfloat16) if arith == "bfloat16" else a


def _add_bias(y, bias):
  if bias is None:
    return y
  return y + bias.reshape((1,) * (y.ndim - 1) + (-1,))


# --- 'matmul': im2col + one GEMM -------------------------------------------------------------------------------


def _forward(x, kernel, bias, stride, arith="float32"):
  patches = extract_patches(_operand(x, arith), kernel.shape[0], stride)
  y = _matmul_last(patches, _operand(kernel, arith).reshape(-1, kernel.shape[-1]), arith)
  return _add_bias(y, bias), patches


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _conv(x, kernel, bias, stride, arith):
  return _forward(x, kernel, bias, stride, arith)[0]


def _conv_fwd(x, kernel, bias, stride, arith):
  y, patches = _forward(x, kernel, bias, stride, arith)
  # The patches are kept for the weight gradient: measured faster than rebuilding them
  # in the backward pass, at a memory cost of k²·Ho·Wo·C_in floats (BUILD_NOTES.md §2.1).
  return y, (patches, kernel, x.shape, bias is not None)


def _conv_bwd(stride, arith, residuals, dy):
  patches, kernel, x_shape, has_bias = residuals
  k, _, c_in, c_out = kernel.shape
  dy_op = _operand(dy, arith)
  # dW[(i,j,c), o] = sum_{h,w} patches[h, w, (i,j,c)] * dy[h, w, o]  (Pᵀ·dy; the (dyᵀ·P)ᵀ
  # form was slower on XLA:CPU, BUILD_NOTES.md §2.1).
  d_kernel = _dot(patches, dy_op, (((0, 1), (0, 1)), ((), ())), arith)
  d_kernel = d_kernel.reshape(k, k, c_in, c_out)
  # dP[h, w, (i,j,c)] = sum_o dy[h, w, o] * W[(i,j,c), o]; then col2im.
  d_patches = _dot(dy_op, _operand(kernel, arith).reshape(-1, c_out), (((2,), (1,)), ((), ())), arith)
  if arith == "bfloat16":  # stored in bf16 between the GEMM and col2im, summed in f32
    dx = _fold_patches(d_patches.astype(jnp.bfloat16), x_shape, k, stride, accumulate=jnp.float32)
  else:
    dx = _fold_patches(d_patches, x_shape, k, stride)
  d_bias = jnp.sum(dy, axis=(0, 1)) if has_bias else None
  return dx, d_kernel, d_bias


_conv.defvjp(_conv_fwd, _conv_bwd)


# --- 'rows': k horizontal shifts + one GEMM against the (kC, k C_out) stacked kernel ----------------------------


def _row_patches(x: jax.Array, k: int) -> jax.Array:
  """``R[h, w, j*C + c] = x[h, w + j, c]``: ``(H, W - k + 1, k C)``."""
  w_out = x.shape[1] - k + 1
  cols = [lax.slice(x, (0, j, 0), (x.shape[0], j + w_out, x.shape[2])) for j in range(k)]
  return jnp.concatenate(cols, axis=-1)


def _stacked_kernel(kernel: jax.Array) -> jax.Array:
  """``S[(j, c), (i, o)] = kernel[i, j, c, o]``: ``(k C_in, k C_out)``."""
  k, _, c_in, c_out = kernel.shape
  return jnp.transpose(kernel, (1, 2, 0, 3)).reshape(k * c_in, k * c_out)


def _rows_forward(x, kernel, bias, arith):
  k, c_out = kernel.shape[0], kernel.shape[-1]
  rows = _row_patches(_operand(x, arith), k)
  z = _matmul_last(rows, _stacked_kernel(_operand(kernel, arith)), arith)
  z = z.reshape(z.shape[:2] + (k, c_out))
  h_out = x.shape[0] - k + 1
  y = sum(z[i:i + h_out, :, i, :] for i in range(k))
  return _add_bias(y, bias), rows


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv_rows(x, kernel, bias, arith):
  return _rows_forward(x, kernel, bias, arith)[0]


def _conv_rows_fwd(x, kernel, bias, arith):
  y, rows = _rows_forward(x, kernel, bias, arith)
  return y, (rows, kernel, x.shape, bias is not None)


def _conv_rows_bwd(arith, residuals, dy):
  rows, kernel, x_shape, has_bias = residuals
  k, _, c_in, c_out = kernel.shape
  dy_op = _operand(dy, arith)
  zero = jnp.zeros((), dy_op.dtype)
  # dZ[h, w, i, o] = dy[h - i, w, o] (0 outside): the adjoint of the row-shifted sum.
  dz = jnp.stack([lax.pad(dy_op, zero, ((i, k - 1 - i, 0), (0, 0, 0), (0, 0, 0))) for i in range(k)], axis=2)
  dz = dz.reshape(dz.shape[:2] + (k * c_out,))
  d_stack = _dot(rows, dz, (((0, 1), (0, 1)), ((), ())), arith)  # (kC_in, kC_out)
  d_kernel = jnp.transpose(d_stack.reshape(k, c_in, k, c_out), (2, 0, 1, 3))
  d_rows = _dot(dz, _stacked_kernel(_operand(kernel, arith)), (((2,), (1,)), ((), ())), arith)
  if arith == "bfloat16":
    d_rows = d_rows.astype(jnp.bfloat16)
  zero = jnp.zeros((), d_rows.dtype)
  dx = None
  for j in range(k):
    placed = lax.pad(d_rows[:, :, j * c_in:(j + 1) * c_in], zero, ((0, 0, 0), (j, k - 1 - j, 0), (0, 0, 0)))
    placed = placed.astype(jnp.float32) if arith == "bfloat16" else placed
    dx = placed if dx is None else dx + placed
  assert dx.shape == tuple(x_shape)
  d_bias = jnp.sum(dy, axis=(0, 1)) if has_bias else None
  return dx, d_kernel, d_bias


_conv_rows.defvjp(_conv_rows_fwd, _conv_rows_bwd)


# --- 'xla': lax.conv_general_dilated, differentiated by JAX -----------------------------------------------------


def _conv_xla(x, kernel, bias, stride, arith):
  y = lax.conv_general_dilated(_operand(x, arith)[None], _operand(kernel, arith), (stride, stride), "VALID",
                               dimension_numbers=("NHWC", "HWIO", "NHWC"),
                               precision=_HIGHEST if arith == "float32_highest" else None,
                               preferred_element_type=jnp.float32 if arith == "bfloat16" else None)[0]
  return _add_bias(y, bias)


def conv2d(x: jax.Array, kernel: jax.Array, *, bias: jax.Array | None = None, stride: int = 1,
           precision: str = "float32", impl: str = "matmul") -> jax.Array:
  """2-D cross-correlation of one HWC image with ``VALID`` padding, as matmuls.

  Values and gradients equal ``lax.conv_general_dilated(x[None], kernel, (s, s),
  'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))[0] + bias`` (to float32
  rounding; to bf16 operand rounding with ``precision='bfloat16'``, see the module
  docstring); the VJP is hand-written as matrix products (see module docstring),
  which keeps it on XLA's fast GEMM path inside ``lax.scan`` and under ``vmap``.

  Args:
    x: ``(H, W, C_in)`` float array (already padded).
    kernel: ``(k, k, C_in, C_out)`` float array (HWIO).
    bias: optional ``(C_out,)`` array.
    stride: spatial stride ``s`` (1 or more).
    precision: ``'float32'`` (XLA's default matmul precision: exact f32 on CPU, TF32 operands on NVIDIA
      Ampere/Hopper GPUs), ``'float32_highest'`` (full f32 on every backend) or ``'bfloat16'`` (bf16
      operands, f32 accumulation and output).
    impl: ``'matmul'`` (im2col), ``'rows'`` (row-im2col), ``'xla'`` (``lax.conv_general_dilated``)
      or ``'auto'`` (:func:`resolve_impl`).

  Returns:
    ``(Ho, Wo, C_out)`` float32 with ``Ho = (H - k) // s + 1`` (same for ``Wo``).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> y = conv2d(jnp.ones((8, 8, 3)), jnp.ones((3, 3, 3, 4)), stride=2)
    >>> y.shape
    (3, 3, 4)
    >>> float(conv2d(jnp.ones((3, 3, 1)), jnp.ones((3, 3, 1, 1)), precision="bfloat16", impl="rows")[0, 0, 0])
    9.0
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
  arith = check_precision(precision)
  impl = resolve_impl(impl)
  if impl == "xla":
    return _conv_xla(x, kernel, bias, stride, arith)
  if impl == "rows" and stride == 1 and k > 1:
    return _conv_rows(x, kernel, bias, arith)
  return _conv(x, kernel, bias, stride, arith)
