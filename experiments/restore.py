r"""Restoration of randomly missing pixels (the paper's Table 1) with Deep Image Prior.

``min_θ ||(f_θ(z) − x0) ⊙ m||²`` with ``m`` a random mask keeping a fraction of the
pixels (50% for barbara, 2% for kate).

    python -m experiments.restore                                    # skimage 'camera' (gray), 50% missing
    python -m experiments.restore --image=masked.png --mask=mask.png --preset=paper_50
    python -m experiments.restore --clean=kate.png --preset=paper_2 --baselines

Without ``--mask`` a Bernoulli mask keeps ``keep_fraction`` of the pixels, drawn
per channel (``paper_50``, as the reference's ``get_bernoulli_mask``) or per pixel
(``paper_2``), from ``--seed``.

Presets: ``dipjax.presets.PRESETS['restore']``. Outputs: ``dipjax.report.OUTPUT_FILES``; from Python: ``dipjax.tasks.make_problem`` + ``dipjax.restore``.
"""

from __future__ import annotations

from absl import flags

from experiments import cli, flag_groups, task_main

TASK = "restore"
BUNDLED = "camera"

flag_groups.define_images(mask=True)
flag_groups.define_fit()
flag_groups.define_run()
flag_groups.define_corruption("keep_fraction")
FLAGS = flags.FLAGS

main = task_main.make_main(TASK, bundled=BUNDLED, corruption=lambda: dict(keep_fraction=FLAGS.keep_fraction))

if __name__ == "__main__":
  cli.run(main)
