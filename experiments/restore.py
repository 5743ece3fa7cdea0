r"""Restoration of randomly missing pixels (the paper's Table 1) with Deep Image Prior.

``min_θ ||(f_θ(z) − x0) ⊙ m||²`` with ``m`` a random mask keeping a fraction of the
pixels (50% for barbara, 2% for kate).

    python -m experiments.restore                                    # skimage 'camera' (gray), 50% missing
    python -m experiments.restore --image=masked.png --mask=mask.png --preset=paper_50
    python -m experiments.restore --clean=kate.png --preset=paper_2 --baselines

Without ``--mask`` a Bernoulli mask keeps ``keep_fraction`` of the pixels, drawn
per channel (``paper_50``, as the reference's ``get_bernoulli_mask``) or per pixel
(``paper_2``), from ``--seed``.

Presets: ``dipjax.presets.PRESETS['restore']``. Outputs: ``experiments.common.OUTPUT_FILES``.
"""

from __future__ import annotations

from absl import app

import jax
import numpy as np

from dipjax import degradations
from experiments import common
from experiments.common import Problem
from experiments.inpaint import masked_problem

TASK = "restore"
BUNDLED = "camera"


def make_problem(preset, inputs: common.Inputs, *, key: jax.Array) -> Problem:
  """Missing pixels: ``A(x) = x ⊙ m``; without ``--mask`` a Bernoulli mask of ``preset.keep_fraction``."""
  if not 0.0 < preset.keep_fraction <= 1.0:
    raise ValueError(f"--keep_fraction must be in (0, 1], got {preset.keep_fraction}.")

  def synthetic(shape):
    return np.asarray(degradations.bernoulli_mask(jax.random.fold_in(key, 0), tuple(shape),
                                                  keep_fraction=preset.keep_fraction,
                                                  per_channel=bool(preset.per_channel_mask)))

  return masked_problem(inputs, synthetic_mask=synthetic, label="missing pixels", what="restoration")


main = common.make_main(TASK, make_problem, BUNDLED)

if __name__ == "__main__":
  app.run(main)
