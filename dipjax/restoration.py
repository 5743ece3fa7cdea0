r"""One call restores an image: :func:`restore` runs a whole DIP restoration and returns the results.

``restore(key, x0, A, config)`` fits ``min_θ E(A(f_θ(z)), x0)`` with the settings of
``config`` (a :class:`dipjax.presets.TaskPreset`, e.g. ``presets.get('denoise', 'cpu')``)
and does everything around the fit that a real run needs:

1. **canvas**: the network runs on the smallest canvas it accepts
   (:func:`dipjax.canvas_for`), the operator becomes ``A ∘ crop`` and the result is
   cropped back, so any ``H x W`` works;
2. **seeds**: ``S`` seeds in one compiled program (vmapped groups), their ensembles;
3. **tiles** (``tile > 0``): overlapping windows fitted in the same program and blended;
4. **memory**: estimated before compiling large runs; refused with the numbers when it does not fit;
5. **chunks**: the scan runs ``chunk`` steps at a time (bit-identical to one scan),
   with a progress line after each, an **early exit** once the stopping criterion
   fired for every fit, **divergence** handling (non-finite steps are skipped; after
   ``max_nonfinite`` in a row the run ends with a message) and **checkpoints** that
   ``resume=True`` continues bit for bit.

Every PSNR in the result says which image it scores: the curves and the stopping
summary's ``psnr_best``/``psnr_detected``/``psnr_last`` score the *per-step output*
``x_t = f_θ(z + σ_p ε_t)`` (so best >= detected and best >= last always hold), the
returned images (``output``, ``ema``, ensembles) are ``f_θ(z)`` and its averages.

Example:
  >>> import jax, dipjax
  >>> from dipjax import corruptions, presets
  >>> clean = jax.random.uniform(jax.random.key(0), (32, 32, 3))
  >>> noisy = corruptions.add_gaussian_noise(jax.random.key(1), clean, sigma=0.1)
  >>> r = dipjax.restore(jax.random.key(2), noisy, None, presets.get("denoise", "tiny", steps=5), seeds=2)
  >>> r.output.shape, r.ensemble.shape, r.curves.loss.shape
  ((2, 32, 32, 3), (32, 32, 3), (2, 5))
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dipjax import architectures
from dipjax import canvas as canvas_lib
from dipjax import checkpoint as checkpoint_lib
from dipjax import conv as conv_lib
from dipjax import fit as fit_lib
from dipjax import memory as memory_lib
from dipjax import models as models_lib
from dipjax import operators as operators_lib
from dipjax import presets as presets_lib
from dipjax import runner
from dipjax import sgld as sgld_lib
from dipjax import stopping as stopping_lib
from dipjax import summary as summary_lib
from dipjax import tiling
from dipjax import validation

MIN_SIZE = 32  # smallest side of a restored image (and of a tile)
# Canvases (x vmapped fits) above this many pixels get a memory estimate before compiling (two probe compiles);
# smaller ones need < 1.5 GB with every preset and are checked on the compiled program only.
PROBE_ABOVE_PIXELS = 256 * 256


@dataclasses.dataclass(frozen=True)
class StopOptions:
  """Early stopping and divergence handling of a run (:mod:`dipjax.stopping`)."""

  criterion: str = "emv"  # the criterion whose detection gives `stopped` and ends the run with early_stop
  patience: int = 200  # steps without a new minimum before a criterion fires
  window: int = 100  # ES-WMV window (and ES-EMV warm-up)
  early_stop: bool = False  # end the run once `criterion` fired for every fit
  max_nonfinite: int = 50  # end the run after this many non-finite steps in a row

  def __post_init__(self):
    validation.one_of("criterion", self.criterion, sorted(stopping_lib.CRITERIA))
    validation.non_negative_int("patience", self.patience)
    validation.positive_int("window", self.window)
    validation.positive_int("max_nonfinite", self.max_nonfinite)

  def criteria(self, noise_sigma: Optional[float]) -> tuple:
    """EMV and WMV always; the discrepancy principle when the noise level is known or estimated."""
    out = (stopping_lib.EMV(patience=self.patience, warmup=self.window),
           stopping_lib.WMV(window=self.window, patience=self.patience))
    if noise_sigma is not None:
      out += (stopping_lib.Discrepancy(noise_var=float(noise_sigma) ** 2),)
    if self.criterion not in [c.name for c in out]:
      raise ValueError(f"stopping criterion {self.criterion!r} needs the noise level (`noise_sigma`), which is not "
                       "known here; use 'emv' or 'wmv'.")
    return out


class Restoration(NamedTuple):
  """What :func:`restore` returns. Images are host float32 arrays at the restored image's size."""

  output: np.ndarray  # (S, H, W, C): f_θ(z) after the last step, per seed
  ema: np.ndarray  # (S, H, W, C): the moving average of the per-step outputs
  stopped: np.ndarray  # (S, H, W, C): the per-step output at the primary criterion's detected step (f_θ(z) at the
  # end where it detected nothing)
  ensemble: np.ndarray  # (H, W, C): mean of the seeds' outputs
  ensemble_ema: np.ndarray  # (H, W, C): mean of the seeds' EMAs
  ensemble_std: np.ndarray  # (H, W, C): standard deviation of the seeds' outputs (0 for one seed)
  posterior_mean: Optional[np.ndarray]  # (S, H, W, C): SGLD posterior mean of the sampled outputs (None without
  # sampling: config.sample_every = 0)
  posterior_std: Optional[np.ndarray]  # (S, H, W, C): per-pixel standard deviation of those samples
  posterior_samples: Optional[list]  # samples averaged per fit
  curves: fit_lib.StepMetrics  # per seed, each (S, steps_run): loss and PSNRs of the per-step output x_t
  stopping: dict  # per criterion: detected step, fired, and with `clean` the PSNRs (see summary.stopping_summary)
  snapshots: dict  # step -> (S, H, W, C) f_θ(z) every `snapshot_every` steps
  steps_run: int  # steps taken (fewer than config.steps after an early stop or a divergence)
  ended: Optional[str]  # why the run ended before config.steps by divergence (None otherwise)
  early_stopped: bool  # the run ended early because the criterion fired for every fit
  info: dict  # canvas, tiles, timings, memory, rollbacks, non-finite steps, parameter count, device
  state: fit_lib.FitState  # the final carries of all fits (leading axis: tiles x seeds, tile-major)


