r"""Grids of fits in one compiled program: images × seeds × hyper-parameter values, on one device or many.

:func:`make_grid_fit` returns ``fit_grid(keys, targets, *, operator=None, operators=None, clean=None,
hyper=None, z=None, ...)``, which fits every combination of

* ``I`` images of one size (``targets``: ``(I, h, w, C)``),
* ``S`` seeds (``keys``: ``(S,)``),
* ``V`` hyper-parameter combinations (``hyper``: ``{'learning_rate': [...],
  'reg_noise_std': [...]}``, their Cartesian product),

as ``B = I·S·V`` independent fits (``operators``: per-image forward operators, e.g.
one :class:`dipjax.operators.Mask` per image stacked with :func:`dipjax.operators.stack`;
``z``: per-image network inputs) — ``vmap`` over the flattened grid axis, which is
the nested ``vmap`` over images, seeds and values written as one — and returns
arrays with leading axes ``(I, S, V)``. The per-fit numeric hyper-parameters live
in the scan carry (``FitState.hyper``), so one program serves every value. The
steps run in chunks (:mod:`dipjax.runner`, the loop :func:`dipjax.restore` uses), so
a long grid reports progress as it goes.

On several local devices (or with a ``mesh``) the grid axis is sharded over a 1-D
``Mesh`` named ``'fits'`` with ``NamedSharding``: the same call uses 1 CPU, 8 GPUs or
a TPU slice unchanged (the grid is padded to a multiple of the device count). Across
machines, after ``jax.distributed.initialize``, process ``p`` of ``P`` fits every
``P``-th fit of the grid on its own devices and the results are gathered on every
process (``multihost_utils.process_allgather``), so process 0 holds the whole grid. ``max_batch`` splits the grid into calls of at most that many fits
(one compiled program per distinct chunk size) so it fits the device memory;
:func:`choose_max_batch` picks it from a measured estimate (``dipjax.memory``).
:func:`fit_buckets` takes images of different sizes and groups them by size: one
compile per size.

Example:
  >>> import jax, dipjax
  >>> from dipjax import batch
  >>> fit_grid = batch.make_grid_fit(dipjax.skip_tiny(), num_steps=3, input_channels=4)
  >>> targets = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
  >>> r = fit_grid(jax.random.split(jax.random.key(1), 3), targets, hyper={"learning_rate": [0.01, 0.02]})
  >>> r.output.shape, r.metrics.loss.shape
  ((2, 3, 2, 16, 16, 3), (2, 3, 2, 3))
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dipjax import canvas as canvas_lib
from dipjax import fit as fit_lib
from dipjax import memory as memory_lib
from dipjax import architectures
from dipjax import operators as operators_lib
from dipjax import runner
from dipjax import sgld as sgld_lib
from dipjax import validation


class GridResult(NamedTuple):
  """Results of a grid of fits, each array with leading axes ``(I, S, V)``."""

  output: jax.Array  # (I, S, V, H, W, C): readout(f_θ(z)) after the last step
  ema: jax.Array  # (I, S, V, H, W, C): readout of the EMA of the outputs
  metrics: fit_lib.StepMetrics  # each field (I, S, V, num_steps[, K])
  state: fit_lib.FitState  # final carries
  hyper: dict  # name -> (V,) values of the hyper-parameter combinations, in grid order


class GridProgress(NamedTuple):
  """Where a grid stands after a chunk of steps."""

  fits_done: int  # fits finished (this process)
  fits_total: int  # fits in all (this process)
  steps_done: int  # steps of the fits under way
  num_steps: int  # steps per fit
  batch: int  # fits under way in this call
  elapsed_s: float  # seconds since the grid started


def hyper_grid(hyper: Optional[dict]) -> dict:
  """The Cartesian product of ``{name: values}`` as ``{name: (V,) float32}`` (``V = 1`` with no names)."""
  if not hyper:
    return {}
  names = sorted(hyper)
  for n in names:
    if n not in ("learning_rate", "reg_noise_std"):
      raise ValueError(f"`hyper` takes 'learning_rate' and 'reg_noise_std', got {n!r}.")
    if len(np.atleast_1d(hyper[n])) == 0:
      raise ValueError(f"`hyper[{n!r}]` is empty.")
    for v in np.atleast_1d(hyper[n]):
      validation.finite(f"hyper[{n!r}]", v, minimum=0.0, inclusive=n == "reg_noise_std")
  combos = list(itertools.product(*[np.atleast_1d(np.asarray(hyper[n], np.float32)) for n in names]))
  return {n: np.asarray([c[i] for c in combos], np.float32) for i, n in enumerate(names)}


def default_mesh() -> Optional[Mesh]:
  """A 1-D mesh ``('fits',)`` over this process's devices, or None on a single device."""
  devices = jax.local_devices()
  return Mesh(np.asarray(devices), ("fits",)) if len(devices) > 1 else None


