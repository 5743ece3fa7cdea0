r"""What every task entry point shares: flags, inputs, the chunked fit, progress and outputs.

A task module (``experiments/denoise.py`` etc.) only says how to build its
:class:`Problem` -- the observation ``x0``, the forward operator ``A`` on the restored
image, the optional ground truth, mask or input image, and its classical baselines --
from the loaded images and the preset. :func:`run_task` does the rest:

1. the network is built from the preset and fitted on the smallest **canvas** it
   accepts (``dipjax.canvas``): ``A_canvas(x) = A(crop(x))``, so any ``H x W >= 32``
   works and the result comes back at the original size (no silent centre crop);
2. ``S`` seeds are fitted in one compiled program (``dipjax.map_seeds``), in chunks
   of ``--chunk`` steps; chunking does not change the result (the scan carry holds all
   state and per-step noise is ``fold_in(key, step)``); between chunks a progress bar
   with steps/s, ETA, the loss and the PSNRs is printed;
3. everything is written atomically into ``--out_dir`` (see :data:`OUTPUT_FILES`).

Data convention as in the library: float32 ``(H, W, C)`` images in ``[0, 1]``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import sys
import tempfile
import time
import warnings
from typing import Callable, Optional

from absl import app, flags

import jax
import jax.numpy as jnp
import numpy as np

import dipjax
from dipjax import canvas as canvas_lib
from dipjax import image_io, presets as presets_lib

MIN_SIZE = 32  # smallest side of a restored image
# Canvases (x vmapped seeds) above this many pixels get a memory estimate before compiling (two probe compiles,
# dipjax.memory); smaller ones need < 1.5 GB with every preset and are checked on the compiled program only.
PROBE_ABOVE_PIXELS = 256 * 256

OUTPUT_FILES = {
    "input.png": "the corrupted input (for super-resolution the low-resolution image; for inpainting the "
                 "masked image)",
    "output.png": "f_θ(z) after the last step (seed 0), at the input's original size and mode",
    "ema.png": "the exponential moving average of the outputs (seed 0)",
    "stopped.png": "the output at the step the early-stopping criterion detected (seed 0; no ground truth used)",
    "ensemble.png": "mean of the seeds' final outputs (only with --seeds > 1)",
    "ensemble_ema.png": "mean of the seeds' EMAs (only with --seeds > 1)",
    "clean.png": "the ground truth, when known",
    "mask.png": "the mask (inpainting, restoration)",
    "baseline_<name>.png": "classical baselines (only with --baselines)",
    "comparison.png": "side-by-side strip: input | output | EMA | [ensemble] | [baselines] | [ground truth]",
    "curves.png": "loss and PSNR against steps, best step marked when the ground truth is known",
    "metrics.json": "preset, flags, versions, device, timings, PSNR/SSIM summary and per-step curves",
    "steps/output_<step>.png": "f_θ(z) every --save_every steps (seed 0)",
    "checkpoint.msgpack": "the full run state (with --checkpoint_every), for --resume",
}

FLAGS = flags.FLAGS
flags.DEFINE_string("image", None, "The corrupted image to restore (no-flash image for flash_no_flash, low-resolution "
                    "image for super_resolution). Without it the corruption is synthesised from --clean, or from an "
                    "image bundled with scikit-image.")
flags.DEFINE_string("clean", None, "Ground truth, for evaluation (and to synthesise the input when --image is absent).")
flags.DEFINE_string("mask", None, "Mask image (white = known pixel, black = hole) for inpaint/restore.")
flags.DEFINE_string("flash", None, "flash_no_flash: the flash image (the network input).")
flags.DEFINE_string("preset", None, "Task preset (see --helpfull); default: the first paper preset on a GPU/TPU, "
                    "'cpu' otherwise.")
flags.DEFINE_integer("steps", None, "Override the preset's number of Adam steps.")
flags.DEFINE_float("lr", None, "Override the preset's learning rate.")
flags.DEFINE_float("reg_noise_std", None, "Override the preset's input perturbation σ_p.")
flags.DEFINE_integer("crop", None, "Centre-crop the images to this size (of the restored image) first; default: the "
                     "preset's crop for the bundled image, none for your own images.")
flags.DEFINE_float("sigma", None, "denoise / flash_no_flash: std of the synthetic Gaussian noise, 0-255 scale.")
flags.DEFINE_integer("jpeg_quality", None, "deblock: JPEG quality of the synthetic input.")
flags.DEFINE_integer("factor", None, "super_resolution: scale factor (2..8; the paper uses 4 and 8).")
flags.DEFINE_string("kernel", None, "super_resolution: downsampler in the loss (lanczos2, lanczos3, box, gauss).")
flags.DEFINE_float("keep_fraction", None, "restore: fraction of known pixels of the synthetic Bernoulli mask.")
flags.DEFINE_integer("seeds", 1, "Number of seeds fitted in one program; > 1 adds their ensemble.")
flags.DEFINE_integer("seed", 0, "Base random seed (synthetic corruption and fits).")
flags.DEFINE_string("out_dir", None, "Output folder (default runs/<task>).")
flags.DEFINE_integer("save_every", 0, "Also save the output every this many steps into out_dir/steps (0: never).")
flags.DEFINE_bool("baselines", False, "Also run the classical baselines (scikit-image) and report them.")
flags.DEFINE_integer("chunk", 100, "Steps per compiled chunk (progress is printed between chunks).")
flags.DEFINE_enum("stop_criterion", "emv", ["emv", "wmv", "discrepancy"], "Early-stopping criterion (no ground truth "
                  "needed) whose detected output is saved as stopped.png; all available criteria are reported.")
flags.DEFINE_integer("stop_patience", 200, "Steps without a new minimum of the criterion's score before it fires.")
flags.DEFINE_integer("stop_window", 100, "Window of the ES-WMV criterion (outputs kept in the carry).")
flags.DEFINE_bool("early_stop", False, "End the run once the criterion has fired for every seed (the output at the "
                  "detected step is kept either way).")
flags.DEFINE_integer("checkpoint_every", 0, "Write out_dir/checkpoint.msgpack (the full run state) at the first chunk "
                     "boundary at or after every this many steps (0: never).")
flags.DEFINE_bool("resume", False, "Continue from out_dir/checkpoint.msgpack (same flags and inputs): the result is "
                  "bit-identical to a run that was never interrupted.")
flags.DEFINE_integer("tile", 0, "Fit the image in overlapping tiles of this size (all in one batched program) and "
                     "blend them; for images too large to fit at once (not for super_resolution). 0: no tiling.")
flags.DEFINE_integer("tile_overlap", 32, "Overlap of neighbouring tiles in pixels (blended with linear ramps).")
flags.DEFINE_integer("max_nonfinite", 50, "End the run when this many steps in a row were non-finite (diverged).")

# The corruption flags each task accepts; others are refused rather than silently ignored.
TASK_FLAGS = {
    "denoise": ("sigma",),
    "deblock": ("jpeg_quality",),
    "super_resolution": ("factor", "kernel"),
    "inpaint": ("mask",),
    "restore": ("mask", "keep_fraction"),
    "flash_no_flash": ("flash", "sigma"),
}
_ALL_TASK_FLAGS = ("sigma", "jpeg_quality", "factor", "kernel", "keep_fraction", "mask", "flash")


@dataclasses.dataclass(frozen=True)
class StopOptions:
  """Early stopping and divergence handling of a run (``dipjax.stopping``)."""

  criterion: str = "emv"  # the criterion whose detection is saved as stopped.png and ends the run with early_stop
  patience: int = 200  # steps without a new minimum before a criterion fires
  window: int = 100  # ES-WMV window
  early_stop: bool = False  # end the run once `criterion` fired for every seed
  max_nonfinite: int = 50  # end the run after this many non-finite steps in a row

  def criteria(self, noise_sigma: Optional[float]) -> tuple:
    """EMV and WMV always; the discrepancy principle when the noise level is known or estimated."""
    out = (dipjax.stopping.EMV(patience=self.patience, warmup=self.window), dipjax.stopping.WMV(window=self.window,
                                                                           patience=self.patience))
    if noise_sigma is not None:
      out += (dipjax.stopping.Discrepancy(noise_var=float(noise_sigma) ** 2),)
    if self.criterion not in [c.name for c in out]:
      raise ValueError(f"--stop_criterion={self.criterion} needs the noise level, which this task does not know; "
                       "use emv or wmv.")
    return out




@dataclasses.dataclass
class Problem:
  """One restoration problem, in the library's convention (float32 HWC in [0, 1])."""

  target: np.ndarray  # x0: what A(restored) is fitted to; (H, W, C), or (H/f, W/f, C) for super-resolution
  size: tuple[int, int]  # (H, W) of the restored image
  operator: Callable  # A(x, mask): restored (H, W, C) -> target space; `mask` is the (window of the) mask or None
  input_view: np.ndarray  # (H, W, C): the corrupted input shown in the strip and saved as input.png's preview
  input_image: np.ndarray  # what input.png holds (the observation as given)
  input_label: str  # "noisy", "JPEG", "low-res", ...
  clean: Optional[np.ndarray] = None  # (H, W, C) ground truth
  z_image: Optional[np.ndarray] = None  # (H, W, C_z): an image used as the network input (flash)
  mask: Optional[np.ndarray] = None  # (H, W, 1|C), 1 = known pixel
  baselines: dict = dataclasses.field(default_factory=dict)  # name -> () -> (H, W, C) image
  info: Optional[image_io.ImageInfo] = None  # the observed file's mode (the output is written in kind)
  sr_factor: Optional[int] = None  # super-resolution: also report the paper's Y-channel PSNR
  noise_sigma: Optional[float] = None  # std of the observation noise ([0, 1] scale) when known or estimated
  source: dict = dataclasses.field(default_factory=dict)  # where the images came from (saved in metrics.json)


