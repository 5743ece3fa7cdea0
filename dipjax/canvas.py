r"""Images of any size: the network runs on a padded canvas, the result is cropped back.

A SkipNet keeps its input size only for sizes it can halve ``L`` times: every side
at least ``2**L`` and, for nets with a level without skip connection (or with
pooling), a multiple of ``2**L`` (dip_reference.md §1.6). The reference centre-crops
the image to a multiple of 32 or 64 and silently loses its border. dipjax instead
fits the network on a **canvas** ``(H_c, W_c) >= (H, W)`` that the network accepts,
with the image at offset ``(top, left)``, and composes the task's operator with the
crop::

    A_canvas(x) = A(x[top:top + H, left:left + W])

so the padding is unobserved (like an inpainting hole) and carries no fake data;
the restored image is ``crop(f_θ(z))``, at the image's original size. An image used
as the network *input* (the flash image) is reflection-padded to the canvas.

Example:
  >>> import dipjax
  >>> c = canvas_for(dipjax.skip_deblock(), (261, 400))
  >>> c.height, c.width, c.top, c.left
  (288, 416, 13, 8)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np


class Canvas(NamedTuple):
  """Where an ``height_in x width_in`` image sits on the network's canvas."""

  height: int  # canvas H_c
  width: int  # canvas W_c
  top: int  # row of the image's first row on the canvas
  left: int  # column of the image's first column
  image_height: int  # H
  image_width: int  # W

  @property
  def padded(self) -> bool:
    return (self.height, self.width) != (self.image_height, self.image_width)

  def crop(self, x: jax.Array) -> jax.Array:
    """``(H_c, W_c, C) -> (H, W, C)``: the image's window of the canvas (jit-friendly, static slice)."""
    return x[self.top:self.top + self.image_height, self.left:self.left + self.image_width]

  def pad(self, image: np.ndarray) -> np.ndarray:
    """Reflection-pads an ``(H, W, C)`` host image to the canvas (repeated reflection for wide pads)."""
    image = np.asarray(image)
    if image.shape[:2] != (self.image_height, self.image_width):
      raise ValueError(f"`image` is {image.shape[1]}x{image.shape[0]} but the canvas holds a "
                       f"{self.image_width}x{self.image_height} image.")
    pads = ((self.top, self.height - self.image_height - self.top),
            (self.left, self.width - self.image_width - self.left), (0, 0))
    return np.pad(image, pads, mode="reflect" if min(image.shape[:2]) > 1 else "edge")


def canvas_for(model, image_size: tuple[int, int]) -> Canvas:
  """The smallest canvas ``model`` accepts that holds an image of ``image_size = (H, W)``, image centred.

  Uses the model's ``min_size`` and ``size_multiple`` (any module without them: no padding).
  """
  h, w = (int(s) for s in image_size)
  if h < 1 or w < 1:
    raise ValueError(f"`image_size` must be positive, got {image_size!r}.")
  min_size = int(getattr(model, "min_size", 1))
  multiple = int(getattr(model, "size_multiple", 1))
  grow = lambda n: max(-(-n // multiple) * multiple, -(-min_size // multiple) * multiple)
  hc, wc = grow(h), grow(w)
  return Canvas(height=hc, width=wc, top=(hc - h) // 2, left=(wc - w) // 2, image_height=h, image_width=w)