class Plan(NamedTuple):
  """How a restoration is laid out as a batch of fits (tile-major: fit b is tile b // S, seed b % S)."""

  loop: fit_lib.FitLoop
  canvas: canvas_lib.Canvas
  corners: list  # top-left (y, x) of each tile; [(0, 0)] without tiling
  overlap: int  # overlap of neighbouring tiles (blended with linear ramps)
  window: tuple  # (h, w) of a tile (the image size without tiling)
  image_size: tuple  # (H, W) of the restored image
  seeds: int
  keys: jax.Array  # (B,)
  fits: runner.Fits
  z: Optional[jax.Array]  # (B, H_c, W_c, C_z) network inputs given as images, or None
  criteria: tuple
  primary: int  # index of the primary criterion


def restore(key: jax.Array, observation, operator, config: presets_lib.TaskPreset, *,
            seeds: int = 1, clean=None, z=None, noise_sigma: Optional[float] = None, image_size=None,
            model=None, stop: StopOptions = StopOptions(), chunk=100, snapshot_every: int = 0,
            checkpoint_path: Optional[str] = None, checkpoint_every: int = 0, resume: bool = False,
            tile: int = 0, tile_overlap: int = 32, log: Optional[Callable[[str], None]] = None,
            progress_every_s: float = 0.0) -> Restoration:
  """Restores ``observation`` with Deep Image Prior: canvas, seeds, tiles, chunks, stopping, checkpoints.

  Args:
    key: PRNG key of the run; seed ``s`` uses ``jax.random.split(key, seeds)[s]``.
    observation: ``(h, w, C)`` float32 observation ``x0`` in [0, 1].
    operator: the forward operator ``A`` (:mod:`dipjax.operators`, or any differentiable
      function of the image); None for the identity.
    config: the settings, e.g. ``presets.get('denoise', 'cpu')`` (:func:`dipjax.presets.get`).
    seeds: fits with different seeds, in one program (>= 1).
    clean: optional ``(H, W, C)`` ground truth, for the PSNR curves and summaries only.
    z: optional image used as the network input ``(H, W, C_z)`` (flash/no-flash; needed
      when ``config.input_kind == 'image'``); reflection-padded to the canvas.
    noise_sigma: the observation's noise std on the [0, 1] scale, if known or estimated
      (adds the discrepancy-principle criterion).
    image_size: ``(H, W)`` of the restored image; default ``operator.image_shape(x0.shape)``.
    model: a Linen module to use instead of ``config.model``.
    stop: early stopping and divergence options.
    chunk: steps per compiled chunk (progress and checks between chunks; the result does not
      depend on it), or a rule ``(seconds per step or None) -> steps`` such as
      :func:`dipjax.runner.auto_chunk` (a progress line about every 20 s on any machine).
    snapshot_every: keep ``f_θ(z)`` every this many steps (``Restoration.snapshots``).
    checkpoint_path / checkpoint_every / resume: write the whole state to ``checkpoint_path``
      after the chunk that crosses every ``checkpoint_every`` steps and at the end; with
      ``resume`` continue from it (same arguments), bit-identical to an uninterrupted run.
    tile / tile_overlap: fit overlapping ``tile x tile`` windows and blend them (pixel-aligned operators only).
    log: where progress and notes go (e.g. ``print``); silent when None.
    progress_every_s: at most one progress line per this many seconds (0: after every chunk).

  Returns:
    A :class:`Restoration`.
  """
  t_start = time.perf_counter()
  _check_arguments(config, seeds=seeds, chunk=chunk, snapshot_every=snapshot_every,
                   checkpoint_every=checkpoint_every, tile=tile, tile_overlap=tile_overlap,
                   checkpoint_path=checkpoint_path, resume=resume)
  say = log or (lambda message: None)
  plan = make_plan(key, observation, operator, config, seeds=seeds, clean=clean, z=z, noise_sigma=noise_sigma,
                   image_size=image_size, model=model, stop=stop, tile=tile, tile_overlap=tile_overlap, log=say)
  memory_estimate = _check_memory(plan, channels=int(np.shape(observation)[-1]), log=say)
  t0 = time.perf_counter()
  state = runner.init_fits(plan.loop, plan.keys, (plan.canvas.height, plan.canvas.width), z=plan.z)
  ckpt_config = _checkpoint_config(plan, config, stop, tile, tile_overlap, observation, clean, z)
  done, curves = 0, []
  if resume:  # before compiling: a missing, foreign or mismatched checkpoint fails fast
    state, extra = checkpoint_lib.load(checkpoint_path, state, config=ckpt_config)
    done = int(np.asarray(state.step).max())
    if done:
      curves.append(fit_lib.StepMetrics(**{k: extra[k] for k in fit_lib.StepMetrics._fields}))
    say(f"resumed from {checkpoint_path} at step {done}")
  chunk_len = snapshot_every or chunk
  if callable(chunk_len):  # a rule: its first length now, the others when it asks for them
    lengths = [max(1, min(int(chunk_len(None)), config.steps - done))]
  else:
    lengths = runner.chunk_lengths(config.steps, chunk_len, done) or [1]
  programs = runner.compile_chunks(plan.loop, state, plan.fits, lengths=lengths)
  program_bytes = max(memory_lib.program_bytes(p) for p in programs.values())
  memory_lib.check_fits(program_bytes, what=f"this run ({len(plan.keys)} fit(s) of {plan.canvas.width}x"
                                            f"{plan.canvas.height})")
  compile_s = time.perf_counter() - t0
  say(f"compiled in {compile_s:.1f} s; fitting {config.steps} steps x {len(plan.keys)} fit(s) on "
      f"{jax.devices()[0].device_kind} ({jax.default_backend()})")
  hooks = _ChunkHooks(plan, config, stop, say, progress_every_s, snapshot_every, checkpoint_path, checkpoint_every,
                      ckpt_config, curves)
  t_run = time.perf_counter()
  state, new_curves, done, ended = runner.run_chunks(programs, state, plan.fits, num_steps=config.steps,
                                                     chunk=chunk_len, done=done, after_chunk=hooks)
  info = dict(compile_s=compile_s, run_s=time.perf_counter() - t_run, memory_estimate_bytes=memory_estimate,
              program_bytes=program_bytes)
  result = collect(plan, state, runner.concat_curves(curves + ([new_curves] if new_curves is not None else [])),
                   done, ended if ended != hooks.EARLY else None, hooks.snapshots, info)
  result.info["wall_s"] = time.perf_counter() - t_start
  return result._replace(early_stopped=ended == hooks.EARLY)


