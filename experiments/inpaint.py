r"""Inpainting (text, regions, large holes) with Deep Image Prior.

``min_θ ||(f_θ(z) − x0) ⊙ m||²`` with ``m`` the mask (1 = known pixel): the network
fills the holes from the image's own structure.

    python -m experiments.inpaint                                       # skimage 'astronaut' under a text mask
    python -m experiments.inpaint --image=photo.png --mask=holes.png --preset=paper_text
    python -m experiments.inpaint --clean=vase.png --mask=vase_mask.png --preset=paper_region --baselines

``--mask``: white = known, black = hole (any binary PNG of the image's size). With
only ``--clean`` and no mask, the preset's synthetic mask is drawn (``text``: lines
of text; ``box``: a centred rectangle of 1/9 of the image).

Presets: ``dipjax.presets.PRESETS['inpaint']``. Outputs: ``dipjax.report.OUTPUT_FILES``; from Python: ``dipjax.tasks.make_problem`` + ``dipjax.restore``.
"""

from __future__ import annotations

from absl import flags

from experiments import cli, flag_groups, task_main

TASK = "inpaint"
BUNDLED = "astronaut"

flag_groups.define_images(mask=True)
flag_groups.define_fit()
flag_groups.define_run()
FLAGS = flags.FLAGS

main = task_main.make_main(TASK, bundled=BUNDLED, corruption=lambda: dict())

if __name__ == "__main__":
  cli.run(main)
