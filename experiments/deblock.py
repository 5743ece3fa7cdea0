r"""Blind JPEG artefact removal (the paper's snail example) with Deep Image Prior.

``min_θ ||f_θ(z) − x0||²`` with ``x0`` the JPEG; the deblocking net (few channels,
skips only at the two deepest levels) and a 3-channel ``z``, read off early.

    python -m experiments.deblock                                  # skimage 'coffee', JPEG quality 10
    python -m experiments.deblock --image=photo.jpg --preset=paper  # a real JPEG, no ground truth
    python -m experiments.deblock --clean=photo.png --jpeg_quality=20 --baselines

Presets: ``dipjax.presets.PRESETS['deblock']``. Outputs: ``experiments.common.OUTPUT_FILES``.
"""

from __future__ import annotations

import functools

from absl import app

import jax

from dipjax import baselines, image_io
from experiments import common
from experiments.common import Problem

TASK = "deblock"
BUNDLED = "coffee"


def make_problem(preset, inputs: common.Inputs, *, key: jax.Array) -> Problem:
  """The deblocking problem: ``A = I``; the clean image is JPEG-compressed at ``preset.jpeg_quality`` if needed."""
  del key  # JPEG compression is deterministic
  if inputs.image is None:
    clean = common.centre_crop(inputs.clean, inputs.crop)
    common.check_min_size("--clean image", clean)
    jpeg = image_io.jpeg_compress(clean, preset.jpeg_quality)
    source = {"synthetic": f"JPEG quality {preset.jpeg_quality} (Pillow)"}
  else:
    jpeg, clean = common.observed_and_clean(inputs)
    source = {}
  return Problem(target=jpeg, size=jpeg.shape[:2], operator=lambda x, mask: x, input_view=jpeg, input_image=jpeg,
                 input_label="JPEG", clean=clean, info=inputs.info, source=source,
                 baselines={k: functools.partial(fn, jpeg) for k, fn in baselines.DENOISERS.items()})


main = common.make_main(TASK, make_problem, BUNDLED)

if __name__ == "__main__":
  app.run(main)