def _allgather(tree):
  """Every process's pytree, stacked on a new leading axis (typed PRNG keys travel as their key data)."""
  from jax.experimental import multihost_utils

  is_key = lambda x: hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
  impls = [jax.random.key_impl(x) if is_key(x) else None for x in jax.tree_util.tree_leaves(tree)]
  plain = jax.tree_util.tree_map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)
  gathered = multihost_utils.process_allgather(plain)
  leaves, treedef = jax.tree_util.tree_flatten(gathered)
  leaves = [jax.random.wrap_key_data(x, impl=i) if i is not None else x for x, i in zip(leaves, impls)]
  return jax.tree_util.tree_unflatten(treedef, leaves)


class Grid(NamedTuple):
  """The flat grid of one call: every fit's image, seed and value index, and the per-image data."""

  keys: jax.Array  # (S,)
  targets: jax.Array  # (I, h, w, C)
  operators: Any  # stacked per image (leaves (I, ...))
  readout: Any
  clean: Optional[jax.Array]  # (I, H, W, C)
  z: Optional[jax.Array]  # (I, H, W, C_z)
  combos: dict  # name -> (V,)
  ii: np.ndarray  # (B,) image of each fit
  ss: np.ndarray  # (B,) seed of each fit
  vv: np.ndarray  # (B,) value combination of each fit


