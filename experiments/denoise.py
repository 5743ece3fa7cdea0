r"""Denoising with Deep Image Prior (the README's main job): Gaussian, Poisson, impulse or speckle noise.

``min_θ ||f_θ(z) − x0||²`` with ``x0`` the noisy image; the restored image is read off
before the network fits the noise (EMA of the outputs, as in the paper's 30.43 dB).

With no arguments it denoises ``skimage.data.astronaut`` with synthetic σ = 25 noise:
on a CPU a 128x128 crop with the ``cpu`` preset (about 2.5 minutes on 2 cores), on a
GPU/TPU the full 512x512 image with the ``paper`` preset::

    python -m experiments.denoise
    python -m experiments.denoise --image=noisy_photo.png                 # real noisy photo, no ground truth
    python -m experiments.denoise --clean=photo.png --sigma=50 --preset=paper_sigma50 --seeds=4 --baselines
    python -m experiments.denoise --noise=impulse --impulse_fraction=0.1 --loss=l1   # salt and pepper, L1 loss
    python -m experiments.denoise --noise=poisson --peak=30 --loss=poisson_nll        # shot noise, its likelihood
    python -m experiments.denoise --preset=sgld_cpu --seeds=4    # Bayesian DIP: posterior mean + uncertainty map

Presets: ``dipjax.presets.PRESETS['denoise']``. Outputs: ``dipjax.report.OUTPUT_FILES``; from Python: ``dipjax.tasks.make_problem`` + ``dipjax.restore``.
"""

from __future__ import annotations

from absl import flags

from experiments import cli, flag_groups, task_main

TASK = "denoise"
BUNDLED = "astronaut"

flag_groups.define_images()
flag_groups.define_fit()
flag_groups.define_run()
flag_groups.define_corruption("sigma")
flag_groups.define_noise()
flag_groups.define_sgld()
FLAGS = flags.FLAGS

main = task_main.make_main(TASK, bundled=BUNDLED, corruption=lambda: dict(
    sigma=FLAGS.sigma, **flag_groups.noise_overrides(), **flag_groups.sgld_overrides()))

if __name__ == "__main__":
  cli.run(main)
