"""The DIP optimisation: one jit-compiled ``lax.scan`` over optax Adam steps.

Deep Image Prior fits the parameters ``θ`` of an untrained network ``f_θ`` with a
fixed random input ``z`` to one corrupted observation ``x0`` through a forward
operator ``A`` (identity for denoising, a mask for inpainting, a downsampler for
super-resolution)::

    θ* = argmin_θ  E(A(f_θ(z + σ_p ε_t)), x0),   ε_t ~ N(0, I) drawn afresh each step t,

and reads the restored image off ``f_θ(z)`` before the network fits the
corruption. Each step also updates an exponential moving average of the
outputs, ``ema_t = d ema_{t-1} + (1 - d) x_t`` (``ema_0 = x_0``, ``d = 0.99``).

The core is written for one image and one seed. :func:`make_fit_loop` takes the
static choices (network, loss, optimiser, EMA, input, guard, stopping criteria)
and returns the pure ``init``/``run``/``render`` of one fit; the forward operator
``A`` (:mod:`dipjax.operators`) and the observation are *arguments* of ``run``, so
one compiled program serves every mask or crop window and per-image operators
batch with ``vmap``. ``run`` can be called in chunks (a progress bar, an early
exit, a resume) with bit-identical results to one long scan: all per-step
randomness comes from ``fold_in(key, step)`` and all mutable state is in the named
carry :class:`FitState`. :func:`make_fit` wraps ``init`` + ``run`` + ``render`` in one
jit-compiled call; many seeds run in one compiled program with :func:`fit_seeds`
(``jax.vmap`` over keys, in groups run one after another). The whole run with
canvas, chunks, stopping, checkpoints and ensembles is :func:`dipjax.restore`.

Optional rollback guard (the reference's "backtracking"): every ``guard_every``
steps the PSNR of ``A(x_t)`` against the target is compared with the value at the
last passed check; if it dropped by more than ``guard_drop_db`` the parameters
saved at that check are restored (a ``lax.cond``), and, as in the reference, this
step's Adam update is still applied to them (the Adam moments are not restored).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from dipjax import architectures
from dipjax import inputs as inputs_lib
from dipjax import metrics as metrics_lib
from dipjax import models as models_lib
from dipjax import operators as operators_lib
from dipjax import regularizers
from dipjax import sgld as sgld_lib
from dipjax import stopping as stopping_lib
from dipjax import validation


class FitState(NamedTuple):
  """The scan carry: everything that changes from step to step, plus the run's constants."""

  step: jax.Array  # () int32: number of Adam steps taken so far
  params: jax.Array  # (P,) float32: all trainable values raveled (FitLoop.unravel gives {'net': ..., ['z': ...]})
  opt_state: optax.OptState  # optimiser state (Adam: count, mu, nu)
  ema: jax.Array  # (H, W, C_out) float32: EMA of the network outputs (equals x_0 after step 0)
  guard_params: Optional[jax.Array]  # (P,) params at the last passed rollback check; None when the guard is off
  guard_psnr: jax.Array  # () float32: PSNR(A(x), target) at the last passed check; -inf before the first
  num_rollbacks: jax.Array  # () int32: how many times the guard restored parameters
  z: jax.Array  # (H, W, C_in) float32: the fixed network input (the initial value when it is optimised)
  key: jax.Array  # PRNG key of the per-step input perturbation; step t uses fold_in(key, t)
  stop: tuple  # one dipjax.stopping.StopState per stopping criterion (empty without criteria)
  hyper: dict  # numeric hyper-parameters of this fit as () float32 arrays (vmappable): 'learning_rate', 'reg_noise_std'
  num_nonfinite: jax.Array  # () int32: steps whose loss, gradient or update was NaN/inf (skipped)
  nonfinite_streak: jax.Array  # () int32: such steps in a row up to now (0 after a good step)
  posterior: Optional[sgld_lib.MomentsState]  # running mean / M2 of the sampled outputs (H, W, C_out); None
  # without Langevin sampling


class StepMetrics(NamedTuple):
  """Per-step scalars; ``run`` stacks them to shape ``(num_steps,)``."""

  loss: jax.Array  # E(A(x_t), target), x_t = f_θ_t(z + σ_p ε_t): the per-step (perturbed) output
  psnr_target: jax.Array  # PSNR(A(x_t), target)
  psnr_clean: jax.Array  # PSNR(readout(x_t), clean) of the per-step output x_t; NaN when no clean image is given
  ema_psnr_target: jax.Array  # PSNR(A(ema_t), target)
  ema_psnr_clean: jax.Array  # PSNR(readout(ema_t), clean); NaN when no clean image is given
  rolled_back: jax.Array  # bool: the guard restored the parameters at this step
  nonfinite: jax.Array  # bool: the step was non-finite and skipped (the state was kept)
  stop_scores: jax.Array  # (K,) float32: each stopping criterion's score (NaN while not valid)


class Snapshots(NamedTuple):
  """Images kept every ``snapshot_every`` steps (index j is after step (j + 1) * snapshot_every)."""

  output: jax.Array  # (num_snapshots, H, W, C_out): f_θ(z) with the clean input
  ema: jax.Array  # (num_snapshots, H, W, C_out): the EMA at that step