@dataclasses.dataclass
class Inputs:
  """The images named on the command line, loaded (None where not given)."""

  image: Optional[np.ndarray] = None
  clean: Optional[np.ndarray] = None
  mask_path: Optional[str] = None
  flash: Optional[np.ndarray] = None
  info: Optional[image_io.ImageInfo] = None  # of --image, else of --clean
  crop: int = 0
  bundled: Optional[str] = None  # name of the skimage image used when neither --image nor --clean is given
  paths: dict = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------------


def bundled_image(name: str = "astronaut") -> np.ndarray:
  """An image that ships with scikit-image (no download), float32 HWC in [0, 1]."""
  from skimage import data

  arr = np.asarray(getattr(data, name)(), np.float32) / 255.0
  return arr[..., None] if arr.ndim == 2 else arr[..., :3]


def centre_crop(image: np.ndarray, size: int, *, multiple: int = 1) -> np.ndarray:
  """Centre ``size x size`` crop (sides shorter than ``size`` are kept), then each side cut to a multiple of ``multiple``."""
  h, w = image.shape[:2]
  if size and size > 0:
    th, tw = min(h, size), min(w, size)
  else:
    th, tw = h, w
  th, tw = th - th % multiple, tw - tw % multiple
  top, left = (h - th) // 2, (w - tw) // 2
  return image[top:top + th, left:left + tw]