def _check_arguments(config, *, seeds, chunk, snapshot_every, checkpoint_every, tile, tile_overlap, checkpoint_path,
                     resume) -> None:
  if not isinstance(config, presets_lib.TaskPreset):
    raise ValueError(f"`config` must be a dipjax.presets.TaskPreset (presets.get(task, name)), got "
                     f"{type(config).__name__}.")
  config.validate()
  validation.positive_int("seeds", seeds)
  if not callable(chunk):
    validation.positive_int("chunk", chunk)
  validation.non_negative_int("snapshot_every", snapshot_every)
  validation.non_negative_int("checkpoint_every", checkpoint_every)
  validation.non_negative_int("tile", tile)
  if tile and tile < MIN_SIZE:
    raise ValueError(f"`tile` must be 0 (no tiling) or at least {MIN_SIZE}, got {tile}.")
  validation.non_negative_int("tile_overlap", tile_overlap)
  if tile and tile_overlap >= tile:
    raise ValueError(f"`tile_overlap` must be smaller than `tile` ({tile}), got {tile_overlap}.")
  if (checkpoint_every or resume) and not checkpoint_path:
    raise ValueError("`checkpoint_every` and `resume` need a `checkpoint_path`.")


def make_plan(key, observation, operator, config, *, seeds, clean, z, noise_sigma, image_size, model, stop, tile,
              tile_overlap, log) -> Plan:
  """Lays out a restoration as a batch of fits: network, canvas, tiles, per-fit operators, inputs and keys."""
  operator = operators_lib.as_operator(operator)
  fit_lib.check_image("observation", observation)
  channels = int(observation.shape[-1])
  image_size = tuple(int(s) for s in (image_size or operator.image_shape(tuple(observation.shape))[:2]))
  if min(image_size) < MIN_SIZE:
    raise ValueError(f"the restored image would be {image_size[1]}x{image_size[0]}; dipjax needs at least "
                     f"{MIN_SIZE}x{MIN_SIZE}.")
  model = model if model is not None else architectures.get_network(config.model, out_channels=channels,
                                                                    precision=config.precision,
                                                                    conv_impl=config.conv_impl)
  if config.input_kind == "image" and z is None:
    raise ValueError(f"config {config.task!r} uses an image as the network input (input_kind='image'); pass it as `z`.")
  criteria = stop.criteria(noise_sigma)
  corners, window = [(0, 0)], image_size
  if tile:
    if tuple(observation.shape[:2]) != image_size:
      raise ValueError("`tile` needs an observation pixel-aligned with the image (not super-resolution); crop the "
                       "image instead.")
    corners, window = tiling.windows(image_size, tile=tile, overlap=tile_overlap), (tile, tile)
  canvas = canvas_lib.canvas_for(model, window)
  if canvas.padded:
    log(f"image {window[1]}x{window[0]} fitted on a {canvas.width}x{canvas.height} canvas (the network needs "
        f"{getattr(model, 'min_size', 1)}+ px, multiples of {getattr(model, 'size_multiple', 1)}); the output is "
        "cropped back")
  if len(corners) > 1:
    log(f"{len(corners)} tiles of {tile}x{tile} (overlap {tile_overlap}) x {seeds} seed(s) = "
        f"{len(corners) * seeds} fits in one program")
  loop = fit_lib.make_fit_loop(model, **config.fit_options(), stopping=criteria)
  fits, zs = _per_fit_inputs(observation, operator, clean, z, canvas, corners, window, seeds)
  fit_lib.check_fit_inputs(model, fits.target[0], operator=operators_lib.index(fits.operator, 0),
                           readout=fits.readout, clean=None if fits.clean is None else fits.clean[0],
                           z=None if zs is None else zs[0], out_shape=(canvas.height, canvas.width))
  seed_keys = jax.random.split(key, seeds)
  keys = seed_keys if len(corners) == 1 else jnp.concatenate(
      [jax.vmap(lambda k, t=t: jax.random.fold_in(k, t))(seed_keys) for t in range(len(corners))])
  return Plan(loop=loop, canvas=canvas, corners=corners, overlap=tile_overlap if tile else 0, window=tuple(window), image_size=image_size, seeds=seeds,
              keys=keys, fits=fits, z=zs, criteria=criteria, primary=[c.name for c in criteria].index(stop.criterion))