class FitResult(NamedTuple):
  """What ``fit`` returns (leading axes added by ``vmap`` where used)."""

  output: jax.Array  # (H, W, C_out): f_θ(z) after the last step, rendered from the clean z
  ema: jax.Array  # (H, W, C_out): exponential moving average of the per-step outputs
  metrics: StepMetrics  # each field (num_steps,)
  snapshots: Optional[Snapshots]  # None unless snapshot_every > 0
  state: FitState  # the final carry, to continue with FitLoop.run


class FitLoop(NamedTuple):
  """Pure functions of one DIP fit, built by :func:`make_fit_loop`.

  ``init(key, out_shape, *, z=None, hyper=None) -> FitState``;
  ``run(state, target, *, operator=None, readout=None, clean=None, num_steps, snapshot_every=0)
  -> (FitState, StepMetrics, Snapshots | None)`` (``num_steps``/``snapshot_every`` are
  static: jit with ``static_argnames``; ``operator``/``readout`` are
  :mod:`dipjax.operators` values, identity when None);
  ``render(state) -> (H, W, C_out)``: the network on the clean input ``f_θ(z)``;
  ``unravel(state) -> {'net': params, ['z': input]}``: the pytree view of ``FitState.params``.

  The trainable values live in the carry as one flat vector (``ravel_pytree``):
  the optimiser update, the guard's copy and the EMA are then a handful of fused
  ops instead of a few per parameter leaf, which cut XLA compile time by ~2x
  (BUILD_NOTES.md). Optimisers therefore see one flat array.
  """

  init: Callable
  run: Callable
  render: Callable
  unravel: Callable
  model: nn.Module  # the network


# Adam with PyTorch's defaults; the learning rate is applied from the carry (one object, so equal loops are equal).
DEFAULT_ADAM = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)


class Langevin(NamedTuple):
  r"""Stochastic gradient Langevin dynamics on the default Adam step (Bayesian DIP, Cheng et al. 2019).

  Each step ``θ ← θ − η adam(∇L + λθ) + ε`` with ``ε ~ N(0, σ²)`` per parameter
  (:mod:`dipjax.sgld`): ``σ = s η`` (``convention='gp_dip'``, the authors' notebook,
  ``s = 2``) or ``σ² = 2 η s²`` (``'sgld'``, textbook); on the convolution kernels
  only (``conv_only``, the notebook) or on every parameter. The noise of step ``t`` is
  drawn from ``fold_in(fold_in(key, t), 1)`` of the fit's own key, so seeds differ and
  chunks/resume are bit-identical. After ``burn_in`` steps the per-step output is a
  posterior sample every ``sample_every`` steps (:func:`dipjax.sgld.is_sample_step`); its
  running mean and variance live in ``FitState.posterior`` (Welford, O(1) memory).
  With ``noise_scale=0`` and ``weight_decay=0`` the parameters follow plain Adam bit for bit.
  """

  noise_scale: float = 2.0  # s
  convention: str = "gp_dip"  # 'gp_dip' (std s·η) | 'sgld' (variance 2·η·s²)
  conv_only: bool = True  # noise on 4-D (convolution) weights only, as the GP-DIP notebook
  weight_decay: float = 5e-8  # λ, added to the gradient before Adam (PyTorch's Adam(weight_decay=λ))
  burn_in: int = 7000  # steps before the first posterior sample
  sample_every: int = 50  # thinning of the posterior samples

  def validate(self) -> "Langevin":
    validation.finite("noise_scale", self.noise_scale, minimum=0.0)
    validation.one_of("convention", self.convention, sgld_lib.CONVENTIONS)
    validation.finite("weight_decay", self.weight_decay, minimum=0.0)
    validation.non_negative_int("burn_in", self.burn_in)
    validation.positive_int("sample_every", self.sample_every)
    return self


class LoopSpec(NamedTuple):
  """The static choices of a fit loop (hashable; see :func:`make_fit_loop` for each)."""

  model: nn.Module
  tx: optax.GradientTransformation  # scale_by_adam when `default_adam`, else the user's optimiser
  default_adam: bool  # the update is -learning_rate * tx's, with the rate read from the carry
  loss_fn: Callable
  learning_rate: float
  reg_noise_std: float
  ema_decay: float
  input_kind: str
  input_channels: int
  input_scale: float
  optimize_input: bool
  guard_every: int
  guard_drop_db: float
  stopping: tuple
  langevin: Optional[Langevin]
  tv_weight: float = 0.0  # λ of the total-variation term λ TV_β(x_t) added to the loss (DIP-TV)
  tv_beta: float = 0.5  # β of that term (dipjax.regularizers.tv_loss)