def check_min_size(name: str, image: np.ndarray, minimum: int = MIN_SIZE) -> None:
  h, w = image.shape[:2]
  if min(h, w) < minimum:
    raise ValueError(f"{name} is {w}x{h} pixels; dipjax needs at least {minimum}x{minimum} (upscale or use a "
                     "larger image).")


def check_same_size(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
  if a.shape[:2] != b.shape[:2]:
    raise ValueError(f"{name_a} is {a.shape[1]}x{a.shape[0]} but {name_b} is {b.shape[1]}x{b.shape[0]}; "
                     "they must have the same size.")


def match_channels(name: str, image: np.ndarray, channels: int) -> np.ndarray:
  """Gray -> RGB by repetition; RGB -> gray is refused (it would change the task)."""
  if image.shape[-1] == channels:
    return image
  if image.shape[-1] == 1 and channels == 3:
    return np.repeat(image, 3, axis=-1)
  raise ValueError(f"{name} has {image.shape[-1]} channels but the input has {channels}; pass images of one mode.")


def observed_and_clean(inputs: "Inputs") -> tuple[np.ndarray, Optional[np.ndarray]]:
  """``--image`` and the optional ``--clean`` of a task whose observation is pixel-aligned with the result.

  Both are centre-cropped by ``inputs.crop``; the observation must be at least
  :data:`MIN_SIZE`, and the ground truth of its size (gray ground truth is repeated to
  a colour observation's channels).
  """
  image = centre_crop(inputs.image, inputs.crop)
  check_min_size("--image", image)
  clean = None if inputs.clean is None else centre_crop(inputs.clean, inputs.crop)
  if clean is not None:
    check_same_size("--image", image, "--clean", clean)
    clean = match_channels("--clean", clean, image.shape[-1])
  return image, clean


def ensure_writable(out_dir: str) -> None:
  """Creates ``out_dir`` and checks a file can be written there, before any work is done."""
  try:
    os.makedirs(out_dir, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".write-test-")
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise ValueError(f"output directory {out_dir!r} is not writable ({e.strerror or e}); pass a writable --out_dir.") \
        from None


# ---------------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------------


def _fmt_seconds(seconds: float) -> str:
  seconds = max(0, int(round(seconds)))
  return f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(done: int, total: int, elapsed: float, last: dict, *, has_clean: bool, width: int = 20) -> str:
  """``[#####-----] 500/1000 | 6.8 steps/s | ETA 1m13s | loss 5.1e-03 | PSNR(input) 26.10 | ...``"""
  filled = int(round(width * done / max(total, 1)))
  rate = done / max(elapsed, 1e-9)
  msg = (f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} | {rate:.1f} steps/s | "
         f"ETA {_fmt_seconds((total - done) / max(rate, 1e-9))} | loss {last['loss']:.3e} | "
         f"PSNR(input) {last['psnr_target']:.2f}")
  if has_clean:
    msg += f" | PSNR(clean) {last['psnr_clean']:.2f} | EMA {last['ema_psnr_clean']:.2f}"
  return msg


def versions() -> dict:
  out = {"dipjax": dipjax.__version__, "python": sys.version.split()[0]}
  for pkg in ("jax", "jaxlib", "flax", "optax", "numpy", "scikit-image", "pillow"):
    try:
      out[pkg] = importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
      out[pkg] = None
  return out


