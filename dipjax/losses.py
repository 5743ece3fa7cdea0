r"""Data-fit losses ``E(A(f_θ(z)), x0)``: scalar means over all elements.

With ``p`` the prediction (the network output after the forward operator) and
``t`` the observation, both of the same shape, and ``N`` elements:

* :func:`mse` — ``(1/N) Σ (p − t)²``: Gaussian noise (the DIP paper's loss,
  ``torch.nn.MSELoss()``).
* :func:`l1` — ``(1/N) Σ |p − t|``: heavy-tailed noise (impulse / salt-and-pepper).
  Its gradient is ``sign(p − t) / N``, 0 where ``p = t`` (as PyTorch's
  ``L1Loss``; ``jnp.abs`` alone would give ``+1/N`` there).
* :func:`poisson_nll` — shot noise (:func:`dipjax.noise.poisson`): the observed
  counts ``k = peak · t`` given the rate ``λ = peak · p``. The negative
  log-likelihood of one element is ``λ − k log λ + log k!``; the ``log k!`` term does
  not depend on ``p`` and is **dropped**, so the loss is
  ``(1/N) Σ [λ − k log(λ + eps)]`` (its minimum is not 0). ``eps`` keeps the log
  finite where ``p = 0``. Its gradient is ``(peak/N) (1 − k / (λ + eps))``, zero at
  ``p = t`` (for ``eps → 0``).

:data:`LOSSES` names them and :func:`get` binds keyword parameters (checked).

Example:
  >>> import jax.numpy as jnp
  >>> from dipjax import losses
  >>> float(losses.get("l1")(jnp.zeros((2, 2, 1)), jnp.ones((2, 2, 1))))
  1.0
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def _pair(where: str, pred, target) -> tuple[jax.Array, jax.Array]:
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  if pred.shape != target.shape:
    raise ValueError(f"losses.{where}: shapes differ: `pred` {pred.shape} vs `target` {target.shape}.")
  return pred, target


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean squared error, ``mean((pred − target)²)`` over all elements.

  Args:
    pred: prediction, any shape (e.g. ``(H, W, C)``).
    target: observation, the same shape.

  Returns:
    A scalar ``()`` array.

  Example:
    >>> import jax.numpy as jnp
    >>> float(mse(jnp.zeros((2, 2, 1)), jnp.full((2, 2, 1), 0.5)))
    0.25
  """
  pred, target = _pair("mse", pred, target)
  return jnp.mean(jnp.square(pred - target))


def l1(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error, ``mean(|pred − target|)`` over all elements.

  Args:
    pred: prediction, any shape.
    target: observation, the same shape.

  Returns:
    A scalar ``()`` array.

  Example:
    >>> import jax.numpy as jnp
    >>> float(l1(jnp.zeros((2, 2, 1)), jnp.full((2, 2, 1), -0.5)))
    0.5
  """
  pred, target = _pair("l1", pred, target)
  diff = pred - target
  return jnp.mean(diff * jax.lax.stop_gradient(jnp.sign(diff)))  # = |diff|, with gradient sign(diff)


def poisson_nll(pred: jax.Array, target: jax.Array, *, peak, eps: float = 1e-6) -> jax.Array:
  """Poisson negative log-likelihood of the counts ``peak · target`` at rate ``peak · pred``.

  ``mean(peak·pred − peak·target · log(peak·pred + eps))``; the constant
  ``log((peak·target)!)`` is dropped (see the module docstring).

  Args:
    pred: prediction ``>= 0`` (the rate divided by ``peak``), any shape.
    target: observed counts divided by ``peak`` (:func:`dipjax.noise.poisson` with
      ``clip=False``), the same shape.
    peak: expected count of a white pixel, ``> 0``.
    eps: added to the rate inside the log, ``> 0``.

  Returns:
    A scalar ``()`` array.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> t = jnp.full((2, 2, 1), 0.5)
    >>> g = jax.grad(lambda p: poisson_nll(p, t, peak=10.0))(t)
    >>> bool(jnp.all(jnp.abs(g) < 1e-4))
    True
  """
  _check("poisson_nll", peak=peak, eps=eps)
  pred, target = _pair("poisson_nll", pred, target)
  rate = peak * pred
  counts = peak * target
  return jnp.mean(rate - counts * jnp.log(rate + eps))


def _check(where: str, **params) -> None:
  """One-line ValueError for a concrete ``peak``/``eps`` that is not ``> 0`` (traced values are not checked)."""
  for name, value in params.items():
    if isinstance(value, jax.core.Tracer):
      continue
    arr = np.asarray(value, np.float64)
    if arr.size == 0 or not np.all(arr > 0):
      raise ValueError(f"losses.{where}: `{name}` must be > 0, got {value!r}.")


LOSSES: dict[str, Callable[..., jax.Array]] = {"mse": mse, "l1": l1, "poisson_nll": poisson_nll}


def get(name: str, **kw) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The loss ``name`` with its keyword parameters bound: ``fn(pred, target) -> scalar``.

  Args:
    name: a key of :data:`LOSSES`.
    **kw: that loss's keyword parameters (``peak=``, ``eps=`` for ``poisson_nll``).

  Returns:
    A function of ``(pred, target)`` (a ``functools.partial``).

  Raises:
    ValueError: unknown ``name``, unknown or missing parameters, or ``peak``/``eps`` ``<= 0``.

  Example:
    >>> import jax.numpy as jnp
    >>> loss = get("poisson_nll", peak=30.0)
    >>> loss(jnp.full((4, 4, 3), 0.5), jnp.full((4, 4, 3), 0.5)).shape
    ()
  """
  if name not in LOSSES:
    raise ValueError(f"losses.get: unknown loss {name!r}; choose one of {sorted(LOSSES)}.")
  fn = LOSSES[name]
  try:
    inspect.signature(fn).bind(None, None, **kw)
  except TypeError as e:
    raise ValueError(f"losses.get: bad parameters {kw!r} for {name!r}: {e}.") from None
  if kw:
    _check(name, **kw)
  return functools.partial(fn, **kw)
