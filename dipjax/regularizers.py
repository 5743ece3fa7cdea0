r"""Explicit image priors added to a DIP loss: the reference's total variation.

Used by the supplement's "prior effect" comparison (dip_reference.md §2.8: pixels +
``1e-7 * tv_loss(x)``) and by the "TV only" variant of activation maximisation
(§2.7, ``tv_loss(x, beta=2)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def tv_loss(x: jax.Array, beta: float = 0.5) -> jax.Array:
  r"""Total variation of an ``(H, W, C)`` image, exactly as the reference's ``utils/sr_utils.tv_loss``.

  .. math::
     \mathrm{TV}_\beta(x) = \sum_{c} \sum_{h=0}^{H-2} \sum_{w=0}^{W-2}
       \left( (x_{h,w+1,c} - x_{h,w,c})^2 + (x_{h+1,w,c} - x_{h,w,c})^2 \right)^{\beta}

  a **sum** (not a mean) over the ``(H-1) x (W-1)`` region where both forward
  differences exist, per channel, with no epsilon: ``beta = 0.5`` is isotropic TV,
  ``beta = 1`` the squared-gradient (Tikhonov) penalty. Where both differences are
  zero the reference's gradient is NaN for ``beta < 1`` (``0 ** -0.5 * 0``); here it is
  0 (a subgradient), so flat regions are safe; the value is unchanged.

  Args:
    x: ``(H, W, C)`` array (``H, W >= 2``).
    beta: exponent ``> 0`` (see Mahendran & Vedaldi 2015, Fig. 2).

  Returns:
    scalar array.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.zeros((3, 3, 1)).at[1, 1, 0].set(1.0)
    >>> float(tv_loss(x))  # 1 + 1 + sqrt(2) at (0,1), (1,0), (1,1)
    3.4142136573791504
  """
  if x.ndim != 3 or x.shape[0] < 2 or x.shape[1] < 2:
    raise ValueError(f"tv_loss: `x` must be (H, W, C) with H, W >= 2, got shape {x.shape}.")
  if not beta > 0:
    raise ValueError(f"tv_loss: `beta` must be > 0, got {beta!r}.")
  d_w = jnp.square(x[:-1, 1:] - x[:-1, :-1])
  d_h = jnp.square(x[1:, :-1] - x[:-1, :-1])
  s = d_w + d_h
  positive = s > 0
  safe = jnp.where(positive, s, jnp.ones_like(s))
  return jnp.sum(jnp.where(positive, safe ** beta, jnp.zeros_like(s)))
