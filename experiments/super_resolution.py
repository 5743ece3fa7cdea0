r"""Single-image super-resolution with Deep Image Prior.

``min_θ ||d(f_θ(z)) − x0||²`` with ``x0`` the low-resolution image and ``d`` the fixed
Lanczos-2 downsampler of the reference (``dipjax.downsample``); ``f_θ(z)`` is the
high-resolution image. Reports PSNR on RGB and with the paper's Y-channel protocol.

    python -m experiments.super_resolution                           # skimage 'chelsea', x4
    python -m experiments.super_resolution --image=small.png --factor=4 --preset=paper_x4   # real LR image
    python -m experiments.super_resolution --clean=hr.png --preset=paper_x8 --baselines

With ``--clean`` only, the low-resolution input is made as the reference does (8-bit
PIL Lanczos of the high-resolution image, cut to a multiple of the factor).

Presets: ``dipjax.presets.PRESETS['super_resolution']``. Outputs: ``dipjax.report.OUTPUT_FILES``; from Python: ``dipjax.tasks.make_problem`` + ``dipjax.restore``.
"""

from __future__ import annotations

from absl import flags

from experiments import cli, flag_groups, task_main

TASK = "super_resolution"
BUNDLED = "chelsea"

flag_groups.define_images(observed="the low-resolution image")
flag_groups.define_fit()
flag_groups.define_run()
flag_groups.define_corruption("factor")
flag_groups.define_corruption("kernel")
FLAGS = flags.FLAGS

main = task_main.make_main(TASK, bundled=BUNDLED, corruption=lambda: dict(factor=FLAGS.factor, kernel=FLAGS.kernel))

if __name__ == "__main__":
  cli.run(main)