def make_fit_loop(
    model: nn.Module,
    *,
    loss: Optional[Callable[[jax.Array, jax.Array], jax.Array]] = None,
    learning_rate: float = 0.01,
    optimizer: Optional[optax.GradientTransformation] = None,
    reg_noise_std: float = 0.0,
    ema_decay: float = 0.99,
    input_kind: str = "noise",
    input_channels: int = 32,
    input_scale: float = 0.1,
    optimize_input: bool = False,
    guard_every: int = 0,
    guard_drop_db: float = 5.0,
    stopping: tuple = (),
    langevin: Optional[Langevin] = None,
    tv_weight: float = 0.0,
    tv_beta: float = 0.5,
) -> FitLoop:
  """Builds the ``init``/``run``/``render`` functions of a DIP fit (see module docstring).

  Args:
    model: a Linen module mapping ``(H, W, C_in)`` to ``(H, W, C_out)`` (e.g. ``skip_default()``).
    loss: ``E(prediction, target) -> scalar``; default mean squared error.
    learning_rate: Adam step size (used when ``optimizer`` is None); finite, > 0.
    optimizer: an optax transformation; default ``optax.adam(learning_rate, 0.9, 0.999, 1e-8)``.
    reg_noise_std: ``σ_p`` >= 0, std of the fresh Gaussian added to ``z`` each step.
    ema_decay: weight ``d`` in ``[0, 1)`` of the output EMA.
    input_kind / input_channels / input_scale: how ``init`` draws ``z`` (:func:`dipjax.make_input`).
    optimize_input: optimise ``z`` together with the network.
    guard_every: rollback-guard check interval in steps (0 disables the guard).
    guard_drop_db: PSNR drop (dB, > 0) against the target that triggers a rollback.
    stopping: early-stopping criteria (:mod:`dipjax.stopping`) tracked in the carry;
      each records the step it detects and the output there (``FitState.stop``).
    langevin: a :class:`Langevin` to sample the posterior (SGLD) instead of only
      optimising; needs the default optimiser. Its posterior mean and std are
      ``FitState.posterior`` (:func:`dipjax.sgld.moments_mean_std`).
    tv_weight: ``λ >= 0``; the objective becomes ``E(A(x_t), x0) + λ TV_β(x_t)`` on the
      network output ``x_t`` (DIP-TV, Liu et al. 2019; :func:`dipjax.regularizers.tv_loss`,
      a sum over pixels, so λ is small: the supplement's prior-effect study uses 1e-7
      on the pixels). The recorded ``loss`` includes the term. 0 (default): no term.
    tv_beta: the exponent ``β > 0`` of that term (0.5: isotropic TV).

  Every step is also guarded against non-finite values: when the loss, the gradient
  or the updated parameters contain NaN/inf the step is skipped (the state is kept,
  only the step counter advances, so the next step draws a fresh perturbation) and
  counted in ``num_nonfinite``/``nonfinite_streak`` and ``StepMetrics.nonfinite``.

  Returns:
    A :class:`FitLoop`.

  Example:
    >>> import jax, dipjax
    >>> loop = dipjax.make_fit_loop(dipjax.skip_tiny(), input_channels=4)
    >>> state = loop.init(jax.random.key(0), (16, 16))
    >>> run = jax.jit(loop.run, static_argnames=("num_steps", "snapshot_every"))  # compile once, run fast
    >>> state, metrics, _ = run(state, jax.numpy.zeros((16, 16, 3)), num_steps=3)
    >>> int(state.step), metrics.loss.shape
    (3, (3,))
  """
  if not isinstance(model, nn.Module):
    raise ValueError(f"`model` must be a flax.linen Module, got {type(model).__name__}.")
  if loss is not None and not callable(loss):
    raise ValueError(f"`loss` must be a function (prediction, target) -> scalar, got {loss!r}.")
  validation.finite("ema_decay", ema_decay, minimum=0.0, maximum=1.0, maximum_inclusive=False)
  validation.non_negative_int("guard_every", guard_every)
  validation.finite("guard_drop_db", guard_drop_db, minimum=0.0, inclusive=False)
  validation.finite("reg_noise_std", reg_noise_std, minimum=0.0)
  validation.finite("learning_rate", learning_rate, minimum=0.0, inclusive=False)
  validation.positive_int("input_channels", input_channels)
  validation.finite("input_scale", input_scale, minimum=0.0, inclusive=False)
  validation.finite("tv_weight", tv_weight, minimum=0.0)
  validation.finite("tv_beta", tv_beta, minimum=0.0, inclusive=False)
  stopping = tuple(stopping)
  if langevin is not None:
    if not isinstance(langevin, Langevin):
      raise ValueError(f"`langevin` must be a dipjax.fit.Langevin, got {langevin!r}.")
    langevin.validate()
    if optimizer is not None:
      raise ValueError("`langevin` needs the default optimiser (Adam with `learning_rate`); drop `optimizer`.")
  for c in stopping:
    if not all(hasattr(c, a) for a in ("init_aux", "score", "patience", "name")):
      raise ValueError(f"`stopping` must hold dipjax.stopping criteria, got {c!r}.")
  # The default optimiser is Adam with the learning rate read from the carry (FitState.hyper), so a batch of fits
  # can use different rates in one program; bit-identical to optax.adam(learning_rate) (= scale_by_adam, then
  # a multiplication by -learning_rate).
  default_adam = optimizer is None
  spec = LoopSpec(model=model, tx=DEFAULT_ADAM if default_adam else optimizer,
                  default_adam=default_adam, loss_fn=loss if loss is not None else metrics_lib.mse,
                  learning_rate=float(learning_rate), reg_noise_std=float(reg_noise_std), ema_decay=float(ema_decay),
                  input_kind=input_kind, input_channels=int(input_channels), input_scale=float(input_scale),
                  optimize_input=bool(optimize_input), guard_every=int(guard_every),
                  guard_drop_db=float(guard_drop_db), stopping=stopping, langevin=langevin,
                  tv_weight=float(tv_weight), tv_beta=float(tv_beta))
  try:
    return _cached_loop_of(spec)
  except TypeError:  # an unhashable option (e.g. a loss holding an array): a loop of its own
    return _loop_of(spec)