class GridFit(NamedTuple):
  """``fit_grid(keys, targets, ...)`` made by :func:`make_grid_fit` (see the module docstring)."""

  loop: fit_lib.FitLoop
  num_steps: int

  def __call__(self, keys: jax.Array, targets: jax.Array, *, operator=None, operators=None, readout=None,
               clean: Optional[jax.Array] = None, hyper: Optional[dict] = None, z: Optional[jax.Array] = None,
               out_shape: Optional[tuple[int, int]] = None, max_batch: Optional[int] = None, mesh="auto",
               seeds_per_group: Optional[int] = None, chunk: Optional[int] = None,
               on_chunk: Optional[Callable[[GridProgress], None]] = None) -> GridResult:
    """Fits the grid; ``operator`` is shared by all images, ``operators`` (stacked) gives each image its own.

    ``max_batch``: at most this many fits per call (one compiled program per distinct
    call size); ``chunk``: steps per compiled chunk (default: all at once), or a rule
    such as :func:`dipjax.runner.auto_chunk`;
    ``on_chunk(GridProgress)`` after each chunk, e.g. to print progress.
    """
    grid, out_shape = self._grid(keys, targets, operator, operators, readout, clean, hyper, z, out_shape)
    batch = len(grid.ii)
    mesh_ = default_mesh() if mesh == "auto" else mesh
    n_proc = jax.process_count()
    run = lambda fits: self._run_fits(grid, fits, out_shape, max_batch, mesh_, seeds_per_group, chunk, on_chunk)
    if n_proc == 1:
      res = run(np.arange(batch))
    else:  # several hosts: process p fits every n_proc-th fit; the results are gathered on every process
      per = -(-batch // n_proc)
      order = np.concatenate([np.arange(batch), np.full(per * n_proc - batch, batch - 1)])
      gathered = _allgather(run(order[jax.process_index()::n_proc]))  # leaves (n_proc, per, ...)
      res = jax.tree_util.tree_map(
          lambda a: jnp.swapaxes(jnp.asarray(a), 0, 1).reshape((per * n_proc,) + a.shape[2:])[:batch], gathered)
    n_i, n_s = targets.shape[0], keys.shape[0]
    shape = lambda a: a.reshape((n_i, n_s, batch // (n_i * n_s)) + a.shape[1:])
    output, ema, metrics, state = jax.tree_util.tree_map(shape, res)
    return GridResult(output=output, ema=ema, metrics=metrics, state=state, hyper=dict(grid.combos))

  def _grid(self, keys, targets, operator, operators, readout, clean, hyper, z, out_shape):
    if targets.ndim != 4:
      raise ValueError(f"`targets` must be (I, h, w, C), got shape {tuple(targets.shape)}.")
    if keys.ndim != 1:
      raise ValueError(f"`keys` must be a 1-D array of keys (S,), got shape {tuple(keys.shape)}.")
    n_i = targets.shape[0]
    if operator is not None and operators is not None:
      raise ValueError("pass either a shared `operator` or per-image `operators`, not both.")
    if operators is None:
      op = operators_lib.as_operator(operator)
      operators = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n_i,) + jnp.shape(a)), op)
    leaves = tuple(("operators", leaf) for leaf in jax.tree_util.tree_leaves(operators))
    for name, a in (("clean", clean), ("z", z)) + leaves:
      if a is not None and a.shape[0] != n_i:
        raise ValueError(f"`{name}` has {a.shape[0]} entries but `targets` has {n_i} images.")
    readout = operators_lib.as_operator(readout)
    out_shape = fit_lib.check_fit_inputs(self.loop.model, targets[0], operator=operators_lib.index(operators, 0),
                                         readout=readout, clean=None if clean is None else clean[0],
                                         z=None if z is None else z[0], out_shape=out_shape)
    combos = hyper_grid(hyper)
    n_v = len(next(iter(combos.values()))) if combos else 1
    ii, ss, vv = (a.reshape(-1) for a in np.meshgrid(np.arange(n_i), np.arange(keys.shape[0]), np.arange(n_v),
                                                     indexing="ij"))
    return Grid(keys=keys, targets=targets, operators=operators, readout=readout, clean=clean, z=z, combos=combos,
                ii=ii, ss=ss, vv=vv), out_shape

  def _run_fits(self, grid: Grid, fits: np.ndarray, out_shape, max_batch, mesh, seeds_per_group, chunk, on_chunk):
    """The fits numbered ``fits`` (flat grid order), in calls of at most ``max_batch``, on this process."""
    n_dev = 1 if mesh is None else mesh.devices.size
    size = len(fits) if max_batch is None else validation.positive_int("max_batch", max_batch)
    size = -(-min(size, len(fits)) // n_dev) * n_dev  # a multiple of the device count
    if chunk is None:
      chunk = self.num_steps
    elif not callable(chunk):
      chunk = validation.positive_int("chunk", chunk)
    outs, t0 = [], time.perf_counter()
    for start in range(0, len(fits), size):
      idx = fits[start:start + size]
      pad = size - len(idx)
      idx = np.concatenate([idx, np.full(pad, idx[-1])])  # padded fits repeat the last one and are dropped
      per_image = lambda a: None if a is None else a[grid.ii[idx]]
      hyper = {n: jnp.asarray(v[grid.vv[idx]]) for n, v in grid.combos.items()}
      fits_b = runner.Fits(target=per_image(grid.targets), operator=operators_lib.index(grid.operators, grid.ii[idx]),
                           readout=grid.readout, clean=per_image(grid.clean))
      keys, zs = grid.keys[grid.ss[idx]], per_image(grid.z)
      group = seeds_per_group if seeds_per_group is not None else fit_lib.default_group_size(size, n_dev)
      shardings = None
      if mesh is not None:
        sharded = NamedSharding(mesh, PartitionSpec("fits"))
        keys, zs, hyper, fits_b = jax.device_put((keys, zs, hyper, fits_b), sharded)
      state = runner.init_fits(self.loop, keys, out_shape, z=zs, hyper=hyper)
      if mesh is not None:
        state = jax.device_put(state, sharded)
        shardings = jax.tree_util.tree_map(lambda _: sharded, (state, fits_b))
      lengths = [] if callable(chunk) else runner.chunk_lengths(self.num_steps, chunk)
      programs = runner.compile_chunks(self.loop, state, fits_b, lengths=lengths, group=group, shardings=shardings,
                                       ahead_of_time=False)
      report = None
      if on_chunk is not None:
        report = lambda st, m, done, s=start: on_chunk(GridProgress(
            fits_done=min(s + size, len(fits)) if done >= self.num_steps else s, fits_total=len(fits),
            steps_done=done, num_steps=self.num_steps, batch=size - pad, elapsed_s=time.perf_counter() - t0))
      state, curves, _, _ = runner.run_chunks(programs, state, fits_b, num_steps=self.num_steps, chunk=chunk,
                                              after_chunk=report)
      output, ema = runner.render_fits(self.loop, state, grid.readout, group)
      res = (output, ema, jax.tree_util.tree_map(jnp.asarray, curves), state)
      outs.append(jax.tree_util.tree_map(lambda a: a[:len(idx) - pad], res))
    return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *outs) if len(outs) > 1 else outs[0]


