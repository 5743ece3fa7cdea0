r"""Stochastic Gradient Langevin Dynamics (SGLD) for DIP: Bayesian DIP of Cheng et al. (CVPR 2019).

Cheng, Gadelha, Maji and Sheldon ("A Bayesian perspective on the deep image prior")
sample the network weights θ from the posterior ``p(θ | x0) ∝ exp(−L(θ))`` instead of
optimising them, and report the **posterior mean** of the outputs, which does not
degrade with more steps the way a single DIP iterate does (no early stopping needed).

**The update.** Langevin dynamics with step ``η`` adds Gaussian noise to a gradient
step, ``θ ← θ − η ∇L(θ) + ε``, ``ε ~ N(0, 2η)`` (Welling & Teh 2011). Here the gradient
step is the reference's Adam step with (coupled, PyTorch-style) weight decay ``λ``:
``g = ∇L(θ) + λ θ``, ``Δ = −η · adam(g)``, then ``θ ← θ + Δ + s · ε`` with

* ``convention='sgld'`` (default): ``ε ~ N(0, 2η)``, i.e. ``Var = 2 η s²`` — textbook SGLD;
* ``convention='gp_dip'``: ``ε ~ N(0, η²)``, i.e. ``std = s · η`` — what the authors'
  notebook (``ZezhouCheng/GP-DIP``, ``Image_Denoising.ipynb``) does:
  ``randn · param_noise_sigma · learning_rate`` with ``param_noise_sigma = 2``, so
  ``s = 2`` reproduces it: ``std = 2η`` (0.02 at ``η = 0.01``), on the convolution
  weights only (``mask=conv_kernels``; 4-D tensors).

With DIP's *mean* squared error (not the full log-likelihood ``Σ/2σ²``) the textbook
variance ``2η`` is very large next to the gradient step (std 0.14 per step at
``η = 0.01``, while the 128-channel network's 3×3 conv weights start within ±0.03):
use :data:`GP_DIP_OPTIMIZER` / :data:`GP_DIP` to reproduce the paper.

**Per-step randomness.** The noise of step ``t`` is drawn from
``jax.random.fold_in(key, t)``; ``t`` is kept in the optimiser state, so a run split
into chunks (or resumed from a saved state) is bit-identical to one run.

**Posterior mean.** :class:`MomentsState` with :func:`moments_init`,
:func:`moments_update` (Welford's algorithm: ``n ← n + 1``, ``δ = x − μ``,
``μ ← μ + δ / n``, ``M₂ ← M₂ + δ (x − μ)``) and :func:`moments_mean_std` keep the
running mean and standard deviation of the sampled outputs in O(1) memory, inside a
``lax.scan`` carry; :func:`is_sample_step` is the reference's schedule (after
``burn_in`` steps, every ``sample_every`` steps).

Example:
  >>> import jax, jax.numpy as jnp, optax
  >>> from dipjax import sgld
  >>> opt = sgld.sgld_adam(0.01, key=jax.random.key(0))
  >>> params = {"w": jnp.zeros((3, 3, 4, 8)), "b": jnp.zeros((8,))}
  >>> state = opt.init(params)
  >>> updates, state = opt.update(jax.tree.map(jnp.ones_like, params), state, params)
  >>> optax.apply_updates(params, updates)["w"].shape
  (3, 3, 4, 8)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

CONVENTIONS = ("sgld", "gp_dip")

Mask = Union[None, Any, Callable[[Any], Any]]


def conv_kernels(tree: Any) -> Any:
  """A mask (pytree of Python bools) selecting the 4-D leaves: the convolution kernels.

  As the reference's ``len(x.size()) == 4`` test; Flax's ``Conv`` kernels are
  ``(kh, kw, C_in, C_out)``, while biases and BatchNorm scales are 1-D.

  Args:
    tree: a pytree of arrays (parameters or updates).

  Returns:
    The same structure with ``True`` at 4-D leaves, ``False`` elsewhere.

  Example:
    >>> import jax.numpy as jnp
    >>> conv_kernels({"kernel": jnp.zeros((3, 3, 1, 2)), "bias": jnp.zeros(2)})
    {'bias': False, 'kernel': True}
  """
  return jax.tree.map(lambda x: jnp.ndim(x) == 4, tree)


class LangevinNoiseState(NamedTuple):
  """State of :func:`add_langevin_noise`."""

  count: jax.Array  # () int32: the number of updates so far (the step index t of the next one)
  key: jax.Array  # the base PRNG key; step t uses fold_in(key, t)


def _is_static_zero(value) -> bool:
  return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and value == 0


def add_langevin_noise(learning_rate: Union[float, optax.Schedule], *, key: jax.Array, noise_scale: float = 1.0,
                       convention: str = "sgld", mask: Mask = None) -> optax.GradientTransformation:
  """Adds the Langevin noise ``s · ε`` to the updates (the last link of an SGLD chain).

  Args:
    learning_rate: the step ``η`` (a float or an optax schedule of the step count);
      the same one the preceding gradient step uses.
    key: PRNG key; step ``t`` draws from ``jax.random.fold_in(key, t)``, one
      independent stream per leaf.
    noise_scale: ``s >= 0``. A Python ``0`` leaves the updates untouched (bit for bit).
    convention: ``'sgld'``: ``ε ~ N(0, 2η)`` (variance ``2 η s²``); ``'gp_dip'``:
      ``ε ~ N(0, η²)`` (std ``s η``; the GP-DIP notebook with ``s = 2``).
    mask: which leaves get noise: ``None`` (all), a pytree of bools like the updates,
      or a function of the updates returning one (e.g. :func:`conv_kernels`).

  Returns:
    An ``optax.GradientTransformation`` whose state is a :class:`LangevinNoiseState`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> t = add_langevin_noise(0.01, key=jax.random.key(0), noise_scale=2.0, convention="gp_dip")
    >>> u, _ = t.update({"w": jnp.zeros((100_000,))}, t.init(None))
    >>> round(float(u["w"].std()), 2)  # 2 * 0.01
    0.02
  """
  if convention not in CONVENTIONS:
    raise ValueError(f"sgld.add_langevin_noise: `convention` must be one of {CONVENTIONS}, got {convention!r}.")
  for name, value in (("noise_scale", noise_scale), ("learning_rate", learning_rate)):
    if isinstance(value, (int, float, np.number)) and not value >= 0:
      raise ValueError(f"sgld.add_langevin_noise: `{name}` must be >= 0, got {value!r}.")
  skip = _is_static_zero(noise_scale)

  def init_fn(params):
    del params
    return LangevinNoiseState(count=jnp.zeros([], jnp.int32), key=key)

  def update_fn(updates, state, params=None):
    del params
    next_state = LangevinNoiseState(count=optax.safe_int32_increment(state.count), key=state.key)
    if skip:
      return updates, next_state
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    lr = jnp.asarray(lr, jnp.float32)
    std = noise_scale * (jnp.sqrt(2.0 * lr) if convention == "sgld" else lr)
    leaves, treedef = jax.tree.flatten(updates)
    selected = [True] * len(leaves)
    if mask is not None:
      selected = treedef.flatten_up_to(mask(updates) if callable(mask) else mask)
    keys = jax.random.split(jax.random.fold_in(state.key, state.count), max(len(leaves), 1))
    noisy = [u + (std * jax.random.normal(k, jnp.shape(u), jnp.float32)).astype(jnp.result_type(u)) if sel else u
             for u, k, sel in zip(leaves, keys, selected)]
    return treedef.unflatten(noisy), next_state

  return optax.GradientTransformation(init_fn, update_fn)


def sgld_adam(learning_rate: Union[float, optax.Schedule], *, key: jax.Array, weight_decay: float = 5e-8,
              noise_scale: float = 1.0, convention: str = "sgld", mask: Mask = None, b1: float = 0.9,
              b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
  """Adam-preconditioned SGLD as in Bayesian DIP: weight decay, Adam, ``−η`` scaling, Langevin noise.

  ``optax.chain(add_decayed_weights(λ), scale_by_adam(b1, b2, eps),
  scale_by_learning_rate(η), add_langevin_noise(η, ...))``. Without the noise this
  is ``torch.optim.Adam(lr=η, weight_decay=λ)`` (decay added to the gradient before
  Adam), and with a Python ``noise_scale=0`` its updates equal those of
  ``optax.chain(optax.add_decayed_weights(λ), optax.adam(η, b1, b2, eps))`` bit for bit.

  Args:
    learning_rate: ``η`` (0.01 in the paper), a float or an optax schedule.
    key: PRNG key of the noise (see :func:`add_langevin_noise`).
    weight_decay: ``λ`` (5e-8 in the paper), applied to every parameter as the
      reference's ``Adam(weight_decay=...)``.
    noise_scale: ``s``; see ``convention``.
    convention: ``'sgld'`` (variance ``2 η s²``) or ``'gp_dip'`` (std ``s η``).
    mask: which parameters get noise (``None`` = all; :func:`conv_kernels` = the paper's).
    b1, b2, eps: Adam's parameters (PyTorch's defaults).

  Returns:
    An ``optax.GradientTransformation``; pass ``params`` to ``update`` (weight decay needs them).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import jax, jax.numpy as jnp, optax
    >>> opt = sgld_adam(0.01, key=jax.random.key(0), **GP_DIP_OPTIMIZER)
    >>> plain = optax.chain(optax.add_decayed_weights(5e-8), optax.adam(0.01))
    >>> p = {"conv": jnp.ones((3, 3, 2, 2)), "bias": jnp.ones((2,))}
    >>> g = jax.tree.map(jnp.ones_like, p)
    >>> u, _ = opt.update(g, opt.init(p), p)
    >>> v, _ = plain.update(g, plain.init(p), p)
    >>> bool(jnp.array_equal(u["bias"], v["bias"])), bool(jnp.array_equal(u["conv"], v["conv"]))
    (True, False)
  """
  return optax.chain(
      optax.add_decayed_weights(weight_decay),
      optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
      optax.scale_by_learning_rate(learning_rate),
      add_langevin_noise(learning_rate, key=key, noise_scale=noise_scale, convention=convention, mask=mask),
  )


# The optimiser of the GP-DIP denoising notebook: Adam(lr=0.01, weight_decay=5e-8), then noise of std 2·lr on
# the 4-D (conv) weights. Use as ``sgld_adam(0.01, key=key, **GP_DIP_OPTIMIZER)``.
GP_DIP_OPTIMIZER = dict(weight_decay=5e-8, noise_scale=2.0, convention="gp_dip", mask=conv_kernels)

# The rest of that notebook's run (for whoever wires SGLD into the fit loop): 20 000 steps, Adam lr 0.01, input
# jitter 1/30, a posterior sample every 50 steps after 7 000 burn-in steps (is_sample_step), and the rollback
# guard (restore the last parameters when the PSNR to the noisy image drops by more than 5 dB).
GP_DIP = dict(learning_rate=0.01, num_steps=20_000, burn_in=7_000, sample_every=50, reg_noise_std=1 / 30,
              **GP_DIP_OPTIMIZER)


def is_sample_step(step: jax.Array, *, burn_in: int, sample_every: int) -> jax.Array:
  """Whether the output of 0-based step ``step`` is a posterior sample: ``step > burn_in`` and ``step % every == 0``.

  The reference's ``i > burnin_iter and i % MCMC_iter == 0`` (``i`` counts forward
  passes from 0; the sample is that step's output — computed from the jittered
  input, as the reference — before its parameter update).

  Args:
    step: ``()`` int step index (may be traced).
    burn_in: steps discarded first (7000 in the paper).
    sample_every: thinning interval (50 in the paper), ``>= 1``.

  Returns:
    ``()`` bool array.

  Example:
    >>> [int(s) for s in range(0, 301, 50) if is_sample_step(s, burn_in=100, sample_every=50)]
    [150, 200, 250, 300]
  """
  if isinstance(sample_every, (int, np.integer)) and sample_every < 1:
    raise ValueError(f"sgld.is_sample_step: `sample_every` must be >= 1, got {sample_every!r}.")
  step = jnp.asarray(step)
  return (step > burn_in) & (step % sample_every == 0)


class MomentsState(NamedTuple):
  """Running moments of samples ``x`` (Welford): ``count`` ``n``, ``mean`` ``μ``, ``m2`` = ``Σ (x − μ)²``."""

  count: jax.Array  # () int32
  mean: jax.Array  # sample-shaped float32
  m2: jax.Array  # sample-shaped float32


def moments_init(shape: tuple[int, ...], dtype=jnp.float32) -> MomentsState:
  """Empty running moments for samples of ``shape`` (e.g. an ``(H, W, C)`` output).

  Example:
    >>> moments_init((2, 3)).mean.shape
    (2, 3)
  """
  zeros = jnp.zeros(tuple(shape), dtype)
  return MomentsState(count=jnp.zeros([], jnp.int32), mean=zeros, m2=zeros)


def moments_update(state: MomentsState, x: jax.Array, *, where: Union[bool, jax.Array] = True) -> MomentsState:
  """Adds the sample ``x`` to the running moments (Welford's update); a no-op where ``where`` is False.

  Args:
    state: the moments so far.
    x: one sample, the shape of ``state.mean``.
    where: ``()`` bool (may be traced, e.g. :func:`is_sample_step`): whether to add ``x``.

  Returns:
    The updated :class:`MomentsState`.

  Example:
    >>> import jax.numpy as jnp
    >>> s = moments_init(())
    >>> for v in (1.0, 2.0, 6.0):
    ...   s = moments_update(s, jnp.asarray(v))
    >>> int(s.count), float(s.mean), float(s.m2)
    (3, 3.0, 14.0)
  """
  x = jnp.asarray(x, state.mean.dtype)
  if x.shape != state.mean.shape:
    raise ValueError(f"sgld.moments_update: sample shape {x.shape} != the moments' shape {state.mean.shape}.")
  count = state.count + 1
  delta = x - state.mean
  mean = state.mean + delta / count.astype(state.mean.dtype)
  m2 = state.m2 + delta * (x - mean)
  if where is True:
    return MomentsState(count=count, mean=mean, m2=m2)
  where = jnp.asarray(where, bool)
  return MomentsState(count=jnp.where(where, count, state.count), mean=jnp.where(where, mean, state.mean),
                      m2=jnp.where(where, m2, state.m2))


def moments_mean_std(state: MomentsState, *, ddof: int = 0) -> tuple[jax.Array, jax.Array]:
  """The running mean and standard deviation ``sqrt(m2 / (n − ddof))`` of the samples.

  Args:
    state: the moments.
    ddof: 0 (default) for the population std (``np.std``), 1 for the unbiased one.

  Returns:
    ``(mean, std)``, each the samples' shape; both zero before any sample, and ``std``
    is zero (not NaN) while ``n <= ddof``.

  Example:
    >>> import jax.numpy as jnp
    >>> s = moments_update(moments_update(moments_init(()), jnp.asarray(1.0)), jnp.asarray(3.0))
    >>> [float(v) for v in moments_mean_std(s)]
    [2.0, 1.0]
  """
  denom = jnp.maximum(state.count - ddof, 1).astype(state.m2.dtype)
  return state.mean, jnp.sqrt(jnp.maximum(state.m2, 0.0) / denom)

