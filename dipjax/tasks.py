r"""The restoration problem of each task: observation ``x0``, operator ``A``, ground truth and baselines.

A :class:`Problem` is everything :func:`dipjax.restore` needs besides the settings,
plus what a report shows (the input as a picture, the classical baselines). Each
task has a builder that takes the images you have — the real observation, the
ground truth, a mask, a flash image — and, where only the ground truth is given,
corrupts it synthetically (:mod:`dipjax.corruptions`):

================  =====================================  ==========================================
task              operator ``A``                         synthetic observation from ``clean``
================  =====================================  ==========================================
denoise           identity                               noise: Gaussian of σ (0–255), Poisson, impulse, speckle
deblock           identity                               JPEG at a quality
super_resolution  Lanczos-2 downsampling by ``factor``   8-bit PIL Lanczos downscale
inpaint           mask (1 = known)                       text or box mask
restore           mask (1 = known)                       Bernoulli mask keeping a fraction
flash_no_flash    identity, ``z`` = the flash image      noisy no-flash + relit flash
deblur            blur by a known kernel                 Gaussian or motion blur + noise
================  =====================================  ==========================================

:func:`make_problem` builds any task's problem from a preset; :func:`restore_problem`
runs it. Errors name the argument (``image``, ``clean``, ``mask``, ``flash``).

Example:
  >>> import numpy as np, jax
  >>> from dipjax import presets, tasks
  >>> clean = np.random.default_rng(0).random((48, 48, 3), dtype=np.float32)
  >>> p = tasks.make_problem(None, "super_resolution", presets.get("super_resolution", "tiny"), clean=clean)
  >>> p.observation.shape, p.image_size
  ((12, 12, 3), (48, 48))
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np

from dipjax import baselines as baselines_lib
from dipjax import blur as blur_lib
from dipjax import corruptions
from dipjax import noise as noise_lib
from dipjax import operators
from dipjax import presets as presets_lib
from dipjax import restoration as restore_lib

MIN_SIZE = restore_lib.MIN_SIZE


@dataclasses.dataclass
class Problem:
  """One restoration problem in the library's convention (float32 HWC in [0, 1])."""

  task: str  # one of dipjax.presets.TASKS
  observation: np.ndarray  # x0: (h, w, C); (H/f, W/f, C) for super-resolution
  operator: Any  # A (dipjax.operators): restored image -> observation space
  image_size: tuple  # (H, W) of the restored image
  input_view: np.ndarray  # (H, W, C): the corrupted input as a picture of the restored image's size
  input_label: str  # "noisy", "JPEG", "low-res x4 (nearest)", ...
  clean: Optional[np.ndarray] = None  # (H, W, C) ground truth, for evaluation only
  z: Optional[np.ndarray] = None  # (H, W, C_z): an image used as the network input (flash)
  mask: Optional[np.ndarray] = None  # (H, W, 1|C): the mask of A, 1 = known pixel (inpaint, restore)
  noise_sigma: Optional[float] = None  # std of the observation noise ([0, 1] scale), known or estimated
  sr_factor: Optional[int] = None  # super-resolution: also report the paper's Y-channel PSNR
  baselines: dict = dataclasses.field(default_factory=dict)  # name -> () -> (H, W, C) classical restoration
  source: dict = dataclasses.field(default_factory=dict)  # how the observation was made (saved in metrics.json)
  bit_depth: int = 8  # of the observed file: 16-bit gray results are written back at 16 bits


def keys_for_seed(seed: int) -> tuple[jax.Array, jax.Array]:
  """``(corruption key, fit key)`` of an integer seed, as the entry points derive them."""
  key = jax.random.key(int(seed))
  return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def centre_crop(image: np.ndarray, size: int, *, multiple: int = 1) -> np.ndarray:
  """Centre ``size x size`` crop (sides shorter than ``size`` are kept; 0: no crop), then each side cut to a multiple.

  Example:
    >>> centre_crop(np.zeros((10, 7, 1)), 4).shape, centre_crop(np.zeros((10, 7, 1)), 0, multiple=4).shape
    ((4, 4, 1), (8, 4, 1))
  """
  h, w = image.shape[:2]
  th, tw = (min(h, size), min(w, size)) if size and size > 0 else (h, w)
  th, tw = th - th % multiple, tw - tw % multiple
  top, left = (h - th) // 2, (w - tw) // 2
  return image[top:top + th, left:left + tw]


