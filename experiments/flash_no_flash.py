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

Presets: ``dipjax.presets.PRESETS['flash_no_flash']``. Outputs: ``dipjax.report.OUTPUT_FILES``; from Python: ``dipjax.tasks.make_problem`` + ``dipjax.restore``.
"""

from __future__ import annotations

from absl import flags

from experiments import cli, flag_groups, task_main

TASK = "flash_no_flash"
BUNDLED = "coffee"

flag_groups.define_images(flash=True, observed="the no-flash image")
flag_groups.define_fit()
flag_groups.define_run()
flag_groups.define_corruption("sigma")
FLAGS = flags.FLAGS

main = task_main.make_main(TASK, bundled=BUNDLED, corruption=lambda: dict(sigma=FLAGS.sigma))

if __name__ == "__main__":
  cli.run(main)
