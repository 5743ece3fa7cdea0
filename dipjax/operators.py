r"""Forward operators as values: ``A`` maps the restored image to the observation's space.

DIP fits ``min_θ E(A(f_θ(z)), x0)``; ``A`` says how the observation ``x0`` was made
from the image. Each operator here is a **pytree** (a ``flax.struct`` dataclass): its
data — a mask, a crop window's position — are leaves or static fields, so an
operator is an argument of the compiled fit like the image itself, and per-image
operators batch with ``vmap`` (:func:`stack`) exactly as images do.

Every operator has

* ``op(x)``: the forward map on one ``(H, W, C)`` image;
* ``op.observation_shape(image_shape)``: the shape of ``A(x)`` for an image of ``image_shape``;
* ``op.image_shape(observation_shape)``: the restored image's shape for an observation;
* ``op.window(top, left, height, width)``: the same operator restricted to a window of a
  pixel-aligned image (used for tiling; a ValueError where ``A`` is not pixel-aligned).

Constructors: :class:`Identity` (denoising, JPEG, flash), :class:`Mask` (inpainting,
missing pixels; per pixel ``(H, W, 1)`` or per channel ``(H, W, C)``),
:class:`Downsample` (Lanczos-2/3, box or Gaussian by an integer factor:
super-resolution), :class:`Blur` (a known kernel, circular or valid boundary:
deblurring), :class:`Crop` (a window of a larger canvas), :func:`compose`, and
:class:`Function` — **any differentiable** ``A(x)`` of your own, with optional array
data::

    blur = dipjax.operators.Function(lambda x, k: my_blur(x, k), data=kernel)

Example:
  >>> import jax.numpy as jnp
  >>> from dipjax import operators
  >>> A = operators.compose(operators.Downsample(4), operators.Crop(0, 0, 64, 64))
  >>> A(jnp.zeros((70, 70, 3))).shape, A.observation_shape((70, 70, 3))
  ((16, 16, 3), (16, 16, 3))
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dipjax import blur as blur_lib
from dipjax import downsampler


def _same_shape(shape) -> tuple:
  return tuple(int(s) for s in shape)


@struct.dataclass
class Identity:
  """``A(x) = x``: denoising, JPEG deblocking, flash/no-flash."""

  def __call__(self, x: jax.Array) -> jax.Array:
    return x

  def observation_shape(self, image_shape) -> tuple:
    return _same_shape(image_shape)

  def image_shape(self, observation_shape) -> tuple:
    return _same_shape(observation_shape)

  def window(self, top: int, left: int, height: int, width: int) -> "Identity":
    del top, left, height, width
    return self


@struct.dataclass
class Mask:
  """``A(x) = x ⊙ m`` with ``m`` ``(H, W, 1)`` (per pixel) or ``(H, W, C)`` (per channel), 1 = known pixel.

  The loss ``mean((A(x) − x0)²)`` then ignores the holes (the reference's inpainting
  loss, averaged over all pixels).
  """

  mask: jax.Array  # (H, W, 1 | C) float32 in {0, 1}

  def __call__(self, x: jax.Array) -> jax.Array:
    return x * self.mask

  def observation_shape(self, image_shape) -> tuple:
    return _same_shape(image_shape)

  def image_shape(self, observation_shape) -> tuple:
    return _same_shape(observation_shape)

  def window(self, top: int, left: int, height: int, width: int) -> "Mask":
    return Mask(mask=self.mask[top:top + height, left:left + width])


@struct.dataclass
class Downsample:
  """``A(x) = d(x)``: separable downsampling by ``factor`` (:func:`dipjax.downsample`).

  ``kernel``: ``'lanczos2'`` (the reference's SR loss), ``'lanczos3'``, ``'box'`` or
  ``'gauss'`` (with ``sigma``). An ``(H, W, C)`` image becomes ``(H // f, W // f, C)``.
  """

  factor: int = struct.field(pytree_node=False)
  kernel: str = struct.field(pytree_node=False, default="lanczos2")
  sigma: Optional[float] = struct.field(pytree_node=False, default=None)

  def __post_init__(self):
    if not isinstance(self.factor, (int, np.integer)) or self.factor < 1:
      raise ValueError(f"`factor` must be a positive integer, got {self.factor!r}.")
    if self.kernel not in downsampler.KERNEL_TYPES:
      raise ValueError(f"`kernel` must be one of {downsampler.KERNEL_TYPES}, got {self.kernel!r}.")

  def __call__(self, x: jax.Array) -> jax.Array:
    return downsampler.downsample(x, self.factor, kernel_type=self.kernel, sigma=self.sigma)

  def observation_shape(self, image_shape) -> tuple:
    h, w, c = image_shape
    return (int(h) // self.factor, int(w) // self.factor, int(c))

  def image_shape(self, observation_shape) -> tuple:
    h, w, c = observation_shape
    return (int(h) * self.factor, int(w) * self.factor, int(c))

  def window(self, top: int, left: int, height: int, width: int):
    raise ValueError("a Downsample operator is not pixel-aligned, so the image cannot be tiled; crop it instead.")


@struct.dataclass
class Crop:
  """``A(x) = x[top:top + height, left:left + width]``: the image's window of a larger canvas."""

  top: int = struct.field(pytree_node=False)
  left: int = struct.field(pytree_node=False)
  height: int = struct.field(pytree_node=False)
  width: int = struct.field(pytree_node=False)

  def __call__(self, x: jax.Array) -> jax.Array:
    return x[self.top:self.top + self.height, self.left:self.left + self.width]

  def observation_shape(self, image_shape) -> tuple:
    return (self.height, self.width) + tuple(int(s) for s in image_shape[2:])

  def image_shape(self, observation_shape) -> tuple:
    raise ValueError("a Crop does not determine the canvas it was cut from; pass the canvas size.")

  def window(self, top: int, left: int, height: int, width: int):
    raise ValueError("a Crop operator cannot be tiled.")


@struct.dataclass
class Composed:
  """``A(x) = outer(inner(x))``; build it with :func:`compose`."""

  outer: Any
  inner: Any

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.outer(self.inner(x))

  def observation_shape(self, image_shape) -> tuple:
    return self.outer.observation_shape(self.inner.observation_shape(image_shape))

  def image_shape(self, observation_shape) -> tuple:
    return self.inner.image_shape(self.outer.image_shape(observation_shape))

  def window(self, top: int, left: int, height: int, width: int) -> "Composed":
    return Composed(outer=self.outer.window(top, left, height, width),
                    inner=self.inner.window(top, left, height, width))


@struct.dataclass
class Function:
  """Any differentiable ``A``: ``fn(x)``, or ``fn(x, data)`` when ``data`` (a pytree of arrays) is given.

  ``data`` is a leaf of the operator, so per-image data batch with :func:`stack`.
  The image and observation shapes are found by tracing ``fn`` (``jax.eval_shape``);
  ``image_shape`` assumes ``A`` keeps the size (pass the image size where it does not).
  """

  fn: Callable = struct.field(pytree_node=False)
  data: Any = None

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fn(x) if self.data is None else self.fn(x, self.data)

  def observation_shape(self, image_shape) -> tuple:
    return tuple(jax.eval_shape(self, jax.ShapeDtypeStruct(tuple(image_shape), jnp.float32)).shape)

  def image_shape(self, observation_shape) -> tuple:
    return _same_shape(observation_shape)

  def window(self, top: int, left: int, height: int, width: int):
    raise ValueError("a Function operator cannot be tiled (its window is unknown); fit the whole image.")


@struct.dataclass
class Blur:
  """``A(x) = k ∗ x``: each channel convolved with a known kernel ``k`` (:func:`dipjax.blur.blur`): deblurring.

  ``boundary='circular'``: the image is taken as periodic (FFTs), the observation has
  the image's size; ``'valid'``: no assumption outside the image, the observation is
  smaller by ``k − 1`` (``(H − kh + 1, W − kw + 1, C)``). The kernel is a leaf, so
  per-image kernels batch with :func:`stack`.
  """

  kernel: jax.Array  # (kh, kw) float32, non-negative, sum 1
  boundary: str = struct.field(pytree_node=False, default="circular")

  def __post_init__(self):
    if self.boundary not in blur_lib.BOUNDARIES:
      raise ValueError(f"`boundary` must be one of {blur_lib.BOUNDARIES}, got {self.boundary!r}.")
    if len(np.shape(self.kernel)) < 2:  # (kh, kw); stacked per-image kernels have leading axes
      raise ValueError(f"`kernel` must be 2-D (kh, kw), got shape {np.shape(self.kernel)}.")

  def __call__(self, x: jax.Array) -> jax.Array:
    return blur_lib.blur(x, self.kernel, boundary=self.boundary)

  def _lost(self) -> tuple:
    kh, kw = np.shape(self.kernel)[-2:]
    return (kh - 1, kw - 1) if self.boundary == "valid" else (0, 0)

  def observation_shape(self, image_shape) -> tuple:
    h, w, c = image_shape
    dh, dw = self._lost()
    return (int(h) - dh, int(w) - dw, int(c))

  def image_shape(self, observation_shape) -> tuple:
    h, w, c = observation_shape
    dh, dw = self._lost()
    return (int(h) + dh, int(w) + dw, int(c))

  def window(self, top: int, left: int, height: int, width: int):
    raise ValueError("a Blur operator mixes neighbouring pixels, so the image cannot be tiled; crop it instead.")


OPERATOR_TYPES = (Identity, Mask, Downsample, Crop, Composed, Function, Blur)


def compose(*operators) -> Any:
  """``compose(A, B, C)(x) = A(B(C(x)))`` (the rightmost is applied first); plain callables are wrapped."""
  if not operators:
    return Identity()
  ops = [as_operator(op) for op in operators]
  out = ops[-1]
  for op in reversed(ops[:-1]):
    out = Composed(outer=op, inner=out)
  return out


def as_operator(operator) -> Any:
  """``None`` -> :class:`Identity`; an operator as is; any other callable -> :class:`Function`."""
  if operator is None:
    return Identity()
  if isinstance(operator, OPERATOR_TYPES):
    return operator
  if callable(operator):
    return Function(fn=operator)
  raise ValueError(f"`operator` must be a dipjax.operators operator or a function of the image, got {operator!r}.")


def stack(operators: Sequence) -> Any:
  """Stacks operators of one structure (e.g. one :class:`Mask` per image) along a new leading axis, for ``vmap``.

  Example:
    >>> import jax.numpy as jnp
    >>> from dipjax import operators
    >>> ops = operators.stack([operators.Mask(jnp.ones((4, 4, 1))), operators.Mask(jnp.zeros((4, 4, 1)))])
    >>> ops.mask.shape
    (2, 4, 4, 1)
  """
  ops = [as_operator(op) for op in operators]
  if not ops:
    raise ValueError("`operators` is empty.")
  structures = {jax.tree_util.tree_structure(op) for op in ops}
  if len(structures) > 1:
    raise ValueError(f"`operators` must share one structure to be stacked, got {len(structures)} different ones.")
  return jax.tree_util.tree_map(lambda *leaves: jnp.stack([jnp.asarray(a) for a in leaves]), *ops)


def index(operators, i) -> Any:
  """Entry ``i`` (or the entries of an index array) of stacked operators."""
  return jax.tree_util.tree_map(lambda a: a[i], operators)
