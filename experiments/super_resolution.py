r"""Single-image super-resolution with Deep Image Prior.

``min_θ ||d(f_θ(z)) − x0||²`` with ``x0`` the low-resolution image and ``d`` the fixed
Lanczos-2 downsampler of the reference (``dipjax.downsample``); ``f_θ(z)`` is the
high-resolution image. Reports PSNR on RGB and with the paper's Y-channel protocol.

    python -m experiments.super_resolution                           # skimage 'chelsea', x4
    python -m experiments.super_resolution --image=small.png --factor=4 --preset=paper_x4   # real LR image
    python -m experiments.super_resolution --clean=hr.png --preset=paper_x8 --baselines

With ``--clean`` only, the low-resolution input is made as the reference does (8-bit
PIL Lanczos of the high-resolution image, cut to a multiple of the factor).

Presets: ``dipjax.presets.PRESETS['super_resolution']``. Outputs: ``experiments.common.OUTPUT_FILES``.
"""

from __future__ import annotations

from absl import app

import jax
import numpy as np

import dipjax
from dipjax import baselines, downsampler, image_io
from experiments import common
from experiments.common import Problem

TASK = "super_resolution"
BUNDLED = "chelsea"
FACTORS = (2, 4, 6, 8)  # even: the Lanczos kernels of the reference are centred only for even factors


def check_factor(factor, kernel: str) -> None:
  if factor not in FACTORS:
    raise ValueError(f"unsupported super-resolution factor {factor!r}; use one of {FACTORS} (the paper uses 4 and 8).")
  if kernel not in downsampler.KERNEL_TYPES:
    raise ValueError(f"unknown --kernel {kernel!r}; use one of {downsampler.KERNEL_TYPES}.")


def make_problem(preset, inputs: common.Inputs, *, key: jax.Array) -> Problem:
  """The SR problem: ``A = lanczos_downsample(·, f)``; the LR input is made with PIL Lanczos if only HR is given."""
  del key
  f, kernel = preset.factor, preset.kernel
  check_factor(f, kernel)
  clean = None if inputs.clean is None else common.centre_crop(inputs.clean, inputs.crop, multiple=f)
  if inputs.image is None:
    common.check_min_size("--clean image", clean)
    low = image_io.low_resolution(clean, f)
    source = {"synthetic": f"PIL Lanczos x{f} downscale (8-bit), high-res cut to a multiple of {f}"}
  else:
    low = common.centre_crop(inputs.image, inputs.crop // f if inputs.crop else 0)
    h, w = low.shape[:2]
    if min(h, w) * f < common.MIN_SIZE:
      raise ValueError(f"--image is {w}x{h}; at x{f} the output would be {w * f}x{h * f}, dipjax needs at least "
                       f"{common.MIN_SIZE}x{common.MIN_SIZE} (use a larger factor or image).")
    if clean is not None:
      if clean.shape[:2] != (h * f, w * f):
        raise ValueError(f"--clean is {clean.shape[1]}x{clean.shape[0]} but x{f} of the {w}x{h} input is "
                         f"{w * f}x{h * f}; pass the matching high-resolution image.")
      clean = common.match_channels("--clean", clean, low.shape[-1])
    source = {}
  h, w = low.shape[:2]
  nearest = np.repeat(np.repeat(low, f, axis=0), f, axis=1)
  return Problem(target=low, size=(h * f, w * f),
                 operator=lambda x, mask: dipjax.downsample(x, f, kernel_type=kernel),
                 input_view=nearest, input_image=low, input_label=f"low-res x{f} (nearest)", clean=clean,
                 info=inputs.info, sr_factor=f, source=source,
                 baselines={"bicubic": lambda: baselines.bicubic_upscale(low, f)})


main = common.make_main(TASK, make_problem, BUNDLED)

if __name__ == "__main__":
  app.run(main)
