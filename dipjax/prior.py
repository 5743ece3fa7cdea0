"""Samples of the prior: the outputs ``f_θ(z)`` of randomly initialised networks, before any fitting.

For an architecture ``f`` and one fixed input ``z``, each draw of ``θ`` from the
PyTorch-default initialisation gives an image ``x = f_θ(z)``; a grid of such draws
shows what each architecture "believes" an image looks like (the paper's prior
samples). The ``S`` draws run as one vmapped program.

Example:
  >>> import jax
  >>> import dipjax
  >>> from dipjax import prior
  >>> prior.prior_samples(jax.random.key(0), dipjax.skip_tiny(), (32, 32), samples=3).shape
  (3, 32, 32, 3)
"""

from __future__ import annotations

import jax
import numpy as np

from dipjax import architectures, inputs, validation


def prior_samples(key: jax.Array, model, image_size: tuple[int, int], *, samples: int = 4, input_channels: int = 32,
                  input_scale: float = 0.1) -> np.ndarray:
  """``samples`` images ``f_θ(z)`` for independent ``θ`` and one ``z ~ U(0, input_scale)``.

  Args:
    key: PRNG key (split into the input's key and the ``samples`` parameter keys; the
      same key gives every architecture the same input draw).
    model: a Flax module mapping ``z`` to an ``(H, W, C)`` image (``dipjax.models``,
      ``dipjax.architectures``).
    image_size: ``(H, W)`` of the images.
    samples: number of parameter draws ``S``.
    input_channels: channels of ``z`` (the Deep Decoder's seed takes its own shape,
      :func:`dipjax.architectures.input_shape`).
    input_scale: upper bound of the uniform input (the reference's 0.1).

  Returns:
    ``(S, H, W, C)`` float32 images.
  """
  validation.positive_int("samples", samples)
  validation.finite("input_scale", input_scale, minimum=0.0, inclusive=False)
  h, w = (validation.positive_int("image_size", int(v)) for v in image_size)
  z_key, param_key = jax.random.split(key)
  shape = architectures.input_shape(model, h, w, input_channels)
  z = inputs.make_input(z_key, shape[:2], channels=shape[2], scale=input_scale)
  draw = jax.jit(jax.vmap(lambda k: model.apply(model.init(k, z), z)))
  return np.asarray(draw(jax.random.split(param_key, samples)), np.float32)