def _per_fit_inputs(observation, operator, clean, z, canvas, corners, window, seeds):
  """The ``Fits`` (and network inputs) of every tile x seed: each tile's window of the data, on the canvas."""
  h, w = window
  cut = lambda a: None if a is None else [np.asarray(a, np.float32)[y:y + h, x:x + w] for y, x in corners]
  whole = len(corners) == 1
  targets = [np.asarray(observation, np.float32)] if whole else cut(observation)
  ops = [operator] if whole else [operator.window(y, x, h, w) for y, x in corners]
  crop = operators_lib.Crop(top=canvas.top, left=canvas.left, height=h, width=w)
  ops = [operators_lib.compose(op, crop) for op in ops]
  rep = lambda items: jnp.asarray(np.repeat(np.stack(items), seeds, axis=0))
  stacked = operators_lib.stack(ops)
  operator_b = jax.tree_util.tree_map(lambda a: jnp.repeat(a, seeds, axis=0), stacked)
  cleans = None if clean is None else rep([np.asarray(clean, np.float32)] if whole else cut(clean))
  zs = None
  if z is not None:
    z = np.asarray(z, np.float32)
    if z.shape[:2] != tuple(int(s) for s in (canvas.image_height, canvas.image_width)) and whole:
      raise ValueError(f"`z` is {z.shape[1]}x{z.shape[0]} but the restored image is "
                       f"{canvas.image_width}x{canvas.image_height}; pass an input image of the image's size.")
    zs = rep([canvas.pad(t) for t in ([z] if whole else cut(z))])
  return runner.Fits(target=rep(targets), operator=operator_b, readout=crop, clean=cleans), zs


