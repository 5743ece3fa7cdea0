"""Task presets: the paper's settings per restoration task, as data (dip_reference.md §2.9).

A :class:`TaskPreset` holds everything a run of one task needs besides its images:
the network, the input ``z``, the optimiser, the output averaging, the rollback
guard and the synthetic corruption used when only a clean image is given. Every
entry point in ``experiments/`` prints its preset in full at the start of a run and
saves it in ``metrics.json``.

Each task has its ``paper*`` presets (the reference notebooks' values; where the
paper's evaluation differs from the notebook, the paper's, noted in ``note``), a
``cpu`` preset (the same network and settings on a crop and with fewer steps, so it
finishes in minutes on a 2-core CPU; denoising and super-resolution also with bfloat16
convolutions, :data:`CPU_PRECISION`) and a ``tiny`` preset (a 2-level 8-channel net,
seconds; for tests).

A preset is the ``config`` that :func:`dipjax.restore` takes as is; :func:`get` returns
one (with overrides, validated), so nothing needs hand-copied paper values.

Example:
  >>> from dipjax import presets
  >>> p = presets.get("super_resolution", "paper_x4")
  >>> p.model, p.steps, p.reg_noise_std, p.factor
  ('default', 2000, 0.03, 4)
  >>> presets.get("denoise", "cpu", learning_rate=0.0)
  Traceback (most recent call last):
  ...
  ValueError: `learning_rate` must be a finite number > 0.0, got 0.0.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

from dipjax import architectures, conv, downsampler, fit, losses, validation

TASKS = ("denoise", "deblock", "super_resolution", "inpaint", "restore", "flash_no_flash", "deblur")
NOISE_MODELS = ("gaussian", "poisson", "impulse", "speckle")  # dipjax.noise
LOSSES = ("mse", "l1", "poisson_nll")  # dipjax.losses
BLURS = ("gaussian", "motion")  # synthetic blur kernels (dipjax.blur); a kernel file is given to the task instead
INPUT_KINDS = ("noise", "meshgrid", "image")
SR_FACTORS = (2, 4, 6, 8)  # even: the Lanczos kernels of the reference are centred only for even factors

@dataclasses.dataclass(frozen=True)
class TaskPreset:
  """The settings of one run of a task. Fields that do not apply to a task are None."""

  task: str  # one of TASKS
  model: str  # a network name: dipjax.PRESETS or dipjax.architectures.ARCHITECTURES (architectures.NETWORKS)
  steps: int  # Adam steps
  learning_rate: float = 0.01
  reg_noise_std: float = 0.0  # σ_p: std of the fresh Gaussian added to z every step
  ema_decay: float = 0.99  # output averaging ema_t = d ema_{t-1} + (1 - d) x_t (always tracked)
  guard_every: int = 0  # rollback-guard check interval in steps (0: off)
  input_kind: str = "noise"  # 'noise' (U(0, 0.1)) | 'meshgrid' | 'image' (the flash image is z)
  input_channels: int = 32  # channels of z (ignored for 'image')
  crop: int = 0  # centre crop (pixels of the restored image) applied to the bundled default image; 0 = none
  # Synthetic corruption, used when only a clean image is available:
  sigma: Optional[float] = None  # denoise: Gaussian noise std on the 0-255 scale
  jpeg_quality: Optional[int] = None  # deblock: JPEG quality of the synthetic input
  factor: Optional[int] = None  # super_resolution: scale factor
  kernel: Optional[str] = None  # super_resolution: downsampler in the loss ('lanczos2', ...)
  keep_fraction: Optional[float] = None  # restore: fraction of known pixels of the Bernoulli mask
  per_channel_mask: Optional[bool] = None  # restore: one Bernoulli draw per channel (True) or per pixel
  mask_kind: Optional[str] = None  # inpaint: synthetic mask when no --mask is given: 'text' | 'box'
  noise: str = "gaussian"  # denoise/deblur: the synthetic noise model (NOISE_MODELS); Gaussian uses `sigma`
  peak: Optional[float] = None  # 'poisson' noise: photon count of a white pixel (and the poisson_nll loss's peak)
  impulse_fraction: Optional[float] = None  # 'impulse' noise: fraction of salt-and-pepper elements
  speckle_sigma: Optional[float] = None  # 'speckle' noise: std of the multiplicative factor ([0, 1] scale)
  loss: str = "mse"  # the data term E (LOSSES)
  blur: Optional[str] = None  # deblur: synthetic kernel 'gaussian' (blur_sigma) | 'motion' (motion_length/angle)
  blur_sigma: Optional[float] = None  # deblur: std (pixels) of the Gaussian kernel
  motion_length: Optional[float] = None  # deblur: length (pixels) of the motion kernel
  motion_angle: Optional[float] = None  # deblur: angle (degrees) of the motion kernel
  boundary: Optional[str] = None  # deblur: 'circular' (periodic image) | 'valid' (no assumption outside)
  sgld_noise: float = 0.0  # Langevin noise scale s (0: no parameter noise); see dipjax.fit.Langevin
  sgld_convention: str = "gp_dip"  # 'gp_dip' (std s·lr) | 'sgld' (variance 2·lr·s²)
  weight_decay: float = 0.0  # λ added to the gradient before Adam (5e-8 in Bayesian DIP)
  burn_in: int = 0  # posterior: steps before the first sample
  sample_every: int = 0  # posterior: a sample every this many steps after burn-in (0: no posterior)
  tv_weight: float = 0.0  # λ of a total-variation term λ TV(x) on the network output (DIP-TV; 0: none)
  precision: str = "float32"  # conv arithmetic: 'float32' | 'float32_highest' | 'bfloat16' (dipjax.conv.PRECISIONS)
  conv_impl: str = "auto"  # conv path: 'auto' (by backend) | 'matmul' | 'rows' | 'xla' (dipjax.conv.CONV_IMPLS)
  note: str = ""  # where the values come from

  def validate(self) -> "TaskPreset":
    """Checks every field; a one-line ``ValueError`` names the field and its value. Returns ``self``."""
    validation.one_of("task", self.task, TASKS)
    validation.one_of("model", self.model, architectures.NETWORKS)
    validation.positive_int("steps", self.steps)
    validation.finite("learning_rate", self.learning_rate, minimum=0.0, inclusive=False)
    validation.finite("reg_noise_std", self.reg_noise_std, minimum=0.0)
    validation.finite("ema_decay", self.ema_decay, minimum=0.0, maximum=1.0, maximum_inclusive=False)
    validation.non_negative_int("guard_every", self.guard_every)
    validation.one_of("input_kind", self.input_kind, INPUT_KINDS)
    validation.positive_int("input_channels", self.input_channels)
    validation.non_negative_int("crop", self.crop)
    if self.sigma is not None:
      validation.finite("sigma", self.sigma, minimum=0.0)
    if self.jpeg_quality is not None and not (isinstance(self.jpeg_quality, int) and 1 <= self.jpeg_quality <= 95):
      raise ValueError(f"`jpeg_quality` must be an integer in 1..95, got {self.jpeg_quality!r}.")
    if self.factor is not None:
      validation.one_of("factor", self.factor, SR_FACTORS)
    if self.kernel is not None:
      validation.one_of("kernel", self.kernel, downsampler.KERNEL_TYPES)
    if self.keep_fraction is not None:
      validation.finite("keep_fraction", self.keep_fraction, minimum=0.0, inclusive=False, maximum=1.0)
    if self.mask_kind is not None:
      validation.one_of("mask_kind", self.mask_kind, ("text", "box"))
    self._validate_noise_and_loss()
    self._validate_blur()
    validation.finite("sgld_noise", self.sgld_noise, minimum=0.0)
    validation.one_of("sgld_convention", self.sgld_convention, ("gp_dip", "sgld"))
    validation.finite("weight_decay", self.weight_decay, minimum=0.0)
    validation.non_negative_int("burn_in", self.burn_in)
    validation.non_negative_int("sample_every", self.sample_every)
    validation.finite("tv_weight", self.tv_weight, minimum=0.0)
    validation.one_of("precision", self.precision, conv.PRECISIONS)
    validation.one_of("conv_impl", self.conv_impl, conv.CONV_IMPLS)
    if self.sgld_noise and not self.sample_every:
      raise ValueError("`sgld_noise` > 0 needs `sample_every` >= 1 (the posterior mean is the result of SGLD).")
    return self

  def _validate_noise_and_loss(self) -> None:
    validation.one_of("noise", self.noise, NOISE_MODELS)
    validation.one_of("loss", self.loss, LOSSES)
    if self.peak is not None:
      validation.finite("peak", self.peak, minimum=0.0, inclusive=False)
    if self.impulse_fraction is not None:
      validation.finite("impulse_fraction", self.impulse_fraction, minimum=0.0, maximum=1.0)
    if self.speckle_sigma is not None:
      validation.finite("speckle_sigma", self.speckle_sigma, minimum=0.0)
    needs = {"poisson": "peak", "impulse": "impulse_fraction", "speckle": "speckle_sigma"}
    if self.noise in needs and getattr(self, needs[self.noise]) is None:
      raise ValueError(f"noise {self.noise!r} needs `{needs[self.noise]}`.")
    if self.loss == "poisson_nll" and self.peak is None:
      raise ValueError("loss 'poisson_nll' needs `peak` (the photon count of a white pixel).")

  def _validate_blur(self) -> None:
    if self.blur is not None:
      validation.one_of("blur", self.blur, BLURS)
    for name in ("blur_sigma", "motion_length"):
      if getattr(self, name) is not None:
        validation.finite(name, getattr(self, name), minimum=0.0, inclusive=False)
    if self.motion_angle is not None:
      validation.finite("motion_angle", self.motion_angle)
    if self.boundary is not None:
      validation.one_of("boundary", self.boundary, ("circular", "valid"))

  def fit_options(self) -> dict:
    """The options of :func:`dipjax.make_fit_loop` this preset sets (the one glue from a preset to a fit).

    An image input (``input_kind='image'``, the flash image) is passed to the fit as
    ``z``; the loop's own input draw is then unused, so it is given the default kind.
    """
    options = dict(learning_rate=self.learning_rate, reg_noise_std=self.reg_noise_std, ema_decay=self.ema_decay,
                   guard_every=self.guard_every, input_kind="noise" if self.input_kind == "image" else self.input_kind,
                   input_channels=self.input_channels)
    if self.tv_weight:
      options["tv_weight"] = self.tv_weight
    if self.loss != "mse":
      options["loss"] = _loss_fn(self.loss, self.peak)
    if self.sample_every:
      options["langevin"] = fit.Langevin(noise_scale=self.sgld_noise, convention=self.sgld_convention,
                                         weight_decay=self.weight_decay, burn_in=self.burn_in,
                                         sample_every=self.sample_every)
    return options

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def describe(self) -> str:
    """One line with every field that applies (the fields left None are omitted)."""
    items = [f"{k}={v!r}" for k, v in self.to_dict().items() if v is not None and k != "note"]
    return ", ".join(items) + (f"  [{self.note}]" if self.note else "")

@functools.lru_cache(maxsize=None)
def _loss_fn(name: str, peak: Optional[float]):
  """The loss function of a preset, one object per (name, peak): equal presets share their compiled loops."""
  return losses.get(name, peak=peak) if name == "poisson_nll" else losses.get(name)


# The denoising and super-resolution cpu presets convolve in bfloat16 (f32 accumulation; parameters, optimiser,
# loss and outputs f32): 1.5-1.7x faster per step than float32 on the CPU measured, and no measurable PSNR loss
# on the CPU-scale benchmark sets (denoising -0.03 dB EMA over 9 images x 4 seeds; SR x4 +0.11 dB). The other cpu
# presets stay float32: on 50 % inpainting bf16 lost 0.36 dB (EMA, 11 images), and the rest were not measured
# (BUILD_NOTES.md §19). --precision / precision= overrides either way.
CPU_PRECISION = "bfloat16"


def _p(**kw) -> TaskPreset:
  return TaskPreset(**kw)


def _cpu(**kw) -> TaskPreset:
  return TaskPreset(precision=CPU_PRECISION, **kw)

_DENOISE = dict(task="denoise", model="default", sigma=25.0, reg_noise_std=1.0 / 30.0, guard_every=1)
_DEBLOCK = dict(task="deblock", model="deblock", input_channels=3, jpeg_quality=10, reg_noise_std=1.0 / 30.0,
                guard_every=1)
_SR = dict(task="super_resolution", model="default", kernel="lanczos2")
_RESTORE = dict(task="restore")
_FLASH = dict(task="flash_no_flash", model="flash", input_kind="image", learning_rate=0.1, sigma=25.0)
_SGLD_PAPER = dict(sgld_noise=2.0, sgld_convention="gp_dip", weight_decay=5e-8, burn_in=7000, sample_every=50)
# Deblurring is not in the paper: the denoising settings (default net, σ_p 1/30, guard) with a known kernel.
_DEBLUR = dict(task="deblur", model="default", reg_noise_std=1.0 / 30.0, guard_every=1, sigma=5.0, blur="gaussian",
               blur_sigma=1.6, motion_length=9.0, motion_angle=30.0, boundary="circular")

PRESETS: dict[str, dict[str, TaskPreset]] = {
    "denoise": {
        "paper": _p(**_DENOISE, steps=1800,
                    note="paper's 9-image evaluation (1800 steps; the F16 notebook runs 3000)"),
        "paper_sigma50": _p(**{**_DENOISE, "sigma": 50.0, "reg_noise_std": 1.0 / 20.0}, steps=1800,
                            note="σ=50; σ_p 1/20 as the notebook's comment suggests"),
        "cpu": _cpu(**_DENOISE, steps=1000, crop=128, note="paper settings on a 128x128 crop, 1000 steps"),
        "tiny": _p(**{**_DENOISE, "model": "tiny"}, steps=20, input_channels=8, crop=48, note="tests"),
        "sgld": _p(**_DENOISE, steps=20000, **_SGLD_PAPER,
                   note="Bayesian DIP (Cheng et al. 2019), the GP-DIP notebook: SGLD noise 2·lr on the conv "
                        "weights, weight decay 5e-8, a posterior sample every 50 steps after 7000"),
        "sgld_cpu": _p(**_DENOISE, steps=3000, crop=128, **{**_SGLD_PAPER, "burn_in": 1000, "sample_every": 20},
                       note="Bayesian DIP settings on a 128x128 crop: 3000 steps, samples every 20 after 1000"),
        "sgld_tiny": _p(**{**_DENOISE, "model": "tiny"}, steps=20, input_channels=8, crop=48,
                        **{**_SGLD_PAPER, "burn_in": 4, "sample_every": 2}, note="tests"),
    },
    "deblock": {
        "paper": _p(**_DEBLOCK, steps=2400, note="snail notebook: 3-channel z, 2400 steps"),
        "cpu": _p(**_DEBLOCK, steps=2400, crop=256, note="paper settings on a 256x256 crop"),
        "tiny": _p(**{**_DEBLOCK, "model": "tiny"}, steps=20, crop=48, note="tests"),
    },
    "super_resolution": {
        "paper_x4": _p(**_SR, factor=4, steps=2000, reg_noise_std=0.03, note="SR notebook x4"),
        "paper_x8": _p(**_SR, factor=8, steps=4000, reg_noise_std=0.05, note="SR notebook x8"),
        "cpu": _cpu(**_SR, factor=4, steps=1000, reg_noise_std=0.03, crop=128,
                  note="x4 settings, 128x128 high-resolution crop, 1000 steps"),
        "tiny": _p(**{**_SR, "model": "tiny"}, factor=4, steps=20, reg_noise_std=0.03, input_channels=8, crop=48,
                   note="tests"),
    },
    "inpaint": {
        "paper_text": _p(task="inpaint", model="inpaint_text", steps=6001, reg_noise_std=0.03, mask_kind="text",
                         note="kate text inpainting"),
        "paper_region": _p(task="inpaint", model="inpaint_region", steps=5001, reg_noise_std=0.03,
                           input_kind="meshgrid", input_channels=2, mask_kind="box",
                           note="vase region inpainting, meshgrid input"),
        "paper_large_hole": _p(task="inpaint", model="inpaint_large_hole", steps=3001, reg_noise_std=0.0,
                               input_channels=1, mask_kind="box",
                               note="library large hole, 6-level net (param_noise is a no-op in the reference)"),
        "cpu": _p(task="inpaint", model="inpaint_text", steps=1000, reg_noise_std=0.03, mask_kind="text", crop=128,
                  note="text-inpainting settings on a 128x128 crop, 1000 steps"),
        "tiny": _p(task="inpaint", model="tiny", steps=20, reg_noise_std=0.03, input_channels=8, mask_kind="text",
                   crop=48, note="tests"),
    },
    "restore": {
        "paper_50": _p(**_RESTORE, model="default", steps=11000, learning_rate=0.001, reg_noise_std=0.03,
                       guard_every=50, keep_fraction=0.5, per_channel_mask=True,
                       note="barbara 50% missing pixels (Table 1)"),
        "paper_2": _p(**_RESTORE, model="restore_sparse", steps=1000, keep_fraction=0.02, per_channel_mask=False,
                      note="kate, 2% of the pixels kept"),
        "cpu": _p(**_RESTORE, model="default", steps=1000, learning_rate=0.01, reg_noise_std=0.03, guard_every=50,
                  keep_fraction=0.5, per_channel_mask=True, crop=128,
                  note="50% missing on a 128x128 crop; lr 0.01 and 1000 steps instead of 0.001 and 11000"),
        "tiny": _p(**_RESTORE, model="tiny", steps=20, input_channels=8, keep_fraction=0.5, per_channel_mask=True,
                   crop=48, note="tests"),
    },
    "flash_no_flash": {
        "paper": _p(**_FLASH, steps=601, note="flash-no-flash notebook: the flash image is z, lr 0.1"),
        "cpu": _p(**_FLASH, steps=601, crop=128, note="paper settings on a 128x128 crop"),
        "tiny": _p(**{**_FLASH, "model": "tiny"}, steps=20, crop=48, note="tests"),
    },
    "deblur": {
        "paper": _p(**_DEBLUR, steps=3000, note="not in the paper: its denoising settings, Gaussian blur σ 1.6 px, "
                                                "noise σ 5/255, circular boundary, 3000 steps"),
        "cpu": _p(**_DEBLUR, steps=1500, crop=128, note="the same on a 128x128 crop, 1500 steps"),
        "tiny": _p(**{**_DEBLUR, "model": "tiny"}, steps=20, input_channels=8, crop=48, note="tests"),
    },
}

def names(task: str) -> list[str]:
  """The preset names of ``task``."""
  _check_task(task)
  return list(PRESETS[task])

def default_name(task: str, backend: str) -> str:
  """The preset a run with no ``--preset`` uses: the first paper preset on an accelerator, else ``cpu``."""
  _check_task(task)
  if backend in ("gpu", "tpu", "cuda", "rocm"):
    return next(n for n in PRESETS[task] if n.startswith("paper"))
  return "cpu"

def get(task: str, name: str, **overrides) -> TaskPreset:
  """The preset ``name`` of ``task``, with fields replaced by the non-None ``overrides``, validated.

  Example:
    >>> get("denoise", "cpu", steps=500).steps
    500
  """
  _check_task(task)
  if name not in PRESETS[task]:
    raise ValueError(f"unknown preset {name!r} for {task}; choose one of {names(task)}.")
  preset = PRESETS[task][name]
  overrides = {k: v for k, v in overrides.items() if v is not None}
  unknown = set(overrides) - {f.name for f in dataclasses.fields(TaskPreset)}
  if unknown:
    raise ValueError(f"unknown preset fields {sorted(unknown)}; the fields are "
                     f"{[f.name for f in dataclasses.fields(TaskPreset)]}.")
  return dataclasses.replace(preset, **overrides).validate()

def _check_task(task: str) -> None:
  if task not in PRESETS:
    raise ValueError(f"unknown task {task!r}; choose one of {list(PRESETS)}.")
