r"""Non-blind deblurring with Deep Image Prior: a known blur kernel, ``min_θ ||k ∗ f_θ(z) − x0||²``.

Not a task of the paper (its users asked for it, issue #42 of the original code): the
denoising settings with the blur operator :class:`dipjax.operators.Blur` in the loss.
With no arguments it blurs a 128x128 crop of ``skimage.data.astronaut`` with a Gaussian
kernel (σ 1.6 px) and adds noise of σ 5/255 (``cpu`` preset); ``--baselines`` adds
Wiener and Richardson–Lucy (scikit-image)::

    python -m experiments.deblur --baselines
    python -m experiments.deblur --blur=motion --motion_length=15 --motion_angle=45 --boundary=valid
    python -m experiments.deblur --image=blurred.png --kernel_file=kernel.png   # a real blurred photo

Presets: ``dipjax.presets.PRESETS['deblur']``. Outputs: ``dipjax.report.OUTPUT_FILES``; from Python:
``dipjax.tasks.make_problem(key, "deblur", config, clean=..., kernel=...)`` + ``dipjax.restore``.
"""

from __future__ import annotations

from absl import flags

from experiments import cli, flag_groups, task_main

TASK = "deblur"
BUNDLED = "astronaut"

flag_groups.define_images(observed="the blurred image")
flag_groups.define_fit()
flag_groups.define_run()
flag_groups.define_corruption("sigma")
flag_groups.define_blur()
flag_groups.define_sgld()
FLAGS = flags.FLAGS

main = task_main.make_main(TASK, bundled=BUNDLED, corruption=lambda: dict(
    sigma=FLAGS.sigma, **flag_groups.blur_overrides(), **flag_groups.sgld_overrides()))

if __name__ == "__main__":
  cli.run(main)