def _check_memory(plan: Plan, *, channels: int, log) -> Optional[int]:
  """Estimates the memory of a large run before compiling it and refuses one that does not fit."""
  batch = len(plan.keys)
  group = fit_lib.default_group_size(batch)
  hw = (plan.canvas.height, plan.canvas.width)
  if hw[0] * hw[1] * group <= PROBE_ABOVE_PIXELS:
    return None
  model = plan.loop.model
  side = max(32, getattr(model, "min_size", 1), getattr(model, "size_multiple", 1))
  per_group = memory_lib.estimate_bytes(plan.loop, hw, channels=channels, seeds=group, probe=(side, side))
  z0 = None if plan.z is None else plan.z[0]
  state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(
      jax.eval_shape(lambda k: plan.loop.init(k, hw, z=z0), jax.random.key(0))) if hasattr(x, "size"))
  estimate = per_group + 2 * (batch - group) * state_bytes
  log(f"memory estimate before compiling: {estimate / 2**30:.2f} GiB")
  memory_lib.check_fits(estimate, what=f"this run ({batch} fit(s) of {hw[1]}x{hw[0]})")
  return estimate


def _sha256(tree) -> Optional[str]:
  leaves = [np.ascontiguousarray(np.asarray(x, np.float32)) for x in jax.tree_util.tree_leaves(tree)
            if not jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key)]
  if not leaves:
    return None
  h = hashlib.sha256()
  for leaf in leaves:
    h.update(leaf.tobytes())
  return h.hexdigest()