def build_fit(preset: presets_lib.TaskPreset, problem: Problem, *, stopping: tuple = (),
              size: Optional[tuple[int, int]] = None):
  """The model, canvas, base loop and ``loop_for(mask)`` of ``problem`` (or of its ``size`` windows) under ``preset``.

  ``loop_for(mask)`` builds the fit loop whose forward operator is
  ``problem.operator(crop(x), mask)``, so one compiled program serves every window
  (the mask is an argument, not a constant); ``init``/``render``/``unravel`` do not
  depend on it.
  """
  size = tuple(size or problem.size)
  channels = problem.target.shape[-1]
  model = dipjax.get_model(preset.model, out_channels=channels)
  canvas = canvas_lib.canvas_for(model, size)
  input_kind = "noise" if preset.input_kind == "image" else preset.input_kind

  def loop_for(mask):
    return dipjax.make_fit_loop(model, forward=lambda x: problem.operator(canvas.crop(x), mask), readout=canvas.crop,
                                learning_rate=preset.learning_rate, reg_noise_std=preset.reg_noise_std,
                                ema_decay=preset.ema_decay, guard_every=preset.guard_every, input_kind=input_kind,
                                input_channels=preset.input_channels, stopping=stopping)

  if preset.input_kind == "image" and problem.z_image is None:
    raise ValueError(f"preset {preset.task} uses an image as the network input, but none was given.")
  return model, canvas, loop_for(None), loop_for


def _cut(array, corners, hw):
  if array is None:
    return None
  h, w = hw
  return np.stack([np.asarray(array)[y:y + h, x:x + w] for y, x in corners])


def _per_fit_to_per_seed(curves, tiles: int, seeds: int):
  """Curves of ``tiles x seeds`` fits -> per seed: losses averaged, PSNRs from the mean squared error over tiles."""
  if tiles == 1:
    return curves
  def reduce(name, a):
    a = np.asarray(a).reshape((tiles, seeds) + np.shape(a)[1:])
    if a.dtype == bool:
      return a.any(axis=0)
    if name.startswith("psnr") or name.startswith("ema_psnr"):
      with np.errstate(divide="ignore"):
        return -10.0 * np.log10(np.mean(10.0 ** (-a / 10.0), axis=0))
    return a.mean(axis=0)
  return type(curves)(**{k: reduce(k, v) for k, v in curves._asdict().items()})