def _loop_of(spec: "LoopSpec") -> "FitLoop":
  """The loop of a spec; equal specs give the same functions, so every jit cache keyed on them is shared."""
  return FitLoop(init=functools.partial(init_state, spec), run=functools.partial(run_steps, spec),
                 render=functools.partial(render, spec), unravel=functools.partial(unravel, spec), model=spec.model)


_cached_loop_of = functools.lru_cache(maxsize=256)(_loop_of)


def _trainable_shapes(model: nn.Module, optimize_input: bool, z_shape: tuple) -> dict:
  """``{'net': params, ['z': input]}`` as ``ShapeDtypeStruct`` s: the tree that ``state.params`` ravels."""
  z = jax.ShapeDtypeStruct(z_shape, jnp.float32)
  tree = {"net": jax.eval_shape(model.init, jax.random.key(0), z).get("params", {})}  # {}: no parameters
  if optimize_input:
    tree["z"] = z
  return tree


@functools.lru_cache(maxsize=None)
def _unravel_fn(model: nn.Module, optimize_input: bool, z_shape: tuple):
  """The inverse of ``ravel_pytree`` for the trainable tree of ``model`` at input shape ``z_shape`` (cached)."""
  tree = _trainable_shapes(model, optimize_input, z_shape)
  return ravel_pytree(jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), tree))[1]


@functools.lru_cache(maxsize=None)
def _conv_kernel_mask(model: nn.Module, optimize_input: bool, z_shape: tuple) -> np.ndarray:
  """``(P,)`` float32 constant, 1 where the raveled parameters hold a 4-D conv kernel, else 0 (cached, built once)."""
  leaves = jax.tree_util.tree_leaves(_trainable_shapes(model, optimize_input, z_shape))  # ravel_pytree's order
  return np.concatenate([np.full(int(np.prod(a.shape)), a.ndim == 4, np.float32) for a in leaves])


def unravel(spec: LoopSpec, state: FitState) -> dict:
  """``{'net': params, ['z': input]}``: the pytree view of ``state.params``."""
  return _unravel_fn(spec.model, spec.optimize_input, tuple(state.z.shape))(state.params)


def render(spec: LoopSpec, state: FitState) -> jax.Array:
  """``f_θ(z)``: the network on the unperturbed input, ``(H, W, C_out)``."""
  tree = unravel(spec, state)
  return spec.model.apply({"params": tree["net"]}, tree["z"] if spec.optimize_input else state.z)


def _hyper_values(spec: LoopSpec, hyper: Optional[dict]) -> dict:
  values = {"learning_rate": spec.learning_rate, "reg_noise_std": spec.reg_noise_std}
  for name, value in (hyper or {}).items():
    if name not in values:
      raise ValueError(f"`hyper` takes {sorted(values)}, got {name!r}.")
    if name == "learning_rate" and not spec.default_adam:
      raise ValueError("`hyper['learning_rate']` needs the default optimiser (a custom `optimizer` has its own).")
    values[name] = value
  return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}


def init_state(spec: LoopSpec, key: jax.Array, out_shape: tuple[int, int], *, z: Optional[jax.Array] = None,
               hyper: Optional[dict] = None) -> FitState:
  """The carry before step 0: parameters, Adam state, ``z`` and the criteria's state, all drawn from ``key``.

  ``hyper`` overrides this fit's ``learning_rate``/``reg_noise_std`` (scalars, may be
  traced: vmap over them).
  """
  hyper = _hyper_values(spec, hyper)
  init_key, input_key, perturb_key = jax.random.split(key, 3)
  if z is None:  # the network's input size: the output's, or the Deep Decoder's small seed
    h_in, w_in, c_in = architectures.input_shape(spec.model, *out_shape, spec.input_channels)
    z = inputs_lib.make_input(input_key, (h_in, w_in), channels=c_in, kind=spec.input_kind, scale=spec.input_scale)
  z = jnp.asarray(z, jnp.float32)
  try:  # one random draw for all leaves (fast to compile) for networks built from dipjax layers
    net_params = models_lib.init_params(init_key, spec.model, z)
  except models_lib.UnknownParameterError:  # any other Linen module: its own initialisers
    net_params = spec.model.init(init_key, z).get("params", {})
  tree = {"net": net_params}
  if spec.optimize_input:
    tree["z"] = z
  params = ravel_pytree(tree)[0]
  out_struct = jax.eval_shape(lambda p, x: spec.model.apply({"params": p}, x), net_params, z)
  return FitState(
      step=jnp.zeros((), jnp.int32), params=params, opt_state=spec.tx.init(params),
      ema=jnp.zeros(out_struct.shape, jnp.float32), guard_params=params if spec.guard_every else None,
      guard_psnr=jnp.full((), -jnp.inf, jnp.float32), num_rollbacks=jnp.zeros((), jnp.int32), z=z,
      key=perturb_key, stop=tuple(stopping_lib.init(c, out_struct.shape) for c in spec.stopping), hyper=hyper,
      num_nonfinite=jnp.zeros((), jnp.int32), nonfinite_streak=jnp.zeros((), jnp.int32),
      posterior=None if spec.langevin is None else sgld_lib.moments_init(out_struct.shape))


