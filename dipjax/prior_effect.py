r"""The supplement's "prior effect" study for super-resolution: no prior vs TV prior vs the deep prior.

The same ×f super-resolution problem (``x0`` = the low-resolution image, ``d`` = the
Lanczos-2 downsampler of :class:`dipjax.operators.Downsample`) is solved three ways
with the same Adam loop (:func:`dipjax.make_fit`, learning rate 0.01, the same steps;
dip_reference.md §2.8):

1. **no prior**: the high-resolution pixels ``x`` themselves are optimised,
   ``min_x ‖d(x) − x0‖²``; ``x`` starts as ``U(0, 0.1)`` (the parameter-free
   :class:`dipjax.architectures.Pixels` network with its input optimised);
2. **TV prior**: the same plus ``λ TV_β(x)`` (λ = 1e-7, β = 0.5, the reference's
   sum-TV :func:`dipjax.regularizers.tv_loss`);
3. **deep prior**: ``x = f_θ(z)``, ``min_θ ‖d(f_θ(z)) − x0‖²`` with the default skip
   network on a 3-channel noise input and input jitter σ_p = 1/30.

The downsampler has a large null space (the details it removes), so without a prior
the pixels there stay where they started; the claim of the supplement is that the
deep prior fills them best and no prior worst. The bicubic upscaling of ``x0``
(:func:`dipjax.baselines.bicubic_upscale`) is reported for reference.

Example (no prior: Adam on the pixels; ``prior_effect(key, clean)`` runs all three)::

  >>> import jax, numpy as np
  >>> from dipjax import operators, prior_effect
  >>> low = np.full((4, 4, 3), 0.5, np.float32)
  >>> op = operators.Downsample(factor=4, kernel="lanczos2")
  >>> r = prior_effect.prior_fit("no prior", steps=20)(jax.random.key(0), low, operator=op)
  >>> r.output.shape, bool(r.metrics.loss[-1] < r.metrics.loss[0])
  ((16, 16, 3), True)
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dipjax import architectures, baselines, fit as fit_lib, metrics, presets, regularizers, tasks, validation

PRIORS = ("no prior", "TV prior", "deep prior")


class StudyPreset(NamedTuple):
  """The size of a run of the study (the rest is the reference's, fixed)."""

  model: str  # the deep prior's network (dipjax.architectures.get_network name)
  steps: int  # Adam steps of each of the three runs
  crop: int  # centre crop of the high-resolution image when none is chosen (0: none)
  note: str = ""


PRESETS = {
    "paper": StudyPreset("default", 2000, 256, "sr_prior_effect.ipynb: 2000 steps, skip 128x5 (zebra crop 256x160)"),
    "cpu": StudyPreset("default", 1000, 128, "the same networks on a 128x128 crop, 1000 steps"),
    "tiny": StudyPreset("tiny", 5, 32, "tests"),
}


class PriorEffect(NamedTuple):
  """What :func:`prior_effect` returns (T steps, an ``(H, W, 3)`` high-resolution image)."""

  low: np.ndarray  # (H/f, W/f, 3) the observation x0
  clean: np.ndarray  # (H, W, 3) the ground truth (cut to a multiple of f)
  outputs: dict  # name -> (H, W, 3) in [0, 1], for PRIORS and "bicubic"
  loss: dict  # name -> (T,) the objective per step (data term, plus λ TV for the TV prior), for PRIORS
  psnr_curve: dict  # name -> (T,) RGB PSNR of the per-step output (unclipped) against clean, for PRIORS
  psnr: dict  # name -> RGB PSNR (dB) of the final output, all pixels
  psnr_y: dict  # name -> Y-channel PSNR with a 4-pixel border shaved (dipjax.metrics.psnr_sr)
  wall_s: dict  # name -> seconds of the run (compile included), for PRIORS


def prior_fit(name: str, *, steps: int, model: Optional[nn.Module] = None, learning_rate: float = 0.01,
              tv_weight: float = 1e-7, tv_beta: float = 0.5, reg_noise_std: float = 1.0 / 30.0) -> fit_lib.Fit:
  """The fit of one of :data:`PRIORS`: ``fit(key, x0, operator=d, clean=x) -> FitResult``.

  Args:
    name: one of :data:`PRIORS`.
    steps: Adam steps.
    model: the deep prior's network (default: ``skip_default()``, the reference's
      ``skip(3, 3, 128 x 5, ns 4 x 5, bilinear, reflection)``); unused otherwise.
    learning_rate: Adam's rate (all three).
    tv_weight, tv_beta: λ and β of the TV prior.
    reg_noise_std: σ_p of the deep prior's input jitter.

  Returns:
    A :class:`dipjax.fit.Fit`. ``z`` has 3 channels, ``U(0, 0.1)``, for all three.
  """
  if name not in PRIORS:
    raise ValueError(f"`name` must be one of {PRIORS}, got {name!r}.")
  if name == "deep prior":
    return fit_lib.make_fit(model if model is not None else architectures.get_network("default"), num_steps=steps,
                            learning_rate=learning_rate, input_channels=3, reg_noise_std=reg_noise_std)
  return fit_lib.make_fit(architectures.Pixels(), num_steps=steps, learning_rate=learning_rate, input_channels=3,
                          optimize_input=True, reg_noise_std=0.0,
                          tv_weight=tv_weight if name == "TV prior" else 0.0, tv_beta=tv_beta)


def prior_effect(key: jax.Array, clean, *, factor: int = 4, steps: int = 2000, model: Optional[nn.Module] = None,
                 learning_rate: float = 0.01, tv_weight: float = 1e-7, tv_beta: float = 0.5,
                 reg_noise_std: float = 1.0 / 30.0, log: Callable[[str], None] = lambda message: None) -> PriorEffect:
  """Super-resolves the low-resolution version of ``clean`` with each of :data:`PRIORS`, and bicubic.

  ``x0`` is the reference's low-resolution image (8-bit PIL Lanczos of ``clean``,
  :func:`dipjax.tasks.super_resolution`); each run minimises
  ``‖d(x) − x0‖² (+ λ TV_β(x))`` over its variables (:func:`prior_fit`).

  Args:
    key: PRNG key; every run uses the same one (its ``U(0, 0.1)`` start and, for the
      deep prior, the network's initialisation).
    clean: ``(H, W, 3)`` float32 high-resolution image in [0, 1] (cut to a multiple of ``factor``).
    factor: the scale factor, one of :data:`dipjax.presets.SR_FACTORS` (2, 4, 6, 8).
    steps, model, learning_rate, tv_weight, tv_beta, reg_noise_std: as :func:`prior_fit`.
    log: called with one line per finished run.

  Returns:
    A :class:`PriorEffect`.
  """
  fit_lib.check_image("clean", clean)
  if np.shape(clean)[-1] != 3:
    raise ValueError(f"`clean` must be an RGB (H, W, 3) image, got shape {np.shape(clean)}.")
  validation.positive_int("steps", steps)
  if factor not in presets.SR_FACTORS:
    raise ValueError(f"`factor` must be one of {presets.SR_FACTORS} (even), got {factor!r}.")
  problem = tasks.super_resolution(clean=np.asarray(clean, np.float32), factor=factor)
  low, clean = problem.observation, problem.clean
  outputs, loss, curve, wall = {}, {}, {}, {}
  for name in PRIORS:
    t0 = time.perf_counter()
    fit = prior_fit(name, steps=steps, model=model, learning_rate=learning_rate, tv_weight=tv_weight,
                    tv_beta=tv_beta, reg_noise_std=reg_noise_std)
    result = fit(key, jnp.asarray(low), operator=problem.operator, clean=jnp.asarray(clean))
    outputs[name] = np.clip(np.asarray(result.output, np.float32), 0.0, 1.0)
    loss[name] = np.asarray(result.metrics.loss)
    curve[name] = np.asarray(result.metrics.psnr_clean)
    wall[name] = time.perf_counter() - t0
    log(f"{name}: {steps} steps in {wall[name]:.1f} s, PSNR {float(metrics.psnr(outputs[name], clean)):.2f} dB")
  outputs["bicubic"] = baselines.bicubic_upscale(low, factor)
  return PriorEffect(low=low, clean=clean, outputs=outputs, loss=loss, psnr_curve=curve,
                     psnr={n: float(metrics.psnr(jnp.asarray(x), jnp.asarray(clean))) for n, x in outputs.items()},
                     psnr_y={n: metrics.psnr_sr(x, clean) for n, x in outputs.items()}, wall_s=wall)


def total_variation(image) -> float:
  """``TV_0.5`` of an ``(H, W, C)`` image (:func:`dipjax.regularizers.tv_loss`), as a Python float."""
  return float(regularizers.tv_loss(jnp.asarray(image, jnp.float32), 0.5))