def run_task(preset: presets_lib.TaskPreset, problem: Problem, *, seeds: int = 1, seed: int = 0,
             out_dir: str, chunk: int = 100, save_every: int = 0, baselines: bool = False,
             stop: StopOptions = StopOptions(), checkpoint_every: int = 0, resume: bool = False,
             tile: int = 0, tile_overlap: int = 32,
             config: Optional[dict] = None, log: Callable[[str], None] = print) -> dict:
  """Fits ``problem`` with ``preset`` for ``seeds`` seeds and writes every output into ``out_dir``.

  With ``tile > 0`` the image is cut into overlapping ``tile x tile`` windows
  (``dipjax.tiling``) fitted in one batched program and blended back.

  Returns the dictionary saved as ``metrics.json``.
  """
  t_start = time.perf_counter()
  if seeds < 1:
    raise ValueError(f"`seeds` must be >= 1, got {seeds}.")
  if chunk < 1:
    raise ValueError(f"`chunk` must be >= 1, got {chunk}.")
  if save_every < 0:
    raise ValueError(f"`save_every` must be >= 0, got {save_every}.")
  if checkpoint_every < 0:
    raise ValueError(f"`checkpoint_every` must be >= 0, got {checkpoint_every}.")
  if tile < 0:
    raise ValueError(f"`tile` must be >= 0, got {tile}.")
  ensure_writable(out_dir)
  if tile:
    if problem.target.shape[:2] != tuple(problem.size):
      raise ValueError(f"--tile is not supported for {preset.task} (its observation is not pixel-aligned with the "
                       "output); use --crop.")
    if tile < MIN_SIZE:
      raise ValueError(f"--tile must be at least {MIN_SIZE}, got {tile}.")
    corners = dipjax.tiling.windows(problem.size, tile=tile, overlap=tile_overlap)
    win = (tile, tile)
  else:
    corners, win = [(0, 0)], tuple(problem.size)
  n_tiles = len(corners)
  batch = n_tiles * seeds  # fits, tile-major: fit b is tile b // seeds, seed b % seeds
  criteria = stop.criteria(problem.noise_sigma)
  primary = [c.name for c in criteria].index(stop.criterion)
  model, canvas, loop, loop_for = build_fit(preset, problem, stopping=criteria, size=win)
  if canvas.padded:
    log(f"image {win[1]}x{win[0]} fitted on a {canvas.width}x{canvas.height} canvas "
        f"(the network needs {model.min_size}+ px, multiples of {model.size_multiple}); the output is cropped back")
  if n_tiles > 1:
    log(f"{n_tiles} tiles of {tile}x{tile} (overlap {tile_overlap}) x {seeds} seed(s) = {batch} fits in one program")

  baseline_images, baseline_s = {}, {}
  if baselines:
    for name, fn in problem.baselines.items():
      t0 = time.perf_counter()
      baseline_images[name] = np.asarray(fn(), np.float32)
      baseline_s[name] = time.perf_counter() - t0
      log(f"baseline {name}: {baseline_s[name]:.1f} s")

  rep = lambda a: None if a is None else jnp.asarray(np.repeat(a, seeds, axis=0), jnp.float32)
  targets = rep(_cut(problem.target, corners, win))
  cleans = rep(_cut(problem.clean, corners, win))
  masks = rep(_cut(problem.mask, corners, win))
  z_images = None
  if preset.input_kind == "image":
    z_images = rep(np.stack([canvas.pad(t) for t in _cut(problem.z_image, corners, win)]))
  dipjax.check_fit_inputs(model, targets[0], forward=lambda x: problem.operator(canvas.crop(x), masks[0] if masks
                                                                                 is not None else None),
                          readout=canvas.crop, clean=None if cleans is None else cleans[0],
                          z=None if z_images is None else z_images[0], out_shape=(canvas.height, canvas.width))
  seed_keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), 1), seeds)
  if n_tiles == 1:
    keys = seed_keys
  else:
    keys = jnp.concatenate([jax.vmap(lambda k, t=t: jax.random.fold_in(k, t))(seed_keys) for t in range(n_tiles)])
  out_hw = (canvas.height, canvas.width)
  init = jax.jit(lambda ks, zs: jax.vmap(lambda k, zi: loop.init(k, out_hw, z=zi))(ks, zs))
  chunk_len = save_every if save_every else chunk
  lengths = sorted({min(chunk_len, preset.steps), preset.steps % chunk_len or min(chunk_len, preset.steps)})

  def make_program(n):
    def one(args):
      st, tg, cl, mk = args
      return loop_for(mk).run(st, tg, clean=cl, num_steps=n)[:2]
    return jax.jit(lambda st, tg, cl, mk: dipjax.map_seeds(one, (st, tg, cl, mk)))

  group = 1 if jax.default_backend() == "cpu" else batch  # dipjax.map_seeds' default
  what = f"this run ({batch} fit(s) of {canvas.width}x{canvas.height})"
  memory_estimate = None
  if canvas.height * canvas.width * group > PROBE_ABOVE_PIXELS:
    side = max(32, model.min_size, model.size_multiple)
    per_group = dipjax.memory.estimate_bytes(loop, out_hw, channels=problem.target.shape[-1], seeds=group,
                                             probe=(side, side))
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(
        jax.eval_shape(lambda k: loop.init(k, out_hw, z=None if z_images is None else z_images[0]),
                       jax.random.key(0))) if hasattr(x, "size"))
    memory_estimate = per_group + 2 * (batch - group) * state_bytes
    log(f"memory estimate before compiling: {memory_estimate / 2**30:.2f} GiB")
    dipjax.memory.check_fits(memory_estimate, what=what)
  t0 = time.perf_counter()
  state = init(keys, z_images)
  ckpt_path = os.path.join(out_dir, "checkpoint.msgpack")
  ckpt_config = dict(preset=preset.to_dict(), seeds=seeds, seed=seed, stop=[list(c) for c in criteria],
                     tile=tile, tile_overlap=tile_overlap if tile else None,
                     target_sha256=_sha256(problem.target), clean_sha256=_sha256(problem.clean),
                     z_sha256=_sha256(problem.z_image), mask_sha256=_sha256(problem.mask))
  if resume:  # before compiling: a missing, foreign or mismatched checkpoint fails fast
    state, extra = dipjax.checkpoint.load(ckpt_path, state, config=ckpt_config)
  programs = {n: make_program(n).lower(state, targets, cleans, masks).compile() for n in lengths}
  program_bytes = max(dipjax.memory.program_bytes(c) for c in programs.values())
  dipjax.memory.check_fits(program_bytes, what=what)
  render_all = jax.jit(jax.vmap(lambda s: canvas.crop(loop.render(s))))
  compile_s = time.perf_counter() - t0
  log(f"compiled in {compile_s:.1f} s; fitting {preset.steps} steps x {batch} fit(s) on "
      f"{jax.devices()[0].device_kind} ({jax.default_backend()})")

  def per_seed(images):  # (batch, h, w, C) -> (seeds, H, W, C)
    images = np.asarray(images)
    if n_tiles == 1:
      return images
    by_tile = images.reshape((n_tiles, seeds) + images.shape[1:])
    return np.stack([dipjax.tiling.blend(by_tile[:, s], corners, problem.size, overlap=tile_overlap)
                     for s in range(seeds)])

  curves, done, t_run, ended = [], 0, time.perf_counter(), None
  if resume:
    done = int(np.asarray(state.step).max())
    if done:
      curves.append(dipjax.StepMetrics(**{k: extra[k] for k in dipjax.StepMetrics._fields}))
    log(f"resumed from {ckpt_path} at step {done}")
  while done < preset.steps:
    n = min(chunk_len, preset.steps - done)
    state, m = jax.block_until_ready(programs[n](state, targets, cleans, masks))
    curves.append(m)
    done += n
    if checkpoint_every and (done // checkpoint_every > (done - n) // checkpoint_every or done == preset.steps):
      so_far = {k: np.concatenate([np.asarray(getattr(c, k)) for c in curves], axis=1)
                for k in dipjax.StepMetrics._fields}
      dipjax.checkpoint.save(ckpt_path, state, config=ckpt_config, extra=so_far)
    last = {k: float(np.asarray(v)[0, -1]) for k, v in m._asdict().items() if np.ndim(v) == 2}
    log(progress_line(done, preset.steps, time.perf_counter() - t_run, last, has_clean=cleans is not None))
    if save_every and done % save_every == 0:
      image_io.save_image(os.path.join(out_dir, "steps", f"output_{done:06d}.png"),
                          per_seed(render_all(state))[0])
    streak = np.asarray(state.nonfinite_streak)
    if streak.max() >= stop.max_nonfinite:
      ended = (f"the optimisation diverged: {int(streak.max())} non-finite steps in a row (fit "
               f"{int(streak.argmax())}) by step {done}; the outputs of the last good state were written; "
               "lower --lr or check the input")
      log(f"error: {ended}")
      break
    if stop.early_stop and bool(np.all(np.asarray(state.stop[primary].stopped))):
      at = np.asarray(state.stop[primary].stopped_at).tolist()
      log(f"early stop: {stop.criterion} fired for every fit (at steps {at}); ending at step {done}")
      break
  run_s = time.perf_counter() - t_run
  steps_run = done
  curves = jax.tree_util.tree_map(lambda *a: np.concatenate([np.asarray(x) for x in a], axis=1), *curves)
  curves = _per_fit_to_per_seed(curves, n_tiles, seeds)

  rendered = np.asarray(render_all(state))
  outputs = per_seed(rendered)
  emas = per_seed(jax.vmap(canvas.crop)(state.ema))
  detected_images = []
  for st in state.stop:
    d = np.asarray(jax.vmap(canvas.crop)(st.output))
    never = np.asarray(st.best_step) == 0  # nothing detected (yet): keep the last output
    detected_images.append(per_seed(np.where(never[:, None, None, None], rendered, d)))
  results = {"output": outputs[0], "ema": emas[0], "stopped": detected_images[primary][0]}
  if seeds > 1:
    results["ensemble"] = outputs.mean(axis=0)
    results["ensemble_ema"] = emas.mean(axis=0)
  bit_depth = 16 if (problem.info is not None and problem.info.bit_depth == 16
                     and problem.target.shape[-1] == 1) else 8

  # --- files ---
  join = lambda name: os.path.join(out_dir, name)
  image_io.save_image(join("input.png"), problem.input_image, bit_depth=bit_depth)
  for name, image in results.items():
    image_io.save_image(join(f"{name}.png"), image, bit_depth=bit_depth)
  if problem.mask is not None:
    image_io.save_image(join("mask.png"), np.asarray(problem.mask)[..., :1] if np.all(
        problem.mask == problem.mask[..., :1]) else problem.mask)
  for name, image in baseline_images.items():
    image_io.save_image(join(f"baseline_{name}.png"), image, bit_depth=bit_depth)
  if problem.clean is not None:
    image_io.save_image(join("clean.png"), problem.clean, bit_depth=bit_depth)

  summary = _summary(problem, results, outputs, emas, baseline_images, curves)
  summary["stopping"] = _stopping_summary(criteria, state.stop, curves, primary, detected_images, problem.clean)
  strip = [(problem.input_view, problem.input_label)] + [(im, name.replace("_", " ")) for name, im in results.items()]
  strip += [(im, name) for name, im in baseline_images.items()]
  if problem.clean is not None:
    psnrs = summary["psnr"]
    strip = [(im, f"{label} {psnrs[key]:.2f} dB") for (im, label), key in
             zip(strip, ["input"] + list(results) + [f"baseline_{n}" for n in baseline_images])]
    strip.append((problem.clean, "ground truth"))
  image_io.save_strip(join("comparison.png"), [im for im, _ in strip], [lb for _, lb in strip])
  from dipjax import plotting  # matplotlib is imported only when a plot is drawn
  plotting.plot_curves(join("curves.png"), loss=curves.loss, psnr_target=curves.psnr_target,
                       psnr_clean=curves.psnr_clean if cleans is not None else None,
                       ema_psnr_clean=curves.ema_psnr_clean if cleans is not None else None,
                       title=f"{preset.task}: {problem.size[1]}x{problem.size[0]}, {seeds} seed(s)"
                             + (f", {n_tiles} tiles" if n_tiles > 1 else ""))

  metrics = dict(
      task=preset.task, preset=preset.to_dict(), config=config or {}, source=problem.source,
      seeds=seeds, seed=seed, image_size=list(problem.size), channels=int(problem.target.shape[-1]),
      canvas=[canvas.height, canvas.width], tiles=dict(count=n_tiles, size=tile, overlap=tile_overlap,
                                                       corners=corners) if tile else None,
      model_params=dipjax.count_params(loop.unravel(jax.tree_util.tree_map(lambda a: a[0], state))["net"]),
      versions=versions(), device=str(jax.devices()[0].device_kind), backend=jax.default_backend(),
      compile_s=compile_s, run_s=run_s, s_per_step=run_s / max(steps_run, 1), wall_s=None,
      steps_run=steps_run, ended=ended, memory_estimate_bytes=memory_estimate, program_bytes=program_bytes,
      num_nonfinite=np.asarray(state.num_nonfinite).tolist(),
      baseline_s=baseline_s, num_rollbacks=np.asarray(state.num_rollbacks).tolist(),
      summary=summary, curves={k: np.asarray(v).tolist() for k, v in curves._asdict().items()},
      files=sorted(os.path.relpath(os.path.join(r, f), out_dir) for r, _, fs in os.walk(out_dir) for f in fs
                   if not f.startswith(".")) + ["metrics.json"],
  )
  metrics["wall_s"] = time.perf_counter() - t_start
  image_io.save_json(join("metrics.json"), metrics)
  return metrics


def _sha256(array) -> Optional[str]:
  if array is None:
    return None
  import hashlib
  return hashlib.sha256(np.ascontiguousarray(np.asarray(array, np.float32)).tobytes()).hexdigest()


def _stopping_summary(criteria, stop_states, curves, primary: int, detected_images, clean) -> dict:
  """Per criterion: detected step and firing per fit; with ground truth, per seed the PSNR of the detected output
  (blended over tiles) and of the per-step output at the best (oracle) and last steps."""
  out = {"primary": criteria[primary].name}
  curve = np.asarray(curves.psnr_clean)
  for criterion, st, images in zip(criteria, stop_states, detected_images):
    entry = dict(detected_step=np.asarray(st.best_step).tolist(), fired=np.asarray(st.stopped).tolist(),
                 fired_at=np.asarray(st.stopped_at).tolist(), patience=criterion.patience)
    if clean is not None:
      # Nothing detected (yet) for a fit: its result is its last output, so that is what is scored.
      entry["psnr_detected"] = [float(dipjax.psnr(jnp.asarray(im), jnp.asarray(clean))) for im in images]
      entry["psnr_best"] = [float(np.nanmax(c)) for c in curve]
      entry["psnr_last"] = [float(c[-1]) for c in curve]
      entry["gap_to_best"] = [b - d for b, d in zip(entry["psnr_best"], entry["psnr_detected"])]
    out[criterion.name] = entry
  return out


def _summary(problem: Problem, results: dict, outputs, emas, baseline_images: dict, curves) -> dict:
  """PSNR/SSIM of every image against the ground truth (empty dicts without it) and the best steps."""
  summary = {"psnr": {}, "ssim": {}}
  if problem.clean is None:
    summary["final_psnr_target"] = np.asarray(curves.psnr_target)[:, -1].tolist()
    return summary
  clean = np.asarray(problem.clean, np.float32)
  psnr = lambda x: float(dipjax.psnr(jnp.asarray(x, jnp.float32), jnp.asarray(clean)))
  images = {"input": problem.input_view, **results, **{f"baseline_{k}": v for k, v in baseline_images.items()}}
  for name, image in images.items():
    summary["psnr"][name] = psnr(image)
    summary["ssim"][name] = dipjax.ssim(image, clean)
  if problem.sr_factor and clean.shape[-1] == 3:
    summary["psnr_y"] = {name: dipjax.psnr_sr(image, clean) for name, image in images.items()}
  curve = np.asarray(curves.psnr_clean)
  summary["psnr_output_per_seed"] = [psnr(o) for o in outputs]
  summary["psnr_ema_per_seed"] = [psnr(o) for o in emas]
  summary["best_step_per_seed"] = [int(np.nanargmax(c)) + 1 for c in curve]
  summary["best_psnr_per_seed"] = [float(np.nanmax(c)) for c in curve]
  summary["last_psnr_per_seed"] = [float(c[-1]) for c in curve]
  return summary


# ---------------------------------------------------------------------------------------------------------------------
# The absl main shared by the entry points
# ---------------------------------------------------------------------------------------------------------------------


def load_inputs(task: str, preset: presets_lib.TaskPreset) -> Inputs:
  """Loads --image/--clean/--flash (and remembers --mask) with the crop rule; one-line ValueErrors."""
  crop = FLAGS.crop
  inputs = Inputs(mask_path=FLAGS.mask, paths=dict(image=FLAGS.image, clean=FLAGS.clean, mask=FLAGS.mask,
                                                    flash=FLAGS.flash))
  if FLAGS.image:
    inputs.image, inputs.info = image_io.read_image(FLAGS.image)
  if FLAGS.clean:
    inputs.clean, info = image_io.read_image(FLAGS.clean)
    inputs.info = inputs.info or info
  if FLAGS.flash:
    inputs.flash, _ = image_io.read_image(FLAGS.flash)
  if inputs.image is None and inputs.clean is None:
    crop = preset.crop if crop is None else crop
  inputs.crop = crop or 0
  return inputs


def make_main(task: str, make_problem: Callable[..., Problem], bundled: str):
  """The absl ``main`` of a task entry point.

  ``make_problem(preset, inputs, *, key)`` builds the :class:`Problem`; ``bundled`` names
  the scikit-image picture used when no image is given.
  """

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    warnings.formatwarning = lambda message, category, *a, **k: f"warning: {message}\n"
    name = FLAGS.preset or presets_lib.default_name(task, jax.default_backend())
    out_dir = FLAGS.out_dir or os.path.join("runs", task)
    try:
      for flag in _ALL_TASK_FLAGS:
        if FLAGS[flag].present and flag not in TASK_FLAGS[task]:
          raise ValueError(f"--{flag} does not apply to {task} (it takes {', '.join('--' + f for f in TASK_FLAGS[task])}).")
      preset = presets_lib.get(task, name, steps=FLAGS.steps, learning_rate=FLAGS.lr,
                               reg_noise_std=FLAGS.reg_noise_std, sigma=FLAGS.sigma,
                               jpeg_quality=FLAGS.jpeg_quality, factor=FLAGS.factor, kernel=FLAGS.kernel,
                               keep_fraction=FLAGS.keep_fraction)
      if preset.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {preset.steps}.")
      ensure_writable(out_dir)
      inputs = load_inputs(task, preset)
      if inputs.image is None and inputs.clean is None:
        inputs.clean = bundled_image(bundled)
        inputs.bundled = f"skimage.data.{bundled}"
      problem = make_problem(preset, inputs, key=jax.random.key(FLAGS.seed))
      problem.source.update({k: v for k, v in inputs.paths.items() if v}, crop=inputs.crop)
      if inputs.bundled:
        problem.source["bundled"] = inputs.bundled
      print(f"{task} preset {name!r}: {preset.describe()}", flush=True)
      print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); image {problem.size[1]}x"
            f"{problem.size[0]}x{problem.target.shape[-1]}; seeds: {FLAGS.seeds}", flush=True)
      config = dict(preset_name=name, seeds=FLAGS.seeds, seed=FLAGS.seed, out_dir=out_dir, chunk=FLAGS.chunk,
                    save_every=FLAGS.save_every, baselines=FLAGS.baselines, argv=sys.argv)
      metrics = run_task(preset, problem, seeds=FLAGS.seeds, seed=FLAGS.seed, out_dir=out_dir, chunk=FLAGS.chunk,
                         save_every=FLAGS.save_every, baselines=FLAGS.baselines, config=config,
                         stop=StopOptions(criterion=FLAGS.stop_criterion, patience=FLAGS.stop_patience,
                                          window=FLAGS.stop_window, early_stop=FLAGS.early_stop,
                                          max_nonfinite=FLAGS.max_nonfinite),
                         checkpoint_every=FLAGS.checkpoint_every, resume=FLAGS.resume, tile=FLAGS.tile,
                         tile_overlap=FLAGS.tile_overlap,
                         log=lambda m: print(m, flush=True))
    except ValueError as e:
      raise SystemExit(f"error: {e}") from None
    print(f"compile {metrics['compile_s']:.1f} s, run {metrics['run_s']:.1f} s "
          f"({metrics['s_per_step'] * 1e3:.1f} ms/step for {FLAGS.seeds} seed(s)), wall {metrics['wall_s']:.1f} s")
    summary = metrics["summary"]
    if summary["psnr"]:
      print("PSNR (dB) / SSIM vs ground truth: " + ", ".join(
          f"{k} {v:.2f}/{summary['ssim'][k]:.3f}" for k, v in summary["psnr"].items()))
      print(f"best step (seed 0): {summary['best_step_per_seed'][0]} at {summary['best_psnr_per_seed'][0]:.2f} dB")
    if "psnr_y" in summary:
      print("PSNR Y channel (paper protocol): " + ", ".join(f"{k} {v:.2f}" for k, v in summary["psnr_y"].items()))
    for name, entry in summary["stopping"].items():
      if name == "primary":
        continue
      line = (f"stopping {name}{' (primary)' if name == summary['stopping']['primary'] else ''}: detected step "
              f"{entry['detected_step'][0]} ({'fired' if entry['fired'][0] else 'not fired yet'})")
      if "psnr_detected" in entry:
        line += (f"; PSNR detected {entry['psnr_detected'][0]:.2f} / best {entry['psnr_best'][0]:.2f} / "
                 f"last {entry['psnr_last'][0]:.2f} dB")
      print(line)
    print(f"results in {out_dir}")
    if metrics["ended"]:
      raise SystemExit(f"error: {metrics['ended']}")

  return main
