r"""Inpainting (text, regions, large holes) with Deep Image Prior.

``min_θ ||(f_θ(z) − x0) ⊙ m||²`` with ``m`` the mask (1 = known pixel): the network
fills the holes from the image's own structure.

    python -m experiments.inpaint                                       # skimage 'astronaut' under a text mask
    python -m experiments.inpaint --image=photo.png --mask=holes.png --preset=paper_text
    python -m experiments.inpaint --clean=vase.png --mask=vase_mask.png --preset=paper_region --baselines

``--mask``: white = known, black = hole (any binary PNG of the image's size). With
only ``--clean`` and no mask, the preset's synthetic mask is drawn (``text``: lines
of text; ``box``: a centred rectangle of 1/9 of the image).

Presets: ``dipjax.presets.PRESETS['inpaint']``. Outputs: ``experiments.common.OUTPUT_FILES``.
"""

from __future__ import annotations

from typing import Optional

from absl import app

import jax
import numpy as np

from dipjax import baselines, image_io
from experiments import common
from experiments.common import Problem

TASK = "inpaint"
BUNDLED = "astronaut"


def box_mask(shape: tuple[int, int]) -> np.ndarray:
  """``(H, W, 1)`` mask with a centred hole of a third of each side (1/9 of the area)."""
  h, w = shape
  mask = np.ones((h, w, 1), np.float32)
  mask[h // 3:h - h // 3, w // 3:w - w // 3] = 0.0
  return mask


def masked_problem(inputs: common.Inputs, *, synthetic_mask, label: str, what: str) -> Problem:
  """The masked-loss problem shared by inpainting and restoration.

  ``synthetic_mask(shape) -> (H, W, 1|C)`` is used when no ``--mask`` is given; a real
  corrupted ``--image`` needs ``--mask``.
  """
  full = inputs.image if inputs.image is not None else inputs.clean
  mask: Optional[np.ndarray] = None
  if inputs.mask_path:
    mask = image_io.load_mask(inputs.mask_path, full.shape)
    mask = common.centre_crop(mask, inputs.crop)
  elif inputs.image is not None:
    raise ValueError(f"{what} of a real --image needs --mask (white = known pixel, black = hole).")
  clean = None if inputs.clean is None else common.centre_crop(inputs.clean, inputs.crop)
  image = clean if inputs.image is None else common.centre_crop(inputs.image, inputs.crop)
  common.check_min_size("--image" if inputs.image is not None else "--clean image", image)
  if clean is not None and inputs.image is not None:
    common.check_same_size("--image", image, "--clean", clean)
    clean = common.match_channels("--clean", clean, image.shape[-1])
  source = {}
  if mask is None:
    mask = np.asarray(synthetic_mask(image.shape), np.float32)
    source["synthetic_mask"] = True
  if mask.shape[-1] not in (1, image.shape[-1]):
    mask = mask[..., :1]
  known = float(np.mean(mask))
  if known == 0.0:
    raise ValueError("the mask has no known pixel (it is all black); white marks the pixels to keep.")
  source["known_fraction"] = known
  observed = image * mask
  return Problem(target=observed.astype(np.float32), size=image.shape[:2], operator=lambda x, m: x * m,
                 input_view=observed, input_image=observed, input_label=f"{label} ({known:.0%} known)",
                 clean=clean, mask=mask, info=inputs.info, source=source,
                 baselines={"biharmonic": lambda: baselines.biharmonic(observed, mask)})


def make_problem(preset, inputs: common.Inputs, *, key: jax.Array) -> Problem:
  """Inpainting: ``A(x) = x ⊙ m``; without ``--mask`` a ``text`` or ``box`` mask (``preset.mask_kind``)."""
  del key

  def synthetic(shape):
    if preset.mask_kind == "text":
      return image_io.text_mask(shape[:2])
    return box_mask(shape[:2])

  return masked_problem(inputs, synthetic_mask=synthetic, label="masked", what="inpainting")


main = common.make_main(TASK, make_problem, BUNDLED)

if __name__ == "__main__":
  app.run(main)
