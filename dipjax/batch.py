r"""Grids of fits in one compiled program: images × seeds × hyper-parameter values, on one device or many.

:func:`make_grid_fit` returns ``fit_grid(keys, targets, *, clean=None, hyper=None, aux=None, z=None)``,
which fits every combination of

* ``I`` images of one size (``targets``: ``(I, h, w, C)``),
* ``S`` seeds (``keys``: ``(S,)``),
* ``V`` hyper-parameter combinations (``hyper``: ``{'learning_rate': [...],
  'reg_noise_std': [...]}``, their Cartesian product),

as ``B = I·S·V`` independent fits (``aux`` and ``z``: optional per-image operator data,
such as a mask, and network inputs) — ``vmap`` over the flattened grid axis, which is
the nested ``vmap`` over images, seeds and values written as one — and returns
arrays with leading axes ``(I, S, V)``. The per-fit numeric hyper-parameters live
in the scan carry (``FitState.hyper``), so one program serves every value.

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

import itertools
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dipjax import fit as fit_lib
from dipjax import memory as memory_lib


class GridResult(NamedTuple):
  """Results of a grid of fits, each array with leading axes ``(I, S, V)``."""

  output: jax.Array  # (I, S, V, H, W, C): f_θ(z) after the last step
  ema: jax.Array  # (I, S, V, H, W, C): EMA of the outputs
  metrics: fit_lib.StepMetrics  # each field (I, S, V, num_steps[, K])
  state: fit_lib.FitState  # final carries
  hyper: dict  # name -> (V,) values of the hyper-parameter combinations, in grid order


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


def make_grid_fit(model, *, num_steps: int, forward_aux: Optional[Callable] = None,
                  **loop_kwargs) -> Callable[..., GridResult]:
  """Returns ``fit_grid(keys, targets, *, clean=None, hyper=None, aux=None, z=None, out_shape=None,
  max_batch=None, mesh='auto', seeds_per_group=None, on_chunk=None)`` (see the module docstring).

  ``on_chunk(done, total)`` is called after each call of ``max_batch`` fits (this
  process's fits done so far and in all), e.g. to print progress.

  ``loop_kwargs`` as for :func:`dipjax.make_fit_loop`. ``forward_aux(x, aux)``, instead
  of ``forward``, is a forward operator that also takes a per-image array (e.g. an
  inpainting mask ``A(x) = x ⊙ m``): ``fit_grid(..., aux=(I, ...))`` then gives each
  image its own. ``fit_grid(..., z=(I, H, W, C_z))`` gives each image its own network
  input (e.g. the flash image) instead of a random one.
  """
  if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
    raise ValueError(f"`num_steps` must be a positive int, got {num_steps!r}.")
  if forward_aux is not None and "forward" in loop_kwargs:
    raise ValueError("pass either `forward` or `forward_aux`, not both.")
  readout = loop_kwargs.get("readout", fit_lib.identity)
  # The loop used for init/render/memory estimates; with `forward_aux` each fit builds its own in `one`.
  loop = fit_lib.make_fit_loop(model, **({"forward": readout} if forward_aux is not None else {}), **loop_kwargs)
  forward = loop_kwargs.get("forward", fit_lib.identity)

  def loop_for(aux):
    if forward_aux is None:
      return loop
    return fit_lib.make_fit_loop(model, forward=lambda x: forward_aux(x, aux), **loop_kwargs)

  def one(out_shape, args):
    key, target, clean, hyper, aux, z = args
    state = loop.init(key, out_shape, z=z, hyper=hyper)
    state, metrics, _ = loop_for(aux).run(state, target, clean=clean, num_steps=int(num_steps))
    return loop.render(state), state.ema, metrics, state

  programs = {}

  def program(out_shape, group, shardings):
    cache_key = (out_shape, group, shardings is not None)
    if cache_key not in programs:
      fn = lambda *args: fit_lib.map_seeds(lambda a: one(out_shape, a), args, seeds_per_group=group)
      programs[cache_key] = jax.jit(fn, in_shardings=shardings) if shardings is not None else jax.jit(fn)
    return programs[cache_key]

  def fit_grid(keys: jax.Array, targets: jax.Array, *, clean: Optional[jax.Array] = None,
               hyper: Optional[dict] = None, aux: Optional[jax.Array] = None, z: Optional[jax.Array] = None,
               out_shape: Optional[tuple[int, int]] = None,
               max_batch: Optional[int] = None, mesh="auto", seeds_per_group: Optional[int] = None,
               on_chunk: Optional[Callable[[int, int], None]] = None) -> GridResult:
    if targets.ndim != 4:
      raise ValueError(f"`targets` must be (I, h, w, C), got shape {tuple(targets.shape)}.")
    if keys.ndim != 1:
      raise ValueError(f"`keys` must be a 1-D array of keys (S,), got shape {tuple(keys.shape)}.")
    if clean is not None and clean.shape[0] != targets.shape[0]:
      raise ValueError(f"`clean` has {clean.shape[0]} images but `targets` has {targets.shape[0]}.")
    for name, a in (("aux", aux), ("z", z)):
      if a is not None and a.shape[0] != targets.shape[0]:
        raise ValueError(f"`{name}` has {a.shape[0]} entries but `targets` has {targets.shape[0]} images.")
    if (aux is None) != (forward_aux is None):
      raise ValueError("`aux` is needed exactly when the grid was made with `forward_aux`.")
    fwd = forward if forward_aux is None else (lambda x: forward_aux(x, aux[0]))
    out_shape = fit_lib.check_fit_inputs(model, targets[0], forward=fwd, readout=readout,
                                         clean=None if clean is None else clean[0],
                                         z=None if z is None else z[0], out_shape=out_shape)
    combos = hyper_grid(hyper)
    n_i, n_s = targets.shape[0], keys.shape[0]
    n_v = len(next(iter(combos.values()))) if combos else 1
    batch = n_i * n_s * n_v
    ii, ss, vv = (a.reshape(-1) for a in np.meshgrid(np.arange(n_i), np.arange(n_s), np.arange(n_v), indexing="ij"))
    mesh_ = default_mesh() if mesh == "auto" else mesh
    n_dev = 1 if mesh_ is None else mesh_.devices.size

    def run_fits(fits: np.ndarray):
      """The fits numbered ``fits`` (flat grid order), in calls of at most ``max_batch``, on this process."""
      chunk = len(fits) if max_batch is None else int(max_batch)
      if chunk < 1:
        raise ValueError(f"`max_batch` must be >= 1, got {max_batch!r}.")
      chunk = -(-min(chunk, len(fits)) // n_dev) * n_dev  # a multiple of the device count
      outs = []
      for start in range(0, len(fits), chunk):
        idx = fits[start:start + chunk]
        pad = chunk - len(idx)
        idx = np.concatenate([idx, np.full(pad, idx[-1])])  # padded fits repeat the last one and are dropped
        per_image = lambda a: None if a is None else a[ii[idx]]
        args = (keys[ss[idx]], targets[ii[idx]], per_image(clean),
                {n: jnp.asarray(v[vv[idx]]) for n, v in combos.items()}, per_image(aux), per_image(z))
        group = seeds_per_group
        if group is None:
          group = chunk if jax.default_backend() != "cpu" else n_dev
        shardings = None
        if mesh_ is not None:
          sharded = NamedSharding(mesh_, PartitionSpec("fits"))
          shardings = jax.tree_util.tree_map(lambda _: sharded, args)
          args = jax.device_put(args, shardings)
        res = program(tuple(out_shape), group, shardings)(*args)
        outs.append(jax.tree_util.tree_map(lambda a: a[:len(idx) - pad], res))
        if on_chunk is not None:
          jax.block_until_ready(res)
          on_chunk(min(start + chunk, len(fits)), len(fits))
      return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *outs) if len(outs) > 1 else outs[0]

    n_proc = jax.process_count()
    if n_proc == 1:
      res = run_fits(np.arange(batch))
    else:  # several hosts: process p fits every n_proc-th fit; the results are gathered on every process
      per = -(-batch // n_proc)
      order = np.concatenate([np.arange(batch), np.full(per * n_proc - batch, batch - 1)])
      mine = run_fits(order[jax.process_index()::n_proc])
      gathered = _allgather(mine)  # leaves (n_proc, per, ...)
      res = jax.tree_util.tree_map(
          lambda a: jnp.swapaxes(jnp.asarray(a), 0, 1).reshape((per * n_proc,) + a.shape[2:])[:batch], gathered)
    grid = lambda a: a.reshape((n_i, n_s, n_v) + a.shape[1:])
    output, ema, metrics, state = jax.tree_util.tree_map(grid, res)
    return GridResult(output=output, ema=ema, metrics=metrics, state=state,
                      hyper={n: v for n, v in combos.items()})

  fit_grid.loop = loop
  fit_grid.programs = programs
  return fit_grid


def choose_max_batch(fit_grid, out_shape: tuple[int, int], *, channels: int, fraction: float = 0.8,
                     probe: Optional[tuple[int, int]] = None, loop=None) -> tuple[int, str]:
  """How many fits one call may hold: ``fraction`` of the free memory over the estimated bytes per fit.

  ``loop`` (default ``fit_grid.loop``) is the loop whose memory is probed at small
  canvases; pass one without a size-specific forward operator (e.g. a crop to the
  image) when the grid has one.
  Returns ``(max_batch, reason)`` with the numbers behind the choice.
  """
  per_fit = memory_lib.estimate_bytes(loop or fit_grid.loop, out_shape, channels=channels, seeds=1, probe=probe)
  free = memory_lib.available_bytes()
  if free is None:
    return 1 << 30, f"free memory unknown; estimated {per_fit / 2**20:.0f} MiB per fit; no limit"
  n = max(1, int(fraction * free // max(per_fit, 1)))
  return n, (f"{fraction:.0%} of {free / 2**30:.1f} GiB free / {per_fit / 2**20:.0f} MiB per fit "
             f"(estimated before compiling) = {n} fits per call")


def fit_buckets(fit_grid, keys: jax.Array, images: Sequence[jax.Array], *, clean: Optional[Sequence] = None,
                aux: Optional[Sequence] = None, z: Optional[Sequence] = None, **kwargs) -> list[GridResult]:
  """Fits images of different sizes: grouped by shape, one ``fit_grid`` call (one compile) per size.

  ``clean``, ``aux`` and ``z`` are per-image sequences (as ``images``) or None.
  Returns one :class:`GridResult` per input image (leading axes ``(1, S, V)``), in input order.
  """
  per_image = {"clean": clean, "aux": aux, "z": z}
  for name, seq in per_image.items():
    if seq is not None and len(seq) != len(images):
      raise ValueError(f"`{name}` has {len(seq)} entries but there are {len(images)} images.")
  buckets: dict[tuple, list[int]] = {}
  for i, image in enumerate(images):
    shapes = (tuple(image.shape),) + tuple(None if s is None else tuple(np.shape(s[i])) for s in per_image.values())
    buckets.setdefault(shapes, []).append(i)
  results: list[Optional[GridResult]] = [None] * len(images)
  for members in buckets.values():
    targets = jnp.stack([jnp.asarray(images[i]) for i in members])
    extra = {name: None if seq is None else jnp.stack([jnp.asarray(seq[i]) for i in members])
             for name, seq in per_image.items()}
    r = fit_grid(keys, targets, **extra, **kwargs)
    for j, i in enumerate(members):
      results[i] = jax.tree_util.tree_map(lambda a, j=j: a[j:j + 1], r._replace(hyper=None))._replace(hyper=r.hyper)
  return results
