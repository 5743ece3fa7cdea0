"""dipjax: Deep Image Prior in JAX/Flax — exact, fast, batched over seeds.

Data convention: images are float32 arrays of shape ``(H, W, C)`` with values in
``[0, 1]``; the network input ``z`` is ``(H, W, C_in)``. Every function works on one
image and one seed; batch with ``jax.vmap``.
"""

from dipjax import baselines, batch, canvas, checkpoint, memory, presets, stopping, tiling
from dipjax.canvas import Canvas, canvas_for
from dipjax.conv import conv2d
from dipjax.degradations import add_gaussian_noise, apply_mask, bernoulli_mask, masked_mse
from dipjax.downsampler import downsample, kernel_1d
from dipjax.fit import (FitLoop, FitResult, FitState, Snapshots, StepMetrics, check_fit_inputs, ensemble, fit_seeds, identity,
                        make_fit, make_fit_loop, map_seeds)
from dipjax.inputs import make_input, perturb_input
from dipjax.layers import upsample2x
from dipjax.metrics import mse, nonzero_box, psnr, psnr_sr, rgb_to_y, ssim
from dipjax.models import (PRESETS, SkipNet, count_params, get_model, skip_deblock, skip_default, skip_flash,
                           skip_inpaint_large_hole, skip_inpaint_region, skip_inpaint_text, skip_restore_sparse,
                           skip_tiny)

__version__ = "0.1.0"

__all__ = [
    "Canvas", "canvas_for", "baselines", "batch", "canvas", "checkpoint", "memory", "presets", "stopping", "tiling",
    "FitLoop", "FitResult", "FitState", "PRESETS", "SkipNet", "Snapshots", "StepMetrics", "add_gaussian_noise",
    "apply_mask", "bernoulli_mask", "check_fit_inputs", "conv2d", "count_params", "masked_mse",
    "downsample", "ensemble", "fit_seeds", "get_model", "identity", "kernel_1d", "make_fit", "make_fit_loop", "map_seeds",
    "make_input", "mse", "nonzero_box", "perturb_input", "psnr", "psnr_sr", "rgb_to_y", "ssim", "skip_deblock", "skip_default", "skip_flash",
    "skip_inpaint_large_hole", "skip_inpaint_region", "skip_inpaint_text", "skip_restore_sparse", "skip_tiny",
    "upsample2x",
]