def _loss_and_grad(spec: LoopSpec, state: FitState, target, operator):
  """``E(A(f_θ(z + σ_p ε_t)), x0)`` and its gradient; also the output ``x_t`` and ``A(x_t)``."""
  noise_key = jax.random.fold_in(state.key, state.step)
  unravel_params = _unravel_fn(spec.model, spec.optimize_input, tuple(state.z.shape))

  def objective(params):
    tree = unravel_params(params)
    z = tree["z"] if spec.optimize_input else state.z
    # z + σ_p ε_t with σ_p from the carry (σ_p = 0 gives z exactly).
    z = inputs_lib.perturb_input(noise_key, z, std=state.hyper["reg_noise_std"])
    out = spec.model.apply({"params": tree["net"]}, z)
    pred = operator(out)
    value = spec.loss_fn(pred, target)
    if spec.tv_weight:  # DIP-TV: λ TV_β of the network output (static: no term compiled when λ = 0)
      value = value + spec.tv_weight * regularizers.tv_loss(out, spec.tv_beta)
    return value, (out, pred)

  (value, (out, pred)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  return value, grads, out, pred


def _guard(spec: LoopSpec, state: FitState, psnr_target):
  """The rollback guard: ``(base params, guard params, guard PSNR, rolled back?)`` for this step."""
  if not spec.guard_every:
    return state.params, state.guard_params, state.guard_psnr, jnp.zeros((), bool)
  check = (state.step % spec.guard_every) == 0
  rolled_back = check & (psnr_target < state.guard_psnr - spec.guard_drop_db)
  save = check & ~rolled_back
  base = lax.cond(rolled_back, lambda: state.guard_params, lambda: state.params)
  guard_params = lax.cond(save, lambda: state.params, lambda: state.guard_params)
  guard_psnr = jnp.where(save, psnr_target, state.guard_psnr)
  return base, guard_params, guard_psnr, rolled_back


def _update_criteria(spec: LoopSpec, state: FitState, out, value, count):
  """Every stopping criterion's new state and its score at this step (``(K,)``)."""
  stop, scores = [], []
  for criterion, st in zip(spec.stopping, state.stop):
    new_st, score = stopping_lib.update(criterion, st, out, value, count)
    stop.append(new_st)
    scores.append(score)
  return tuple(stop), jnp.stack(scores) if scores else jnp.zeros((0,), jnp.float32)


def _keep_if_nonfinite(finite, new: FitState, old: FitState) -> FitState:
  """A non-finite step changes nothing but the step and the non-finite counters."""
  sel = lambda a, b: jax.tree_util.tree_map(lambda x, y: jnp.where(finite, x, y), a, b)
  return new._replace(
      params=sel(new.params, old.params), opt_state=sel(new.opt_state, old.opt_state), ema=sel(new.ema, old.ema),
      guard_params=sel(new.guard_params, old.guard_params), guard_psnr=sel(new.guard_psnr, old.guard_psnr),
      num_rollbacks=sel(new.num_rollbacks, old.num_rollbacks), stop=sel(new.stop, old.stop),
      posterior=sel(new.posterior, old.posterior),
      num_nonfinite=old.num_nonfinite + (~finite).astype(jnp.int32),
      nonfinite_streak=jnp.where(finite, 0, old.nonfinite_streak + 1).astype(jnp.int32))


def _langevin_noise(spec: LoopSpec, state: FitState) -> jax.Array:
  """The Langevin noise ``ε`` of this step, ``(P,)``: std ``s·η`` or ``sqrt(2η)·s``, masked to the conv kernels."""
  lv, lr = spec.langevin, state.hyper["learning_rate"]
  std = lv.noise_scale * (lr if lv.convention == "gp_dip" else jnp.sqrt(2.0 * lr))
  key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), 1)  # not the input perturbation's key
  noise = std * jax.random.normal(key, state.params.shape, jnp.float32)
  if not lv.conv_only:
    return noise
  return noise * _conv_kernel_mask(spec.model, spec.optimize_input, tuple(state.z.shape))  # a constant


