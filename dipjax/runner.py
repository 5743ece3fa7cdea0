r"""Many fits in chunks of steps: the one loop under :func:`dipjax.restore` and :mod:`dipjax.batch`.

A batch of ``B`` independent fits — one per seed, tile, image or hyper-parameter
value — is a :class:`FitState` with a leading axis ``B`` and a :class:`Fits` of their
observations, operators and ground truths (leading axis ``B`` on every leaf, so each
fit can have its own mask). :func:`compile_chunks` compiles the program that runs
``n`` steps of all of them (``map_seeds`` over :meth:`FitLoop.run`: vmapped groups,
one group after another; optionally sharded over a device mesh), once per distinct
chunk length; :func:`run_chunks` calls it until the steps are done, and after each
chunk hands the state to a callback that may end the run (early stopping,
divergence), report progress, write a checkpoint or render snapshots.

Chunking never changes the result: the scan carry holds all the state and the
per-step randomness is ``fold_in(key, step)``, so ``k`` chunks equal one scan bit for
bit (tested).

Example:
  >>> import jax, jax.numpy as jnp, dipjax
  >>> from dipjax import runner
  >>> loop = dipjax.make_fit_loop(dipjax.skip_tiny(), input_channels=4)
  >>> state = runner.init_fits(loop, jax.random.split(jax.random.key(0), 2), (16, 16))
  >>> fits = runner.Fits(target=jnp.zeros((2, 16, 16, 3)))
  >>> programs = runner.compile_chunks(loop, state, fits, lengths=[5])
  >>> state, curves, done, ended = runner.run_chunks(programs, state, fits, num_steps=10, chunk=5)
  >>> done, curves.loss.shape, ended
  (10, (2, 10), None)
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import numpy as np

from dipjax import fit as fit_lib
from dipjax import operators as operators_lib


class Fits(NamedTuple):
  """What ``B`` fits are fitted to; every array leaf has a leading axis ``B``."""

  target: jax.Array  # (B, h, w, C): observations x0
  operator: Any = operators_lib.Identity()  # forward operators A, stacked (leaves (B, ...))
  readout: Any = operators_lib.Identity()  # network output -> restored image (e.g. a Crop; static, no leaves)
  clean: Optional[jax.Array] = None  # (B, H, W, C) ground truths, for the PSNR curves only


def _hashable(*values) -> bool:
  try:
    hash(values)
    return True
  except TypeError:
    return False


@functools.lru_cache(maxsize=128)
def _init_program(loop: fit_lib.FitLoop, out_shape: tuple):
  one = lambda k, zi, h: loop.init(k, out_shape, z=zi, hyper=h)
  return jax.jit(jax.vmap(one))


def init_fits(loop: fit_lib.FitLoop, keys: jax.Array, out_shape: tuple[int, int], *,
              z: Optional[jax.Array] = None, hyper: Optional[dict] = None) -> fit_lib.FitState:
  """The initial carries of ``len(keys)`` fits (``z``: ``(B, H, W, C_in)`` inputs; ``hyper``: ``{name: (B,)}``).

  The compiled program is cached per loop and output shape (a second grid call of the
  same shapes compiles nothing).
  """
  return _init_program(loop, tuple(int(s) for s in out_shape))(keys, z, hyper)


def _chunk_fn(loop: fit_lib.FitLoop, n: int, group: int) -> Callable:
  def one(args):
    st, f = args
    new, metrics, _ = loop.run(st, f.target, operator=f.operator, readout=f.readout, clean=f.clean, num_steps=n)
    return new, metrics

  return lambda st, f: fit_lib.map_seeds(one, (st, f), seeds_per_group=group)


@functools.lru_cache(maxsize=128)
def _chunk_program(loop: fit_lib.FitLoop, n: int, group: int):
  fn = _chunk_fn(loop, n, group)

  def run_chunk(st, f):
    return fn(st, f)

  return jax.jit(run_chunk)


class Programs(dict):
  """``{n: compiled program of n steps}``; a length not compiled yet is compiled on first use."""

  def __init__(self, build: Callable[[int], Any], lengths: Sequence[int] = ()):
    super().__init__()
    self.build = build
    for n in sorted(set(int(n) for n in lengths)):
      self[n] = build(n)

  def __missing__(self, n: int):
    self[n] = program = self.build(int(n))
    return program


def compile_chunks(loop: fit_lib.FitLoop, state: fit_lib.FitState, fits: Fits, *, lengths: Sequence[int],
                   group: Optional[int] = None, shardings=None, ahead_of_time: bool = True) -> Programs:
  """The programs running ``n`` steps of every fit: ``(state, fits) -> (state, StepMetrics (B, n))``.

  ``lengths`` are prepared now (others on first use); ``group``: fits vmapped together
  (default :func:`dipjax.fit.default_group_size`); ``shardings``: optional
  ``in_shardings`` of ``(state, fits)`` for a device mesh. ``ahead_of_time``: compile
  now (``jit(...).lower(...).compile()``, whose memory analysis can be read before the
  run); otherwise the jitted functions, cached per loop, length and group, so repeated
  calls of the same shapes compile once.
  """
  batch = jax.tree_util.tree_leaves(state)[0].shape[0]
  group = fit_lib.default_group_size(batch) if group is None else group

  def program(n):
    if not ahead_of_time and shardings is None:
      return _chunk_program(loop, n, group)
    fn = _chunk_fn(loop, n, group)

    # A function of its own (own name, so own compilation-cache entries) for programs compiled ahead of time or
    # sharded: they never share an executable with the cached jitted programs above.
    def run_chunk_compiled(st, f):
      return fn(st, f)

    jitted = jax.jit(run_chunk_compiled, in_shardings=shardings) if shardings is not None else jax.jit(
        run_chunk_compiled)
    return jitted.lower(state, fits).compile() if ahead_of_time else jitted

  return Programs(program, lengths)


def auto_chunk(target_s: float = 20.0, first: int = 10,
               choices: Sequence[int] = (10, 20, 50, 100, 200, 500, 1000)) -> Callable[[Optional[float]], int]:
  """A chunk rule for :func:`run_chunks`: ``first`` steps, then the largest of ``choices`` lasting <= ``target_s``.

  The seconds per step are measured on the chunks already run, so a long batched
  run reports progress about every ``target_s`` seconds on any machine (each distinct
  length compiles once).
  """

  def rule(seconds_per_step: Optional[float]) -> int:
    if seconds_per_step is None:
      return first
    fitting = [c for c in choices if c * seconds_per_step <= target_s]
    return max(fitting) if fitting else min(choices)

  return rule


@functools.lru_cache(maxsize=128)
def _render_program(loop: fit_lib.FitLoop, readout, group: int):
  one = lambda st: (readout(loop.render(st)), readout(st.ema))
  return jax.jit(lambda st: fit_lib.map_seeds(one, st, seeds_per_group=group))


def render_fits(loop: fit_lib.FitLoop, state: fit_lib.FitState, readout=operators_lib.Identity(),
                group: Optional[int] = None):
  """``(readout(f_θ(z)), readout(EMA))`` of every fit, ``(B, H, W, C)`` each, grouped as the chunk programs.

  Fits are rendered in the same groups as they are run (one at a time on CPU), so a
  fit's result does not depend on how many other fits share its batch.
  """
  batch = jax.tree_util.tree_leaves(state)[0].shape[0]
  group = fit_lib.default_group_size(batch) if group is None else group
  if _hashable(readout):
    return _render_program(loop, readout, group)(state)
  return _render_program.__wrapped__(loop, readout, group)(state)


def chunk_lengths(num_steps: int, chunk: int, done: int = 0) -> list[int]:
  """The distinct chunk lengths a run of ``num_steps`` in chunks of ``chunk`` (from step ``done``) calls."""
  left = num_steps - done
  if left <= 0:
    return []
  return sorted({min(chunk, left), (left % chunk) or min(chunk, left)})


def run_chunks(programs: dict, state: fit_lib.FitState, fits: Fits, *, num_steps: int, chunk, done: int = 0,
               after_chunk: Optional[Callable[[fit_lib.FitState, Any, int], Optional[str]]] = None):
  """Runs the compiled chunks from step ``done`` to ``num_steps``.

  ``chunk``: steps per call, or a rule ``(seconds per step or None) -> steps`` such as
  :func:`auto_chunk`. ``after_chunk(state, metrics, done) -> reason | None`` is called
  after each chunk (``metrics``: this chunk's :class:`StepMetrics`, ``(B, n)``); a
  returned string ends the run early.

  Returns:
    ``(state, curves, done, ended)``: the final carries, the per-step metrics of the
    steps run here (each ``(B, steps)``, host arrays), the step reached and the
    reason the run ended early (None when it ran to ``num_steps``).
  """
  curves, ended, seconds_per_step = [], None, None
  while done < num_steps:
    n = min(chunk(seconds_per_step) if callable(chunk) else chunk, num_steps - done)
    fresh = n not in programs  # compiled on this call: its time would say nothing about the step time
    program = programs[n]
    t0 = time.perf_counter()
    state, metrics = jax.block_until_ready(program(state, fits))
    if not fresh:
      seconds_per_step = (time.perf_counter() - t0) / n
    metrics = jax.tree_util.tree_map(np.asarray, metrics)
    curves.append(metrics)
    done += n
    if after_chunk is not None:
      ended = after_chunk(state, metrics, done)
      if ended:
        break
  return state, concat_curves(curves), done, ended


def concat_curves(curves: Sequence) -> Optional[fit_lib.StepMetrics]:
  """Per-chunk :class:`StepMetrics` ``(B, n_i)`` joined along the step axis (None for none)."""
  if not curves:
    return None
  return jax.tree_util.tree_map(lambda *a: np.concatenate([np.asarray(x) for x in a], axis=1), *curves)


class Progress(NamedTuple):
  """What a progress report says after a chunk."""

  done: int  # steps done
  total: int  # steps in all
  elapsed_s: float  # seconds since the first chunk started (compile excluded)
  last: dict  # the last step's scalar metrics of fit 0 (loss, psnr_target, psnr_clean, ema_psnr_clean, ...)


def format_progress(p: Progress, *, has_clean: bool, width: int = 20) -> str:
  """``[#####-----] 500/1000 | 6.8 steps/s | ETA 1m13s | loss 5.1e-03 | PSNR(input) 26.10 | ...``.

  The PSNRs are of the per-step output ``x_t = f(z + σ_p ε_t)`` (and of the EMA).
  """
  filled = int(round(width * p.done / max(p.total, 1)))
  rate = p.done / max(p.elapsed_s, 1e-9)
  msg = (f"[{'#' * filled}{'-' * (width - filled)}] {p.done}/{p.total} | {rate:.1f} steps/s | "
         f"ETA {format_seconds((p.total - p.done) / max(rate, 1e-9))} | loss {p.last['loss']:.3e} | "
         f"PSNR(input) {p.last['psnr_target']:.2f}")
  if has_clean:
    msg += f" | PSNR(clean) x_t {p.last['psnr_clean']:.2f} | EMA {p.last['ema_psnr_clean']:.2f}"
  return msg


def format_seconds(seconds: float) -> str:
  """``73.4 -> '1m13s'``."""
  seconds = max(0, int(round(seconds)))
  return f"{seconds // 60}m{seconds % 60:02d}s"


class Throttle:
  """Calls ``report`` at most every ``every_s`` seconds (and always on the last call)."""

  def __init__(self, report: Callable[..., None], every_s: float = 0.0):
    self.report, self.every_s, self.last = report, float(every_s), -float("inf")

  def __call__(self, *args, final: bool = False) -> None:
    now = time.perf_counter()
    if final or now - self.last >= self.every_s:
      self.last = now
      self.report(*args)


def last_metrics(metrics, fit: int = 0) -> dict:
  """The last step's scalar metrics of fit ``fit`` from a chunk's ``StepMetrics (B, n)``."""
  return {k: float(np.asarray(v)[fit, -1]) for k, v in metrics._asdict().items() if np.ndim(v) == 2}
