r"""Blind JPEG artefact removal (the paper's snail example) with Deep Image Prior.

``min_θ ||f_θ(z) − x0||²`` with ``x0`` the JPEG; the deblocking net (few channels,
skips only at the two deepest levels) and a 3-channel ``z``, read off early.

    python -m experiments.deblock                                  # skimage 'coffee', JPEG quality 10
    python -m experiments.deblock --image=photo.jpg --preset=paper  # a real JPEG, no ground truth
    python -m experiments.deblock --clean=photo.png --jpeg_quality=20 --baselines

Presets: ``dipjax.presets.PRESETS['deblock']``. Outputs: ``dipjax.report.OUTPUT_FILES``; from Python: ``dipjax.tasks.make_problem`` + ``dipjax.restore``.
"""

from __future__ import annotations

from absl import flags

from experiments import cli, flag_groups, task_main

TASK = "deblock"
BUNDLED = "coffee"

flag_groups.define_images()
flag_groups.define_fit()
flag_groups.define_run()
flag_groups.define_corruption("jpeg_quality")
FLAGS = flags.FLAGS

main = task_main.make_main(TASK, bundled=BUNDLED, corruption=lambda: dict(jpeg_quality=FLAGS.jpeg_quality))

if __name__ == "__main__":
  cli.run(main)