def _checkpoint_config(plan: Plan, config, stop, tile, tile_overlap, observation, clean, z) -> dict:
  """What a checkpoint must match to be resumed: the settings and hashes of every input."""
  return dict(preset=config.to_dict(), seeds=plan.seeds, keys=_sha256(jax.random.key_data(plan.keys)),
              stop=[list(c) for c in plan.criteria], tile=tile, tile_overlap=tile_overlap if tile else None,
              target_sha256=_sha256(observation), clean_sha256=_sha256(clean), z_sha256=_sha256(z),
              operator=repr(jax.tree_util.tree_structure(plan.fits.operator)),
              operator_sha256=_sha256(plan.fits.operator))


class _ChunkHooks:
  """What happens after each chunk: progress, snapshots, checkpoint, divergence and early-stop checks."""

  EARLY = "early stop"

  def __init__(self, plan, config, stop, log, progress_every_s, snapshot_every, checkpoint_path, checkpoint_every,
               ckpt_config, curves_before):
    self.plan, self.config, self.stop, self.log = plan, config, stop, log
    self.snapshot_every, self.checkpoint_path, self.checkpoint_every = snapshot_every, checkpoint_path, checkpoint_every
    self.ckpt_config, self.curves = ckpt_config, list(curves_before)
    self.snapshots, self.t0 = {}, time.perf_counter()
    self.done0 = int(sum(np.shape(c.loss)[1] for c in curves_before))
    self.progress = runner.Throttle(log, progress_every_s)

  def __call__(self, state, metrics, done) -> Optional[str]:
    self.curves.append(metrics)
    n = np.shape(metrics.loss)[1]
    if self.checkpoint_every and (done // self.checkpoint_every > (done - n) // self.checkpoint_every
                                  or done == self.config.steps):
      so_far = runner.concat_curves(self.curves)
      checkpoint_lib.save(self.checkpoint_path, state, config=self.ckpt_config, extra=so_far._asdict())
    p = runner.Progress(done=done, total=self.config.steps, elapsed_s=time.perf_counter() - self.t0,
                        last=runner.last_metrics(metrics))
    p = p._replace(elapsed_s=p.elapsed_s * done / max(done - self.done0, 1))  # rate of the steps run here
    self.progress(runner.format_progress(p, has_clean=self.plan.fits.clean is not None),
                  final=done >= self.config.steps)
    if self.snapshot_every and done % self.snapshot_every == 0:
      self.snapshots[done] = per_seed(self.plan, np.asarray(runner.render_fits(self.plan.loop, state,
                                                                               self.plan.fits.readout)[0]))
    streak = np.asarray(state.nonfinite_streak)
    if streak.max() >= self.stop.max_nonfinite:
      reason = (f"the optimisation diverged: {int(streak.max())} non-finite steps in a row (fit "
                f"{int(streak.argmax())}) by step {done}; the results are those of the last good state; lower the "
                "learning rate or check the input")
      self.log(f"error: {reason}")
      return reason
    if self.stop.early_stop and bool(np.all(np.asarray(state.stop[self.plan.primary].stopped))):
      at = np.asarray(state.stop[self.plan.primary].stopped_at).tolist()
      self.log(f"early stop: {self.stop.criterion} fired for every fit (at steps {at}); ending at step {done}")
      return self.EARLY
    return None