def _image(name: str, image) -> Optional[np.ndarray]:
  if image is None:
    return None
  image = np.asarray(image, np.float32)
  if image.ndim != 3:
    raise ValueError(f"`{name}` must be an (H, W, C) image, got shape {image.shape}.")
  h, w = image.shape[:2]
  if min(h, w) < MIN_SIZE and name != "low":
    raise ValueError(f"`{name}` is {w}x{h} pixels; dipjax needs at least {MIN_SIZE}x{MIN_SIZE} (upscale or use a "
                     "larger image).")
  return image


def _same_size(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
  if a.shape[:2] != b.shape[:2]:
    raise ValueError(f"`{name_a}` is {a.shape[1]}x{a.shape[0]} but `{name_b}` is {b.shape[1]}x{b.shape[0]}; they "
                     "must have the same size.")


def match_channels(name: str, image: np.ndarray, channels: int) -> np.ndarray:
  """Gray -> RGB by repetition; RGB -> gray is refused (it would change the task)."""
  if image.shape[-1] == channels:
    return image
  if image.shape[-1] == 1 and channels == 3:
    return np.repeat(image, 3, axis=-1)
  raise ValueError(f"`{name}` has {image.shape[-1]} channels but the observation has {channels}; pass images of "
                   "one mode.")


def _observed(name: str, observed, clean) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """A pixel-aligned observation and its optional ground truth (same size, channels matched)."""
  observed, clean = _image(name, observed), _image("clean", clean)
  if clean is not None:
    _same_size(name, observed, "clean", clean)
    clean = match_channels("clean", clean, observed.shape[-1])
  return observed, clean


def _need(name: str, value, what: str):
  if value is None:
    raise ValueError(f"{what} needs `{name}`.")
  return value


class SyntheticNoise(NamedTuple):
  """A synthetic noise model of a preset: ``add(key, image) -> noisy``, its description and known σ."""

  add: Callable[[jax.Array, np.ndarray], np.ndarray]
  description: str
  sigma: Optional[float]  # the additive noise std on the [0, 1] scale where it is one number (Gaussian), else None


def synthetic_noise(config: presets_lib.TaskPreset) -> SyntheticNoise:
  """The noise of ``config`` (``noise``: Gaussian of ``sigma``/255, Poisson of ``peak``, impulse, speckle).

  Example:
    >>> synthetic_noise(presets_lib.get("denoise", "cpu", noise="poisson", peak=30.0)).description
    'Poisson (shot) noise, peak 30.0, clipped'
  """
  if config.noise == "gaussian":
    sigma = float(_need("sigma", config.sigma, "Gaussian noise")) / 255.0
    add = lambda key, x: np.asarray(corruptions.add_gaussian_noise(key, x, sigma=sigma))
    return SyntheticNoise(add, f"Gaussian noise σ = {config.sigma} / 255, clipped", sigma)
  params = {"poisson": dict(peak=config.peak), "impulse": dict(fraction=config.impulse_fraction),
            "speckle": dict(sigma=config.speckle_sigma)}[config.noise]
  fn = noise_lib.make(config.noise, **params)
  described = {"poisson": f"Poisson (shot) noise, peak {config.peak}",
               "impulse": f"salt-and-pepper noise, fraction {config.impulse_fraction}",
               "speckle": f"speckle (multiplicative) noise σ = {config.speckle_sigma}"}[config.noise]
  return SyntheticNoise(lambda key, x: np.asarray(fn(key, x)), described + ", clipped", None)


def denoise(*, key: Optional[jax.Array] = None, noisy=None, clean=None, sigma_255: Optional[float] = None,
            noise: Optional[SyntheticNoise] = None) -> Problem:
  """Denoising: ``A = I``. Without ``noisy``, ``noise`` (default: Gaussian of ``sigma_255``) is added to ``clean``.

  The noise level is known for synthetic Gaussian noise and estimated from a real
  noisy image (:func:`dipjax.baselines.estimate_noise_sigma`); it enables the
  discrepancy-principle stop.
  """
  if noisy is None:
    clean = _image("clean", _need("clean", clean, "denoising without `noisy`"))
    if noise is None:
      noise = synthetic_noise(presets_lib.TaskPreset(task="denoise", model="tiny", steps=1, sigma=sigma_255))
    noisy = noise.add(_need("key", key, "synthetic noise"), clean)
    sigma, source = noise.sigma, {"synthetic": noise.description}
  else:
    noisy, clean = _observed("noisy", noisy, clean)
    sigma = baselines_lib.estimate_noise_sigma(noisy)
    source = {"estimated_sigma_255": sigma * 255.0}
  return Problem(task="denoise", observation=noisy, operator=operators.Identity(), image_size=noisy.shape[:2],
                 input_view=noisy, input_label="noisy", clean=clean, noise_sigma=sigma, source=source,
                 baselines={k: functools.partial(fn, noisy) for k, fn in baselines_lib.DENOISERS.items()})


def deblock(*, jpeg=None, clean=None, quality: Optional[int] = None) -> Problem:
  """JPEG deblocking: ``A = I``. Without ``jpeg``, ``clean`` is JPEG-compressed at ``quality``."""
  if jpeg is None:
    clean = _image("clean", _need("clean", clean, "deblocking without `jpeg`"))
    jpeg = corruptions.jpeg_compress(clean, _need("quality", quality, "a synthetic JPEG"))
    source = {"synthetic": f"JPEG quality {quality} (Pillow)"}
  else:
    jpeg, clean = _observed("jpeg", jpeg, clean)
    source = {}
  return Problem(task="deblock", observation=jpeg, operator=operators.Identity(), image_size=jpeg.shape[:2],
                 input_view=jpeg, input_label="JPEG", clean=clean, source=source,
                 baselines={k: functools.partial(fn, jpeg) for k, fn in baselines_lib.DENOISERS.items()})


def super_resolution(*, low=None, clean=None, factor: int, kernel: str = "lanczos2") -> Problem:
  """Super-resolution: ``A = d`` (Lanczos-2 downsampling by ``factor``, the reference's loss).

  Without ``low``, the low-resolution image is made as the reference does (8-bit PIL
  Lanczos of ``clean``, cut to a multiple of the factor).
  """
  op = operators.Downsample(factor=factor, kernel=kernel)
  if low is None:
    clean = _image("clean", _need("clean", clean, "super-resolution without `low`"))
    clean = centre_crop(clean, 0, multiple=factor)
    low = corruptions.low_resolution(clean, factor)
    source = {"synthetic": f"PIL Lanczos x{factor} downscale (8-bit), high-res cut to a multiple of {factor}"}
  else:
    low = _image("low", low)
    h, w = low.shape[:2]
    if min(h, w) * factor < MIN_SIZE:
      raise ValueError(f"`low` is {w}x{h}; at x{factor} the output would be {w * factor}x{h * factor}, dipjax needs "
                       f"at least {MIN_SIZE}x{MIN_SIZE} (use a larger factor or image).")
    if clean is not None:
      clean = np.asarray(clean, np.float32)
      if clean.shape[:2] != (h * factor, w * factor):
        raise ValueError(f"`clean` is {clean.shape[1]}x{clean.shape[0]} but x{factor} of the {w}x{h} `low` is "
                         f"{w * factor}x{h * factor}; pass the matching high-resolution image.")
      clean = match_channels("clean", clean, low.shape[-1])
    source = {}
  h, w = low.shape[:2]
  nearest = np.repeat(np.repeat(low, factor, axis=0), factor, axis=1)
  return Problem(task="super_resolution", observation=low, operator=op, image_size=(h * factor, w * factor),
                 input_view=nearest, input_label=f"low-res x{factor} (nearest)", clean=clean, sr_factor=factor,
                 source=source, baselines={"bicubic": lambda: baselines_lib.bicubic_upscale(low, factor)})


def masked(task: str, *, image=None, clean=None, mask=None,
           synthetic_mask: Optional[Callable[[tuple], np.ndarray]] = None) -> Problem:
  """Inpainting / missing pixels: ``A(x) = x ⊙ m``. ``synthetic_mask(shape)`` is drawn when no ``mask`` is given.

  A real corrupted ``image`` needs its ``mask``; the observation is ``image ⊙ m``.
  """
  if image is None:
    image = _image("clean", _need("clean", clean, f"{task} without `image`"))
  else:
    image, clean = _observed("image", image, clean)
  source = {}
  if mask is None:
    if clean is None or synthetic_mask is None:
      raise ValueError(f"{task} of a real `image` needs its `mask` (1 / white = known pixel, 0 / black = hole).")
    mask = np.asarray(synthetic_mask(image.shape), np.float32)
    source["synthetic_mask"] = True
  mask = np.asarray(mask, np.float32)
  _same_size("mask", mask, "image", image)
  if mask.shape[-1] not in (1, image.shape[-1]):
    mask = mask[..., :1]
  known = float(np.mean(mask))
  if known == 0.0:
    raise ValueError("`mask` has no known pixel (it is all 0 / black); 1 / white marks the pixels to keep.")
  source["known_fraction"] = known
  observed = (image * mask).astype(np.float32)
  label = "masked" if task == "inpaint" else "missing pixels"
  return Problem(task=task, observation=observed, operator=operators.Mask(mask=mask), image_size=image.shape[:2],
                 input_view=observed, input_label=f"{label} ({known:.0%} known)", clean=clean, mask=mask,
                 source=source, baselines={"biharmonic": lambda: baselines_lib.biharmonic(observed, mask)})


def flash_no_flash(*, key: Optional[jax.Array] = None, noflash=None, flash=None, clean=None,
                   sigma_255: Optional[float] = None) -> Problem:
  """Flash / no-flash: ``A = I``, the target the no-flash image, the network input ``z`` the flash image.

  With only ``clean``: a synthetic pair (no-flash = clean + N(0, σ²), flash =
  :func:`dipjax.corruptions.synthetic_flash` of clean).
  """
  if noflash is None:
    if flash is not None:
      raise ValueError("`flash` needs its no-flash partner `noflash`.")
    clean = _image("clean", _need("clean", clean, "flash/no-flash without `noflash`"))
    sigma = float(_need("sigma_255", sigma_255, "a synthetic pair")) / 255.0
    noflash = np.asarray(corruptions.add_gaussian_noise(_need("key", key, "a synthetic pair"), clean, sigma=sigma))
    flash = corruptions.synthetic_flash(clean)
    source = {"synthetic": f"no-flash = clean + N(0, {sigma_255}/255); flash = relit clean"}
  else:
    noflash, clean = _observed("noflash", noflash, clean)
    flash = _image("flash", _need("flash", flash, "flash/no-flash (the flash image is the network input)"))
    _same_size("noflash", noflash, "flash", flash)
    source = {}
  return Problem(task="flash_no_flash", observation=noflash, operator=operators.Identity(),
                 image_size=noflash.shape[:2], input_view=noflash, input_label="no flash", clean=clean, z=flash,
                 source=source, baselines={"nlm": functools.partial(baselines_lib.non_local_means, noflash)})


def blur_kernel(config: presets_lib.TaskPreset) -> np.ndarray:
  """The synthetic blur kernel of a deblur preset: Gaussian of ``blur_sigma`` or motion of ``motion_length``/``angle``."""
  if config.blur == "motion":
    return blur_lib.motion_kernel(_need("motion_length", config.motion_length, "a motion blur"),
                                  _need("motion_angle", config.motion_angle, "a motion blur"))
  return blur_lib.gaussian_kernel(_need("blur_sigma", config.blur_sigma, "a Gaussian blur"))


def deblur(*, key: Optional[jax.Array] = None, blurred=None, clean=None, kernel, boundary: str = "circular",
           noise: Optional[SyntheticNoise] = None) -> Problem:
  """Non-blind deblurring: ``A = k ∗ ·`` (:class:`dipjax.operators.Blur`). Without ``blurred``: blur + ``noise``.

  With ``boundary='valid'`` the observation is smaller than the image by ``k − 1``
  (a real photo's blurred border depends on pixels outside the frame); its picture
  and the classical baselines (Wiener, Richardson–Lucy: scikit-image, circular /
  zero-padded models) see it edge-padded back to the image's size.
  """
  kernel = np.asarray(kernel, np.float32)
  op = operators.Blur(kernel=kernel, boundary=boundary)
  if blurred is None:
    clean = _image("clean", _need("clean", clean, "deblurring without `blurred`"))
    blurred = np.clip(np.asarray(op(clean)), 0.0, 1.0)
    described = f"blur {kernel.shape[1]}x{kernel.shape[0]} ({boundary})"
    if noise is not None:
      blurred = noise.add(_need("key", key, "synthetic noise"), blurred)
      described += " + " + noise.description
    source, sigma = {"synthetic": described}, None if noise is None else noise.sigma
  else:
    blurred = _image("blurred", blurred)
    source, sigma = {}, None
  image_size = op.image_shape(blurred.shape)[:2]
  if clean is not None:
    clean = match_channels("clean", np.asarray(clean, np.float32), blurred.shape[-1])
    if clean.shape[:2] != tuple(image_size):
      raise ValueError(f"`clean` is {clean.shape[1]}x{clean.shape[0]}, but a {boundary} blur by a {kernel.shape[1]}x"
                       f"{kernel.shape[0]} kernel of a {blurred.shape[1]}x{blurred.shape[0]} observation needs "
                       f"{image_size[1]}x{image_size[0]}.")
  dh, dw = image_size[0] - blurred.shape[0], image_size[1] - blurred.shape[1]
  view = np.pad(blurred, ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0)), mode="edge")
  return Problem(task="deblur", observation=blurred, operator=op, image_size=tuple(image_size), input_view=view,
                 input_label="blurred", clean=clean, noise_sigma=sigma, source=source,
                 baselines={"wiener": functools.partial(blur_lib.wiener, view, kernel, balance=WIENER_BALANCE),
                            "richardson_lucy": functools.partial(blur_lib.richardson_lucy, view, kernel)})


