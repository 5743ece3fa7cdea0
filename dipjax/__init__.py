"""dipjax: Deep Image Prior in JAX/Flax — exact, fast, batched over seeds.

Data convention (stated once for the whole package): images are float32 arrays of
shape ``(H, W, C)`` with values in ``[0, 1]``; the network input ``z`` is
``(H, W, C_in)``. Every function works on one image and one seed; batch with
``jax.vmap`` (or :func:`fit_seeds`, :mod:`dipjax.batch`, :func:`restore`).

The story in modules: an image (:mod:`~dipjax.image_io`) is corrupted
(:mod:`~dipjax.corruptions`) into an observation through a forward operator
(:mod:`~dipjax.operators`); a task's :class:`~dipjax.tasks.Problem` bundles them;
a preset (:mod:`~dipjax.presets`) holds the paper's settings; :func:`restore` fits
the network (:mod:`~dipjax.models`, one compiled scan in :mod:`~dipjax.fit`, chunked
by :mod:`~dipjax.runner`) and returns the restored images, curves and stopping
summary (:mod:`~dipjax.summary`); :mod:`~dipjax.report` writes them to a folder.

Example:
  >>> import jax, dipjax
  >>> from dipjax import corruptions, presets
  >>> clean = jax.random.uniform(jax.random.key(0), (32, 32, 3))
  >>> noisy = corruptions.add_gaussian_noise(jax.random.key(1), clean, sigma=0.1)
  >>> result = dipjax.restore(jax.random.key(2), noisy, None, presets.get("denoise", "tiny", steps=5))
  >>> result.ema.shape
  (1, 32, 32, 3)
"""

from dipjax import (baselines, batch, canvas, checkpoint, corruptions, image_io, memory, metrics, operators, presets,
                    report, restoration, runner, stopping, summary, tasks, tiling)
from dipjax.canvas import Canvas, canvas_for
from dipjax.conv import conv2d
from dipjax.downsampler import downsample
from dipjax.fit import (Fit, FitLoop, FitResult, FitState, StepMetrics, ensemble, fit_seeds, make_fit, make_fit_loop,
                        map_seeds)
from dipjax.inputs import make_input
from dipjax.metrics import psnr, psnr_sr, ssim
from dipjax.models import (PRESETS, SkipNet, count_params, get_model, skip_deblock, skip_default, skip_flash,
                           skip_inpaint_large_hole, skip_inpaint_region, skip_inpaint_text, skip_restore_sparse,
                           skip_tiny)
from dipjax.restoration import Restoration, StopOptions, restore
from dipjax.tasks import Problem, make_problem, restore_problem

__version__ = "0.1.0"

__all__ = [
    # one call
    "restore", "Restoration", "StopOptions", "Problem", "make_problem", "restore_problem",
    # modules a user reaches for
    "corruptions", "operators", "presets", "tasks", "report", "batch", "metrics", "image_io", "baselines",
    "restoration", "stopping", "summary", "checkpoint", "memory", "tiling", "canvas", "runner",
    # the fit
    "make_fit", "make_fit_loop", "Fit", "FitLoop", "FitResult", "FitState", "StepMetrics", "fit_seeds", "map_seeds",
    "ensemble", "make_input",
    # networks
    "SkipNet", "PRESETS", "get_model", "count_params", "skip_default", "skip_deblock", "skip_inpaint_text",
    "skip_inpaint_region", "skip_inpaint_large_hole", "skip_restore_sparse", "skip_flash", "skip_tiny",
    # building blocks
    "Canvas", "canvas_for", "conv2d", "downsample", "psnr", "psnr_sr", "ssim",
]
