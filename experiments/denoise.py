r"""Blind Gaussian denoising with Deep Image Prior (the README's main job).

``min_θ ||f_θ(z) − x0||²`` with ``x0`` the noisy image; the restored image is read off
before the network fits the noise (EMA of the outputs, as in the paper's 30.43 dB).

With no arguments it denoises ``skimage.data.astronaut`` with synthetic σ = 25 noise:
on a CPU a 128x128 crop with the ``cpu`` preset (about 2.5 minutes on 2 cores), on a
GPU/TPU the full 512x512 image with the ``paper`` preset::

    python -m experiments.denoise
    python -m experiments.denoise --image=noisy_photo.png                 # real noisy photo, no ground truth
    python -m experiments.denoise --clean=photo.png --sigma=50 --preset=paper_sigma50 --seeds=4 --baselines

Presets: ``dipjax.presets.PRESETS['denoise']``. Outputs: ``experiments.common.OUTPUT_FILES``.
"""

from __future__ import annotations

import functools

from absl import app

import jax
import numpy as np

from dipjax import baselines, degradations
from experiments import common
from experiments.common import Problem

TASK = "denoise"
BUNDLED = "astronaut"


def make_problem(preset, inputs: common.Inputs, *, key: jax.Array) -> Problem:
  """The denoising problem: ``A = I``; noise of ``preset.sigma`` (0–255 scale) is added when only a clean image is given."""
  if inputs.image is None:
    clean = common.centre_crop(inputs.clean, inputs.crop)
    common.check_min_size("--clean image", clean)
    noisy = np.asarray(degradations.add_gaussian_noise(jax.random.fold_in(key, 0), clean, sigma=preset.sigma / 255.0))
    source = {"synthetic": f"Gaussian noise σ = {preset.sigma} / 255, clipped"}
    sigma = preset.sigma / 255.0
  else:
    noisy, clean = common.observed_and_clean(inputs)
    sigma = baselines.estimate_noise_sigma(noisy)
    source = {"estimated_sigma_255": sigma * 255.0}
  return Problem(target=noisy, size=noisy.shape[:2], operator=lambda x, mask: x, input_view=noisy, input_image=noisy,
                 input_label="noisy", clean=clean, info=inputs.info, source=source, noise_sigma=sigma,
                 baselines={k: functools.partial(fn, noisy) for k, fn in baselines.DENOISERS.items()})


main = common.make_main(TASK, make_problem, BUNDLED)

if __name__ == "__main__":
  app.run(main)
