"""The network's impedance to noise (the paper's Fig. 2): how fast it fits an image, noise and everything between.

The same network and settings fit four targets: a natural image, the image plus
Gaussian noise, the image with its pixels shuffled (same colour histogram, no
structure) and U(0, 1) white noise. The claim to reproduce: the loss
``E_t = mean((f_θt(z) − x)²)`` falls fastest for the image, then image + noise, then
the shuffled pixels, then white noise — the parametrisation resists noise, which is why
stopping early restores. All four targets × seeds are fitted in one vmapped program
(:func:`dipjax.batch.fit_problems`).

Example (``impedance(key, image, presets.get("denoise", "cpu", reg_noise_std=0.0), seeds=2)``
runs the whole experiment; ``experiments/impedance.py`` plots it)::

  >>> import jax, numpy as np
  >>> from dipjax import impedance
  >>> image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
  >>> targets = impedance.impedance_targets(jax.random.key(0), image)
  >>> list(targets) == list(impedance.TARGETS), targets["shuffled pixels"].shape
  (True, (32, 32, 3))
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dipjax import batch, corruptions, fit as fit_lib, tasks, validation

TARGETS = ("image", "image + noise", "shuffled pixels", "white noise")


def impedance_targets(key: jax.Array, image, *, sigma: float = 25 / 255) -> dict[str, np.ndarray]:
  """The four targets of Fig. 2 from one image.

  Args:
    key: PRNG key of the noise, the permutation and the white noise.
    image: ``(H, W, C)`` float32 image in [0, 1].
    sigma: std of the added Gaussian noise on the [0, 1] scale (clipped to [0, 1]).

  Returns:
    ``{name: (H, W, C) float32}`` for each of :data:`TARGETS`: the image; ``clip(image +
    σ ε)``; the image's pixels (each pixel's channels kept together) in a random order;
    ``U(0, 1)`` noise.
  """
  fit_lib.check_image("image", image)
  validation.finite("sigma", sigma, minimum=0.0)
  image = np.asarray(image, np.float32)
  h, w, c = image.shape
  k_noise, k_order, k_white = jax.random.split(key, 3)
  order = np.asarray(jax.random.permutation(k_order, h * w))
  return {"image": image,
          "image + noise": np.asarray(corruptions.add_gaussian_noise(k_noise, image, sigma=sigma)),
          "shuffled pixels": image.reshape(h * w, c)[order].reshape(h, w, c),
          "white noise": np.asarray(jax.random.uniform(k_white, image.shape, jnp.float32))}


def steps_to_reach(losses, threshold: float) -> np.ndarray:
  """First 1-based step whose loss is ``<= threshold`` along the last axis; 0 where it is never reached.

  Example:
    >>> steps_to_reach(np.array([[0.5, 0.2, 0.1], [0.5, 0.4, 0.3]]), 0.2).tolist()
    [2, 0]
  """
  below = np.asarray(losses) <= threshold
  return np.where(below.any(axis=-1), below.argmax(axis=-1) + 1, 0)


class Impedance(NamedTuple):
  """What :func:`impedance` returns (S seeds, T steps)."""

  targets: dict  # name -> (H, W, C) the fitted target
  losses: dict  # name -> (S, T) MSE of the per-step output against the target
  outputs: dict  # name -> (S, H, W, C) f_θ(z) after the last step
  thresholds: tuple  # the loss levels of `steps_to`
  steps_to: dict  # name -> {threshold: (S,) first step at or below it, 0 = never}
  wall_s: float  # fit time, compile included


def impedance(key: jax.Array, image, config, *, seeds: int = 1, sigma: float = 25 / 255,
              thresholds: Sequence[float] = (0.01, 0.003, 0.001), max_batch: int = 0, chunk=None,
              log: Callable[[str], None] = lambda message: None) -> Impedance:
  """Fits the four :data:`TARGETS` of ``image`` with ``config``'s network and settings, ``seeds`` each.

  The data term is ``config``'s (MSE for the denoising presets); the input jitter
  ``σ_p`` too — set ``reg_noise_std=0`` to fit ``f_θ(z)`` itself, as Fig. 2 does.

  Args:
    key: PRNG key; split into the targets' key and the fits' key (seed ``s`` of every
      target uses the same network initialisation and input).
    image: ``(H, W, C)`` float32 image in [0, 1].
    config: a preset (:func:`dipjax.presets.get`), e.g. ``presets.get("denoise", "cpu", reg_noise_std=0.0)``.
    seeds: fits per target.
    sigma: noise std of the "image + noise" target ([0, 1] scale).
    thresholds: loss levels for the steps-to-reach table.
    max_batch, chunk, log: as :func:`dipjax.batch.fit_problems`.

  Returns:
    An :class:`Impedance`.
  """
  validation.positive_int("seeds", seeds)
  thresholds = tuple(validation.finite("thresholds", t, minimum=0.0, inclusive=False) for t in thresholds)
  target_key, fit_key = jax.random.split(key)
  targets = impedance_targets(target_key, image, sigma=sigma)
  problems = [tasks.denoise(noisy=target) for target in targets.values()]
  t0 = time.perf_counter()
  fitted = batch.fit_problems(config, problems, key=fit_key, seeds=seeds, max_batch=max_batch, chunk=chunk, log=log)
  losses = {name: np.asarray(f.curves.loss)[:, 0] for name, f in zip(targets, fitted)}
  return Impedance(targets=targets, losses=losses,
                   outputs={name: f.outputs[:, 0] for name, f in zip(targets, fitted)}, thresholds=thresholds,
                   steps_to={name: {t: steps_to_reach(curve, t) for t in thresholds} for name, curve in losses.items()},
                   wall_s=time.perf_counter() - t0)