WIENER_BALANCE = 0.01  # the Wiener baseline's regularisation weight (fixed, not tuned per image)


def make_problem(key: Optional[jax.Array], task: str, config: presets_lib.TaskPreset, *, image=None, clean=None,
                 mask=None, flash=None, kernel=None) -> Problem:
  """The problem of ``task`` from the images given, with the corruption settings of ``config``.

  Args:
    key: PRNG key of a random synthetic corruption (noise, Bernoulli mask); None where there is none.
    task: one of :data:`dipjax.presets.TASKS`.
    config: its preset (``sigma``, ``jpeg_quality``, ``factor``/``kernel``, ``mask_kind``,
      ``keep_fraction``/``per_channel_mask`` are read here).
    image: the real observation (the low-resolution image for super-resolution, the
      no-flash image for flash/no-flash), or None to synthesise it from ``clean``.
    clean: the ground truth (for evaluation, and to synthesise the observation).
    mask: ``(H, W, 1|C)`` mask (inpaint, restore), 1 = known pixel.
    flash: the flash image (flash_no_flash).
    kernel: ``(kh, kw)`` blur kernel (deblur; default the preset's synthetic kernel).
  """
  if task not in presets_lib.TASKS:
    raise ValueError(f"unknown task {task!r}; choose one of {list(presets_lib.TASKS)}.")
  if image is None and clean is None:
    raise ValueError("pass the observation `image`, the ground truth `clean`, or both.")
  extra = {"mask": mask} if task not in ("inpaint", "restore") else {}
  extra.update({"flash": flash} if task != "flash_no_flash" else {})
  extra.update({"kernel": kernel} if task != "deblur" else {})
  for name, value in extra.items():
    if value is not None:
      raise ValueError(f"`{name}` does not apply to {task}.")
  if task == "denoise":
    return denoise(key=key, noisy=image, clean=clean, noise=synthetic_noise(config) if image is None else None)
  if task == "deblur":
    return deblur(key=key, blurred=image, clean=clean, kernel=blur_kernel(config) if kernel is None else kernel,
                  boundary=config.boundary or "circular", noise=synthetic_noise(config) if image is None else None)
  if task == "deblock":
    return deblock(jpeg=image, clean=clean, quality=config.jpeg_quality)
  if task == "super_resolution":
    return super_resolution(low=image, clean=clean, factor=config.factor, kernel=config.kernel)
  if task == "flash_no_flash":
    return flash_no_flash(key=key, noflash=image, flash=flash, clean=clean, sigma_255=config.sigma)
  if task == "inpaint":
    synthetic = corruptions.text_mask if config.mask_kind == "text" else corruptions.box_mask
    return masked("inpaint", image=image, clean=clean, mask=mask, synthetic_mask=lambda shape: synthetic(shape[:2]))
  draw = lambda shape: np.asarray(corruptions.bernoulli_mask(
      _need("key", key, "a synthetic Bernoulli mask"), tuple(shape), keep_fraction=config.keep_fraction,
      per_channel=bool(config.per_channel_mask)))
  return masked("restore", image=image, clean=clean, mask=mask, synthetic_mask=draw)


def restore_problem(key: jax.Array, problem: Problem, config: presets_lib.TaskPreset, **kwargs):
  """:func:`dipjax.restore` of a :class:`Problem` (its observation, operator, size, ground truth, ``z``, noise level).

  ``kwargs``: the other options of :func:`dipjax.restore` (``seeds``, ``stop``, ``chunk``, ``tile``, ``log``, ...).
  """
  return restore_lib.restore(key, problem.observation, problem.operator, config, clean=problem.clean, z=problem.z,
                             noise_sigma=problem.noise_sigma, image_size=problem.image_size, **kwargs)