def _optimizer_update(spec: LoopSpec, state: FitState, grads):
  """The parameter update and new optimiser state: Adam (rate from the carry) or the user's; SGLD if set."""
  lv = spec.langevin
  if lv is not None and lv.weight_decay:
    grads = grads + lv.weight_decay * state.params
  updates, opt_state = spec.tx.update(grads, state.opt_state, state.params)
  if spec.default_adam:
    updates = -state.hyper["learning_rate"] * updates
  if lv is not None and lv.noise_scale:
    updates = updates + _langevin_noise(spec, state)
  return updates, opt_state


def _posterior_update(spec: LoopSpec, state: FitState, out):
  """Adds this step's output to the posterior moments when it is a sample (after burn-in, every N steps)."""
  if spec.langevin is None:
    return None
  lv = spec.langevin
  take = sgld_lib.is_sample_step(state.step, burn_in=lv.burn_in, sample_every=lv.sample_every)
  return sgld_lib.moments_update(state.posterior, out, where=take)


def step(spec: LoopSpec, state: FitState, target, operator, readout, clean):
  """One optimiser step of one fit: ``(state, target, A, readout, clean) -> (state, StepMetrics)``."""
  value, grads, out, pred = _loss_and_grad(spec, state, target, operator)
  first = state.step == state.num_nonfinite  # no finite step yet: the EMA starts here
  ema = jnp.where(first, out, spec.ema_decay * state.ema + (1.0 - spec.ema_decay) * out)
  psnr_target = metrics_lib.psnr(pred, target)
  updates, opt_state = _optimizer_update(spec, state, grads)
  base, guard_params, guard_psnr, rolled_back = _guard(spec, state, psnr_target)
  params = optax.apply_updates(base, updates)
  finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(grads)) & jnp.all(jnp.isfinite(params))
  count = state.step + 1
  stop, scores = _update_criteria(spec, state, out, value, count)
  nan = jnp.full((), jnp.nan, jnp.float32)
  metrics = StepMetrics(
      loss=value, psnr_target=psnr_target,
      psnr_clean=nan if clean is None else metrics_lib.psnr(readout(out), clean),
      ema_psnr_target=metrics_lib.psnr(operator(ema), target),
      ema_psnr_clean=nan if clean is None else metrics_lib.psnr(readout(ema), clean),
      rolled_back=rolled_back & finite, nonfinite=~finite, stop_scores=scores)
  updated = state._replace(step=count, params=params, opt_state=opt_state, ema=ema, guard_params=guard_params,
                           guard_psnr=guard_psnr, num_rollbacks=state.num_rollbacks + rolled_back.astype(jnp.int32),
                           stop=stop, posterior=_posterior_update(spec, state, out))
  return _keep_if_nonfinite(finite, updated, state), metrics


def run_steps(spec: LoopSpec, state: FitState, target: jax.Array, *, operator=None, readout=None,
              clean: Optional[jax.Array] = None, num_steps: int, snapshot_every: int = 0):
  """``num_steps`` steps in one ``lax.scan``: ``(state, StepMetrics (num_steps,), Snapshots | None)``."""
  validation.non_negative_int("num_steps", num_steps)
  validation.non_negative_int("snapshot_every", snapshot_every)
  operator = operators_lib.as_operator(operator)
  readout = operators_lib.as_operator(readout)
  body = lambda s, _: step(spec, s, target, operator, readout, clean)
  if not snapshot_every:
    state, m = lax.scan(body, state, None, length=num_steps)
    return state, m, None
  n_chunks, rest = divmod(num_steps, snapshot_every)

  def chunk(s, _):
    s, cm = lax.scan(body, s, None, length=snapshot_every)
    return s, (cm, Snapshots(output=render(spec, s), ema=s.ema))

  state, (m, snaps) = lax.scan(chunk, state, None, length=n_chunks)
  m = jax.tree_util.tree_map(lambda a: a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:]), m)
  if rest:
    state, m_rest = lax.scan(body, state, None, length=rest)
    m = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), m, m_rest)
  return state, m, snaps


def _is_concrete(x) -> bool:
  try:
    np.asarray(x)
    return True
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return False