def make_grid_fit(model, *, num_steps: int, **loop_kwargs) -> GridFit:
  """Returns ``fit_grid(keys, targets, *, operator=None, operators=None, readout=None, clean=None, hyper=None,
  z=None, out_shape=None, max_batch=None, mesh='auto', seeds_per_group=None, chunk=None, on_chunk=None)``.

  ``loop_kwargs`` as for :func:`dipjax.make_fit_loop`. See the module docstring.
  """
  num_steps = validation.positive_int("num_steps", num_steps)
  return GridFit(loop=fit_lib.make_fit_loop(model, **loop_kwargs), num_steps=num_steps)


def choose_max_batch(loop: fit_lib.FitLoop, out_shape: tuple[int, int], *, channels: int, fraction: float = 0.8,
                     probe: Optional[tuple[int, int]] = None) -> tuple[int, str]:
  """How many fits one call may hold: ``fraction`` of the free memory over the estimated bytes per fit.

  ``loop`` is the fits' loop (``fit_grid.loop``); its memory is probed at small canvases.
  Returns ``(max_batch, reason)`` with the numbers behind the choice.
  """
  per_fit = memory_lib.estimate_bytes(loop, out_shape, channels=channels, seeds=1, probe=probe)
  free = memory_lib.available_bytes()
  if free is None:
    return 1 << 30, f"free memory unknown; estimated {per_fit / 2**20:.0f} MiB per fit; no limit"
  n = max(1, int(fraction * free // max(per_fit, 1)))
  return n, (f"{fraction:.0%} of {free / 2**30:.1f} GiB free / {per_fit / 2**20:.0f} MiB per fit "
             f"(estimated before compiling) = {n} fits per call")


def fit_buckets(fit_grid: GridFit, keys: jax.Array, images: Sequence[jax.Array], *,
                clean: Optional[Sequence] = None, operators: Optional[Sequence] = None,
                z: Optional[Sequence] = None, **kwargs) -> list[GridResult]:
  """Fits images of different sizes: grouped by shape, one ``fit_grid`` call (one compile) per size.

  ``clean``, ``operators`` (one operator per image) and ``z`` are per-image sequences (as ``images``) or None.
  Returns one :class:`GridResult` per input image (leading axes ``(1, S, V)``), in input order.
  """
  per_image = {"clean": clean, "operators": operators, "z": z}
  for name, seq in per_image.items():
    if seq is not None and len(seq) != len(images):
      raise ValueError(f"`{name}` has {len(seq)} entries but there are {len(images)} images.")
  buckets: dict[tuple, list[int]] = {}
  for i, image in enumerate(images):
    shapes = (tuple(image.shape),) + tuple(None if s is None else str(jax.tree_util.tree_map(np.shape, s[i]))
                                           for s in per_image.values())
    buckets.setdefault(shapes, []).append(i)
  results: list[Optional[GridResult]] = [None] * len(images)
  for members in buckets.values():
    targets = jnp.stack([jnp.asarray(images[i]) for i in members])
    extra = {name: None if seq is None else jnp.stack([jnp.asarray(seq[i]) for i in members])
             for name, seq in per_image.items() if name != "operators"}
    if operators is not None:
      extra["operators"] = operators_lib.stack([operators[i] for i in members])
    r = fit_grid(keys, targets, **extra, **kwargs)
    for j, i in enumerate(members):
      results[i] = jax.tree_util.tree_map(lambda a, j=j: a[j:j + 1], r._replace(hyper=None))._replace(hyper=r.hyper)
  return results


@dataclasses.dataclass
class Fitted:
  """The fits of one problem: arrays with leading axes ``(S, V)`` (seeds, hyper-parameter combinations)."""

  outputs: np.ndarray  # (S, V, H, W, C) final outputs f_θ(z), at the image's size
  emas: np.ndarray  # (S, V, H, W, C)
  curves: fit_lib.StepMetrics  # each (S, V, T): the per-step output's loss and PSNRs
  hyper: dict  # name -> (V,) values
  wall_s: float  # this problem's share of its group's wall time (compile included)
  posterior_mean: Optional[np.ndarray] = None  # (S, V, H, W, C) SGLD posterior mean (presets with sample_every > 0)
  posterior_std: Optional[np.ndarray] = None  # (S, V, H, W, C) per-pixel std of the posterior samples


def _signature(problem) -> tuple:
  op = jax.tree_util.tree_map(np.shape, problem.operator)
  return (tuple(problem.image_size), problem.observation.shape, str(jax.tree_util.tree_structure(op)),
          str(jax.tree_util.tree_leaves(op)), None if problem.z is None else problem.z.shape)


def fit_problems(config, problems: Sequence, *, key: jax.Array, seeds: int, hyper: Optional[dict] = None,
                 max_batch: int = 0, chunk=None, log: Callable[[str], None] = lambda message: None) -> list:
  """Fits every problem × seed × hyper-parameter combination: one compiled program per image size.

  Args:
    config: the preset (:func:`dipjax.presets.get`).
    problems: :class:`dipjax.tasks.Problem` s (any mix of sizes; per-image operators batch).
    key: the run's key; seed ``s`` uses ``jax.random.split(key, seeds)[s]`` (as :func:`dipjax.restore`),
      so an image's seeds are the same whichever other images share its program.
    seeds: seeds per problem.
    hyper: ``{'learning_rate': [...], 'reg_noise_std': [...]}`` values to grid over.
    max_batch: fits per call (0: chosen from the free memory, :func:`choose_max_batch`).
    chunk: steps per compiled chunk (None: all; int; or a rule such as :func:`dipjax.runner.auto_chunk`).
    log: where progress goes.

  Returns:
    One :class:`Fitted` per problem, in order.
  """
  validation.positive_int("seeds", seeds)
  validation.non_negative_int("max_batch", max_batch)
  keys = jax.random.split(key, seeds)
  groups: dict[tuple, list[int]] = {}
  for i, p in enumerate(problems):
    groups.setdefault(_signature(p), []).append(i)
  fitted: list = [None] * len(problems)
  for members in groups.values():
    first = problems[members[0]]
    model = architectures.get_network(config.model, out_channels=first.observation.shape[-1],
                                      precision=config.precision, conv_impl=config.conv_impl)
    canvas = canvas_lib.canvas_for(model, tuple(first.image_size))
    crop = operators_lib.Crop(top=canvas.top, left=canvas.left, height=canvas.image_height, width=canvas.image_width)
    grid = make_grid_fit(model, num_steps=config.steps, **config.fit_options())
    stack = lambda get: None if get(first) is None else jnp.stack([jnp.asarray(get(problems[i]), jnp.float32)
                                                                   for i in members])
    ops = operators_lib.stack([operators_lib.compose(problems[i].operator, crop) for i in members])
    z = None if first.z is None else jnp.stack([jnp.asarray(canvas.pad(problems[i].z)) for i in members])
    n_fits = len(members) * seeds * (len(next(iter(hyper_grid(hyper).values()))) if hyper else 1)
    size = max_batch
    if not size:
      size, reason = choose_max_batch(grid.loop, (canvas.height, canvas.width), channels=first.observation.shape[-1])
      log(f"max batch: {reason}")
    h, w = first.image_size
    log(f"{len(members)} image(s) of {w}x{h} (canvas {canvas.width}x{canvas.height}) x {seeds} seed(s)"
        + (f" x {n_fits // (len(members) * seeds)} hyper-parameter value(s)" if hyper else "")
        + f" = {n_fits} fits of {config.steps} steps in one program, at most {min(size, n_fits)} per call, on "
        f"{jax.devices()[0].device_kind} ({jax.default_backend()}, {jax.device_count()} device(s))")
    t0 = time.perf_counter()
    r = grid(keys, stack(lambda p: p.observation), operators=ops, readout=crop, clean=stack(lambda p: p.clean),
             hyper=hyper, z=z, out_shape=(canvas.height, canvas.width), max_batch=size, chunk=chunk,
             on_chunk=lambda g: log(_progress_line(g)))
    r = jax.block_until_ready(r)
    wall = time.perf_counter() - t0
    log(f"  done in {wall:.1f} s ({wall / len(members):.1f} s per image, compile included)")
    posterior = _posterior_images(r.state.posterior, crop)
    for j, i in enumerate(members):
      fitted[i] = Fitted(outputs=np.asarray(r.output[j]), emas=np.asarray(r.ema[j]),
                         curves=jax.tree_util.tree_map(lambda a: np.asarray(a[j]), r.metrics),
                         hyper={k: np.asarray(v) for k, v in r.hyper.items()}, wall_s=wall / len(members),
                         **{k: v[j] for k, v in posterior.items()})
  return fitted


def _posterior_images(posterior, crop) -> dict:
  """``posterior_mean``/``posterior_std`` ``(I, S, V, H, W, C)`` of a grid's carries (empty without SGLD sampling)."""
  if posterior is None:
    return {}
  lead = np.shape(posterior.count)  # (I, S, V)
  flat = jax.tree_util.tree_map(lambda a: jnp.reshape(a, (-1,) + a.shape[len(lead):]), posterior)
  mean, std = (jnp.reshape(a, lead + a.shape[1:]) for a in jax.vmap(sgld_lib.moments_mean_std)(flat))
  read = lambda a: np.asarray(a)[..., crop.top:crop.top + crop.height, crop.left:crop.left + crop.width, :]
  return dict(posterior_mean=read(mean), posterior_std=read(std))


def _progress_line(g: GridProgress) -> str:
  """``  8/16 fits done, 8 at step 300/1000 | 2m10s elapsed | ETA 5m03s`` for a grid."""
  done_work = g.fits_done * g.num_steps + (0 if g.steps_done >= g.num_steps else g.batch * g.steps_done)
  total_work = g.fits_total * g.num_steps
  eta = g.elapsed_s * (total_work - done_work) / max(done_work, 1)
  under_way = f", {g.batch} at step {g.steps_done}/{g.num_steps}" if g.steps_done < g.num_steps else ""
  return (f"  {g.fits_done}/{g.fits_total} fits done{under_way} | {runner.format_seconds(g.elapsed_s)} elapsed | "
          f"ETA {runner.format_seconds(eta)}")
