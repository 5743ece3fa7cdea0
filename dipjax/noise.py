r"""Noise models: ``fn(key, image, *, param...) -> noisy image`` on float32 ``(H, W, C)`` in [0, 1].

Each model is a pure function of a PRNG key and the clean image ``x``, so it can be
``jit``-ed, ``vmap``-ed over keys (many realisations) or images, and reproduced from
its key. ``n`` below is standard normal, drawn independently per element.

* :func:`gaussian` — additive white Gaussian noise, ``y = clip(x + σ n, 0, 1)``;
  ``σ`` on the [0, 1] scale (``scale='unit'``) or the 0–255 scale (``scale='255'``,
  ``σ / 255`` is used). ``E[y] = x`` and ``Var[y] = σ²`` away from the clip.
* :func:`poisson` — shot noise, ``y = K / peak`` with ``K ~ Poisson(peak · x)``
  (``peak`` = photon count of a white pixel): ``E[y] = x``, ``Var[y] = x / peak``;
  clipped to [0, 1] by default (ImageNet-C's "shot noise" form).
* :func:`impulse` — salt-and-pepper: each element is replaced, with probability
  ``fraction``, by 1 (probability ``salt_vs_pepper``) or 0; by default independently
  **per channel** (as ``skimage.util.random_noise(mode='s&p')``, the ImageNet-C
  protocol that ES-WMV's impulse noise follows), or per pixel (all channels of a
  hit pixel take the same value) with ``per_channel=False``.
* :func:`speckle` — multiplicative, ``y = clip(x (1 + σ n), 0, 1)``:
  ``E[y] = x``, ``Var[y] = x² σ²`` away from the clip.

These are the four noise types of ES-WMV (Wang et al., "Early stopping for deep
image prior", TMLR 2023: Gaussian, impulse, shot, speckle). :data:`NOISE_MODELS`
names them and :func:`make` binds the parameters after checking them.

Parameters that are concrete numbers are checked (a one-line ``ValueError`` naming
the argument and the value); traced parameters (under ``jit``/``vmap``) are not.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from dipjax import noise
  >>> add = noise.make("poisson", peak=30.0)
  >>> add(jax.random.key(0), jnp.full((32, 32, 3), 0.5)).shape
  (32, 32, 3)
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

_RULES = {
    "sigma": (lambda v: v >= 0, ">= 0"),
    "peak": (lambda v: v > 0, "> 0"),
    "fraction": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "salt_vs_pepper": (lambda v: 0 <= v <= 1, "in [0, 1]"),
}


def _check(where: str, **params) -> None:
  """Raises a one-line ValueError for a concrete parameter that breaks its rule in ``_RULES``."""
  for name, value in params.items():
    if name == "scale" and value not in ("unit", "255"):
      raise ValueError(f"noise.{where}: `scale` must be 'unit' or '255', got {value!r}.")
    if name not in _RULES or isinstance(value, jax.core.Tracer) or isinstance(value, (str, bool)):
      continue
    try:
      arr = np.asarray(value, np.float64)
    except (TypeError, ValueError):
      raise ValueError(f"noise.{where}: `{name}` must be a number, got {value!r}.") from None
    rule, text = _RULES[name]
    if not all(rule(float(v)) for v in arr.ravel()) or arr.size == 0:
      raise ValueError(f"noise.{where}: `{name}` must be {text}, got {value!r}.")


def _as_image(where: str, image) -> jax.Array:
  image = jnp.asarray(image, jnp.float32)
  if image.ndim != 3:
    raise ValueError(f"noise.{where}: `image` must be (H, W, C), got shape {image.shape}.")
  return image


def gaussian(key: jax.Array, image: jax.Array, *, sigma, scale: str = "unit", clip: bool = True) -> jax.Array:
  """Additive white Gaussian noise, ``clip(x + σ n, 0, 1)``.

  Args:
    key: PRNG key of the realisation.
    image: ``(H, W, C)`` float image in [0, 1].
    sigma: noise standard deviation, ``>= 0``; on the [0, 1] scale, or on the 0–255
      scale with ``scale='255'`` (σ = 25 there is 25 / 255 here).
    scale: ``'unit'`` or ``'255'``: the scale ``sigma`` is given on.
    clip: clip the result to [0, 1] (the DIP reference's ``get_noisy_image`` does).

  Returns:
    ``(H, W, C)`` float32 noisy image.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> y = gaussian(jax.random.key(0), jnp.full((32, 32, 3), 0.5), sigma=25, scale="255")
    >>> bool(abs(float(y.std()) - 25 / 255) < 0.01)
    True
  """
  _check("gaussian", sigma=sigma, scale=scale)
  image = _as_image("gaussian", image)
  std = jnp.asarray(sigma, jnp.float32) / (255.0 if scale == "255" else 1.0)
  noisy = image + std * jax.random.normal(key, image.shape, jnp.float32)
  return jnp.clip(noisy, 0.0, 1.0) if clip else noisy


def poisson(key: jax.Array, image: jax.Array, *, peak, clip: bool = True) -> jax.Array:
  """Shot noise, ``Poisson(peak · x) / peak``.

  Args:
    key: PRNG key of the realisation.
    image: ``(H, W, C)`` float image in [0, 1].
    peak: expected photon count of a white pixel, ``> 0``; lower is noisier
      (``Var[y] = x / peak``).
    clip: clip the result to [0, 1]; pass ``False`` to keep the exact scaled counts
      (e.g. to fit them with :func:`dipjax.losses.poisson_nll`).

  Returns:
    ``(H, W, C)`` float32 noisy image, a multiple of ``1 / peak``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> y = poisson(jax.random.key(0), jnp.full((32, 32, 3), 0.5), peak=30.0)
    >>> bool(jnp.all(jnp.abs(y * 30 - jnp.round(y * 30)) < 1e-4))
    True
  """
  _check("poisson", peak=peak)
  image = _as_image("poisson", image)
  peak = jnp.asarray(peak, jnp.float32)
  counts = jax.random.poisson(key, peak * jnp.maximum(image, 0.0), image.shape)
  noisy = counts.astype(jnp.float32) / peak
  return jnp.clip(noisy, 0.0, 1.0) if clip else noisy


def impulse(key: jax.Array, image: jax.Array, *, fraction, salt_vs_pepper=0.5,
            per_channel: bool = True) -> jax.Array:
  """Salt-and-pepper noise: a ``fraction`` of the elements set to 1 (salt) or 0 (pepper).

  Args:
    key: PRNG key of the realisation.
    image: ``(H, W, C)`` float image in [0, 1].
    fraction: probability that an element is replaced, in [0, 1].
    salt_vs_pepper: probability that a replaced element becomes 1 rather than 0, in [0, 1].
    per_channel: ``True`` (default): each channel of each pixel is hit independently,
      as ``skimage.util.random_noise(mode='s&p')``; ``False``: one draw per pixel, so
      a hit pixel becomes pure white or pure black.

  Returns:
    ``(H, W, C)`` float32 noisy image.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> y = impulse(jax.random.key(0), jnp.full((32, 32, 3), 0.5), fraction=0.1)
    >>> bool(abs(float(jnp.mean(y != 0.5)) - 0.1) < 0.02)
    True
  """
  _check("impulse", fraction=fraction, salt_vs_pepper=salt_vs_pepper)
  image = _as_image("impulse", image)
  h, w, c = image.shape
  draw_shape = (h, w, c) if per_channel else (h, w, 1)
  hit_key, salt_key = jax.random.split(key)
  hit = jax.random.bernoulli(hit_key, fraction, draw_shape)
  salt = jax.random.bernoulli(salt_key, salt_vs_pepper, draw_shape)
  value = jnp.where(salt, 1.0, 0.0).astype(jnp.float32)
  return jnp.where(hit, value, image)


def speckle(key: jax.Array, image: jax.Array, *, sigma, clip: bool = True) -> jax.Array:
  """Multiplicative speckle noise, ``clip(x (1 + σ n), 0, 1)``.

  Args:
    key: PRNG key of the realisation.
    image: ``(H, W, C)`` float image in [0, 1].
    sigma: relative standard deviation, ``>= 0`` (``Var[y] = x² σ²``).
    clip: clip the result to [0, 1].

  Returns:
    ``(H, W, C)`` float32 noisy image; black pixels stay black.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> float(speckle(jax.random.key(0), jnp.zeros((32, 32, 3)), sigma=0.3).max())
    0.0
  """
  _check("speckle", sigma=sigma)
  image = _as_image("speckle", image)
  std = jnp.asarray(sigma, jnp.float32)
  noisy = image * (1.0 + std * jax.random.normal(key, image.shape, jnp.float32))
  return jnp.clip(noisy, 0.0, 1.0) if clip else noisy


NOISE_MODELS: dict[str, Callable[..., jax.Array]] = {
    "gaussian": gaussian,
    "poisson": poisson,
    "impulse": impulse,
    "speckle": speckle,
}


def make(name: str, **params) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The noise model ``name`` with ``params`` bound: ``fn(key, image) -> noisy image``.

  Args:
    name: a key of :data:`NOISE_MODELS`.
    **params: that model's keyword parameters (e.g. ``sigma=0.1``), checked here.

  Returns:
    A pure function of ``(key, image)`` (a ``functools.partial``).

  Raises:
    ValueError: unknown ``name``, unknown or missing parameters, or an invalid value
      (negative σ, ``peak <= 0``, a fraction outside [0, 1]); one line each.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> make("impulse", fraction=0.05)(jax.random.key(1), jnp.zeros((32, 32, 3))).dtype
    dtype('float32')
    >>> make("gaussian", sigma=-1)
    Traceback (most recent call last):
    ...
    ValueError: noise.gaussian: `sigma` must be >= 0, got -1.
  """
  if name not in NOISE_MODELS:
    raise ValueError(f"noise.make: unknown noise model {name!r}; choose one of {sorted(NOISE_MODELS)}.")
  fn = NOISE_MODELS[name]
  try:
    inspect.signature(fn).bind(None, None, **params)
  except TypeError as e:
    raise ValueError(f"noise.make: bad parameters {params!r} for {name!r}: {e}.") from None
  _check(name, **params)
  return functools.partial(fn, **params)