def check_image(name: str, x) -> None:
  """Checks that ``x`` is a float ``(H, W, C)`` array (finite where concrete); a one-line ``ValueError`` names ``name``."""
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    raise ValueError(f"`{name}` must be an array of shape (H, W, C), got {type(x).__name__}.")
  if len(x.shape) != 3:
    raise ValueError(f"`{name}` must have shape (H, W, C) (rank 3), got shape {tuple(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"`{name}` must be a float array with values in [0, 1], got dtype {x.dtype}.")
  if _is_concrete(x):
    arr = np.asarray(x)
    if not np.all(np.isfinite(arr)):
      bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
      raise ValueError(f"`{name}` has {bad} non-finite values (NaN or inf); pass a finite image.")


class Fit(NamedTuple):
  """A compiled DIP fit, made by :func:`make_fit`; call it as ``fit(key, target, ...)``.

  ``jitted(key, target, operator, readout, clean, z, out_shape)`` is the jit-compiled
  core (``jitted._cache_size()`` counts its compilations); ``loop`` the underlying
  :class:`FitLoop`.
  """

  loop: FitLoop
  jitted: Callable
  num_steps: int

  def __call__(self, key: jax.Array, target: jax.Array, *, operator=None, readout=None,
               clean: Optional[jax.Array] = None, z: Optional[jax.Array] = None,
               out_shape: Optional[tuple[int, int]] = None) -> FitResult:
    operator = operators_lib.as_operator(operator)
    readout = operators_lib.as_operator(readout)
    out_shape = check_fit_inputs(self.loop.model, target, operator=operator, readout=readout, clean=clean, z=z,
                                 out_shape=out_shape)
    return self.jitted(key, target, operator, readout, clean, z, out_shape)


def make_fit(model: nn.Module, *, num_steps: int, snapshot_every: int = 0, **loop_kwargs) -> Fit:
  """Returns a pure, jit-compiled ``fit(key, target, *, operator=None, readout=None, clean=None, z=None, out_shape=None)``.

  ``fit`` draws the network parameters and ``z`` from ``key``, runs ``num_steps``
  Adam steps in one ``lax.scan`` and returns a :class:`FitResult`. It compiles once
  per input shape and operator structure; ``jax.vmap`` over keys runs several seeds
  in one program.

  Args:
    model: the network (e.g. :func:`dipjax.skip_default`).
    num_steps: number of Adam steps (>= 1).
    snapshot_every: keep ``f_θ(z)`` and the EMA every this many steps (0: none).
    **loop_kwargs: the options of :func:`make_fit_loop` (``learning_rate``,
      ``reg_noise_std``, ``ema_decay``, ``input_kind``, ``input_channels``,
      ``optimize_input``, ``guard_every``, ``loss``, ``stopping``, ...).

  ``fit`` arguments:
    key: PRNG key of this run (parameters, ``z`` and the per-step perturbations).
    target: ``(h, w, c)`` float32 corrupted observation ``x0`` in ``[0, 1]``.
    operator: the forward operator ``A`` (:mod:`dipjax.operators`; identity when None).
    readout: maps the network output to the restored image compared with ``clean``
      (e.g. the crop of a canvas); identity when None.
    clean: optional ground truth (the restored image's shape), used only for the PSNR curves.
    z: optional fixed network input ``(H, W, C_in)`` (e.g. the flash image).
    out_shape: ``(H, W)`` of the network output; default ``operator.image_shape(target.shape)``.

  Example:
    >>> import jax, dipjax
    >>> fit = dipjax.make_fit(dipjax.skip_tiny(), num_steps=5, input_channels=4)
    >>> target = jax.random.uniform(jax.random.key(0), (32, 32, 3))
    >>> result = fit(jax.random.key(1), target)
    >>> result.output.shape, result.metrics.loss.shape
    ((32, 32, 3), (5,))
  """
  num_steps = validation.positive_int("num_steps", num_steps)
  snapshot_every = validation.non_negative_int("snapshot_every", snapshot_every)
  loop = make_fit_loop(model, **loop_kwargs)

  @functools.partial(jax.jit, static_argnames=("out_shape",))
  def fit_core(key, target, operator, readout, clean, z, out_shape):
    state = loop.init(key, out_shape, z=z)
    state, metrics, snaps = loop.run(state, target, operator=operator, readout=readout, clean=clean,
                                     num_steps=num_steps, snapshot_every=snapshot_every)
    return FitResult(output=loop.render(state), ema=state.ema, metrics=metrics, snapshots=snaps, state=state)

  return Fit(loop=loop, jitted=fit_core, num_steps=num_steps)


def check_fit_inputs(model: nn.Module, target, *, operator=None, readout=None, clean=None, z=None,
                     out_shape: Optional[tuple[int, int]] = None) -> tuple[int, int]:
  """Checks the arguments of a fit at the boundary; returns the network output's ``(H, W)``.

  Shapes are checked always (also under ``jit``/``vmap``), values (finite) when the
  arrays are concrete. Raises a one-line ``ValueError`` naming the argument and value.
  """
  operator = operators_lib.as_operator(operator)
  readout = operators_lib.as_operator(readout)
  check_image("target", target)
  if out_shape is None:
    out_shape = operator.image_shape(tuple(target.shape))[:2]
  out_shape = tuple(int(s) for s in out_shape)
  if len(out_shape) != 2:
    raise ValueError(f"`out_shape` must be (H, W), got {out_shape!r}.")
  if z is not None:
    check_image("z", z)
    expected = tuple(architectures.input_shape(model, *out_shape, z.shape[-1])[:2])
    if tuple(z.shape[:2]) != expected:
      raise ValueError(f"`z` has spatial size {tuple(z.shape[:2])} but this network needs {expected} for an output "
                       f"of {out_shape}.")
  _check_size(model, out_shape)
  c_out = getattr(model, "out_channels", None)
  out_full = out_shape + ((c_out,) if c_out is not None else (target.shape[-1],))
  pred = jax.eval_shape(operator, jax.ShapeDtypeStruct(out_full, jnp.float32))
  if tuple(pred.shape) != tuple(target.shape):
    if isinstance(operator, operators_lib.Identity):
      raise ValueError(f"`target` has shape {tuple(target.shape)} but the network outputs {out_full} "
                       f"(out_channels={c_out}); build the model with out_channels={target.shape[-1]}.")
    raise ValueError(f"the operator maps the network output {out_full} to {tuple(pred.shape)}, "
                     f"but `target` has shape {tuple(target.shape)}; pass `out_shape` or fix the operator.")
  if clean is not None:
    check_image("clean", clean)
    restored = tuple(jax.eval_shape(readout, jax.ShapeDtypeStruct(out_full, jnp.float32)).shape)
    if tuple(clean.shape) != restored:
      raise ValueError(f"`clean` must have the restored image's shape {restored}, got {tuple(clean.shape)}.")
  return out_shape


def _check_size(model: nn.Module, out_shape: tuple[int, int]) -> None:
  min_size = getattr(model, "min_size", 1)
  multiple = getattr(model, "size_multiple", 1)
  if min(out_shape) < min_size:
    raise ValueError(f"image size {out_shape[0]}x{out_shape[1]} is too small: this network "
                     f"({getattr(model, 'num_levels', '?')} levels) needs H, W >= {min_size}.")
  if multiple > 1 and (out_shape[0] % multiple or out_shape[1] % multiple):
    raise ValueError(f"image size {out_shape[0]}x{out_shape[1]} must be a multiple of {multiple} for this network "
                     f"(a level without skip connection or with pooling); pad or crop the image to a multiple "
                     f"of {multiple} (dipjax.canvas_for does it, dipjax.restore does it for you).")


def default_group_size(num_fits: int, num_devices: int = 1) -> int:
  """How many fits to vmap together (the one grouping policy of dipjax).

  On accelerators all of them; on CPU one per device, run one after another, because
  a vmapped group is no faster per fit than one fit there and gets slower as it grows
  (each op then streams the group's activations through the cache; BUILD_NOTES.md §3).
  """
  if jax.default_backend() == "cpu":
    return max(1, int(num_devices))
  return int(num_fits)


def map_seeds(fn: Callable, xs, *, seeds_per_group: Optional[int] = None):
  """Applies a one-seed function to every seed of a batched pytree, in vmapped groups.

  ``map_seeds(fn, xs)[i] == fn(xs[i])`` for every leading index ``i``: groups of
  ``seeds_per_group`` seeds are vmapped together and the groups run one after another
  (``lax.map``) in the same program.

  Args:
    fn: a function of one seed's pytree (e.g. a :class:`FitState`, or a key).
    xs: a pytree whose leaves have a leading seed axis ``S``.
    seeds_per_group: seeds vmapped together; must divide ``S``. Default
      :func:`default_group_size`: all ``S`` on accelerators, 1 on CPU.

  Returns:
    The pytree of ``fn``'s results with a leading axis ``S``.
  """
  num_seeds = jax.tree_util.tree_leaves(xs)[0].shape[0]
  if seeds_per_group is None:
    seeds_per_group = default_group_size(num_seeds)
  if not isinstance(seeds_per_group, (int, np.integer)) or seeds_per_group < 1 or num_seeds % seeds_per_group:
    raise ValueError(f"`seeds_per_group` must be a positive divisor of the number of seeds ({num_seeds}), "
                     f"got {seeds_per_group!r}.")
  one_group = jax.vmap(fn)
  if seeds_per_group == num_seeds:
    return one_group(xs)
  split = lambda a: a.reshape((num_seeds // seeds_per_group, seeds_per_group) + a.shape[1:])
  merge = lambda a: a.reshape((num_seeds,) + a.shape[2:])
  return jax.tree_util.tree_map(merge, lax.map(one_group, jax.tree_util.tree_map(split, xs)))


def fit_seeds(fit: Callable[..., FitResult], keys: jax.Array, target: jax.Array, *,
              seeds_per_group: Optional[int] = None, **kwargs) -> FitResult:
  """Runs ``fit`` for each key in ``keys`` in one compiled program (shared target).

  Each seed has its own parameters, input, perturbations and BatchNorm statistics;
  ``fit_seeds(fit, keys, t).output[i]`` equals ``fit(keys[i], t).output`` (to float
  rounding, see BUILD_NOTES.md). Seeds are vmapped in groups (:func:`map_seeds`).

  Args:
    fit: a function from :func:`make_fit`.
    keys: ``(S,)`` keys, e.g. ``jax.random.split(key, S)``.
    target: the shared corrupted image.
    seeds_per_group: see :func:`map_seeds` (default: all seeds on accelerators, 1 on CPU).
    **kwargs: ``operator``, ``readout``, ``clean``, ``z``, ``out_shape`` as for ``fit`` (shared by all seeds).

  Returns:
    A :class:`FitResult` whose arrays have a leading axis ``S``.
  """
  return map_seeds(lambda k: fit(k, target, **kwargs), keys, seeds_per_group=seeds_per_group)


def ensemble(outputs: jax.Array) -> jax.Array:
  """The seed ensemble: the mean of ``(S, H, W, C)`` outputs over the seed axis."""
  if outputs.ndim != 4:
    raise ValueError(f"`outputs` must be (S, H, W, C), got shape {outputs.shape}.")
  return jnp.mean(outputs, axis=0)
