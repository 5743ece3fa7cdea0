r"""Flash / no-flash reconstruction with Deep Image Prior (the paper's Fig. 10).

``min_θ ||f_θ(z) − x0||²`` with ``x0`` the (noisy) no-flash image and ``z`` the
**flash image** itself: the network's output takes the no-flash colours with the
flash image's detail and less noise.

    python -m experiments.flash_no_flash                       # a synthetic pair made from skimage 'coffee'
    python -m experiments.flash_no_flash --image=noflash.jpg --flash=flash.jpg --preset=paper

The synthetic pair (no flash pair ships with a dependency): ground truth = the
bundled image; no-flash = ground truth plus Gaussian noise of ``preset.sigma``;
flash = the ground truth relit (brighter and bluer, harsher toward the centre),
noise-free. It only demonstrates the mechanics; use a real pair for a real result.

Presets: ``dipjax.presets.PRESETS['flash_no_flash']``. Outputs: ``experiments.common.OUTPUT_FILES``.
"""

from __future__ import annotations

import functools

from absl import app

import jax
import numpy as np

from dipjax import baselines, degradations
from experiments import common
from experiments.common import Problem

TASK = "flash_no_flash"
BUNDLED = "coffee"


def synthetic_flash(clean: np.ndarray) -> np.ndarray:
  """A flash-lit version of ``clean``: brighter (gamma 0.6), bluer, with a centred light falloff."""
  h, w = clean.shape[:2]
  yy, xx = np.mgrid[0:h, 0:w]
  r2 = ((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2
  light = 1.25 - 0.9 * r2
  tint = np.array([0.85, 0.95, 1.15], np.float32)[:clean.shape[-1]] if clean.shape[-1] == 3 else 1.0
  return np.clip(clean ** 0.6 * tint * light[..., None], 0, 1).astype(np.float32)


def make_problem(preset, inputs: common.Inputs, *, key: jax.Array) -> Problem:
  """Flash/no-flash: ``A = I``, target the no-flash image, ``z`` the flash image (reflection-padded to the canvas)."""
  clean = None if inputs.clean is None else common.centre_crop(inputs.clean, inputs.crop)
  if inputs.image is None:
    if inputs.flash is not None:
      raise ValueError("--flash needs its no-flash partner as --image.")
    common.check_min_size("--clean image", clean)
    noflash = np.asarray(degradations.add_gaussian_noise(jax.random.fold_in(key, 0), clean,
                                                         sigma=preset.sigma / 255.0))
    flash = synthetic_flash(clean)
    source = {"synthetic": f"no-flash = clean + N(0, {preset.sigma}/255); flash = relit clean"}
  else:
    if inputs.flash is None:
      raise ValueError("flash_no_flash needs the flash image as --flash (the network input) besides --image.")
    noflash, clean = common.observed_and_clean(inputs)
    flash = common.centre_crop(inputs.flash, inputs.crop)
    common.check_same_size("--image (no flash)", noflash, "--flash", flash)
    source = {}
  return Problem(target=noflash, size=noflash.shape[:2], operator=lambda x, mask: x, input_view=noflash,
                 input_image=noflash, input_label="no flash", clean=clean, z_image=flash, info=inputs.info,
                 source=source, baselines={"nlm": functools.partial(baselines.non_local_means, noflash)})


main = common.make_main(TASK, make_problem, BUNDLED)

if __name__ == "__main__":
  app.run(main)