def per_seed(plan: Plan, images: np.ndarray) -> np.ndarray:
  """``(B, h, w, C)`` images of the fits -> ``(S, H, W, C)`` per seed (tiles blended)."""
  images = np.asarray(images)
  if len(plan.corners) == 1:
    return images
  by_tile = images.reshape((len(plan.corners), plan.seeds) + images.shape[1:])
  return np.stack([tiling.blend(by_tile[:, s], plan.corners, plan.image_size, overlap=plan.overlap)
                   for s in range(plan.seeds)])


def collect(plan: Plan, state, curves, done: int, ended, snapshots: dict, info: dict) -> Restoration:
  """The :class:`Restoration` of a finished batch of fits."""
  readout = plan.fits.readout
  rendered, ema = (np.asarray(a) for a in runner.render_fits(plan.loop, state, readout))
  outputs = per_seed(plan, rendered)
  emas = per_seed(plan, ema)
  detected = []
  for st in state.stop:
    d = np.asarray(jax.vmap(readout)(st.output))
    never = np.asarray(st.best_step) == 0  # nothing detected (yet): the result is the last output f(z)
    detected.append(per_seed(plan, np.where(never[:, None, None, None], rendered, d)))
  clean = None if plan.fits.clean is None else np.asarray(plan_clean(plan))
  stopping = summary_lib.stopping_summary(plan.criteria, state.stop, curves, primary=plan.primary,
                                          detected_images=detected, clean=clean, tiles=len(plan.corners),
                                          seeds=plan.seeds)
  model = plan.loop.model
  info = dict(info, canvas=[plan.canvas.height, plan.canvas.width], tiles=len(plan.corners), corners=plan.corners,
              num_nonfinite=np.asarray(state.num_nonfinite).tolist(),
              num_rollbacks=np.asarray(state.num_rollbacks).tolist(),
              model_params=models_lib.count_params(plan.loop.unravel(jax.tree_util.tree_map(lambda a: a[0],
                                                                                              state))["net"]),
              model=type(model).__name__, device=str(jax.devices()[0].device_kind), backend=jax.default_backend(),
              precision=getattr(model, "precision", "float32"),
              conv_impl=conv_lib.resolve_impl(getattr(model, "conv_impl", "auto")))
  posterior = _posterior(plan, state)
  return Restoration(output=outputs, ema=emas, stopped=detected[plan.primary], ensemble=outputs.mean(axis=0),
                     ensemble_ema=emas.mean(axis=0), ensemble_std=outputs.std(axis=0), **posterior,
                     curves=summary_lib.curves_per_seed(curves, tiles=len(plan.corners), seeds=plan.seeds),
                     stopping=stopping, snapshots=snapshots, steps_run=done, ended=ended, early_stopped=False,
                     info=info, state=state)


def _posterior(plan: Plan, state) -> dict:
  """The SGLD posterior mean and std per seed (tiles blended), read through the canvas crop; None without sampling."""
  if state.posterior is None:
    return dict(posterior_mean=None, posterior_std=None, posterior_samples=None)
  mean, std = jax.vmap(sgld_lib.moments_mean_std)(state.posterior)
  crop = jax.vmap(plan.fits.readout)
  return dict(posterior_mean=per_seed(plan, np.asarray(crop(mean))),
              posterior_std=per_seed(plan, np.asarray(crop(std))),
              posterior_samples=np.asarray(state.posterior.count).tolist())


def plan_clean(plan: Plan) -> np.ndarray:
  """The whole ground truth (tiles put back) of a plan whose fits have one."""
  cleans = np.asarray(plan.fits.clean)[::plan.seeds]
  if len(plan.corners) == 1:
    return cleans[0]
  out = np.zeros(tuple(plan.image_size) + cleans.shape[-1:], np.float32)
  h, w = plan.window
  for c, (y, x) in zip(cleans, plan.corners):
    out[y:y + h, x:x + w] = c
  return out
