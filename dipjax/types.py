"""Type aliases shared across dipjax.

Data convention (stated once for the whole package): an *image* is a float32
array of shape ``(H, W, C)`` (height, width, channels; HWC) with values in
``[0, 1]``. The network input ``z`` is HWC too. Batched images (seeds, images)
carry leading axes that come from ``jax.vmap``; no function in the core adds a
batch axis itself.
"""

from typing import Any, Callable

import jax

PRNGKey = jax.Array  # a typed key from ``jax.random.key`` (or a legacy uint32[2] key)
Params = Any  # a pytree of trainable arrays
Image = jax.Array  # float32 (H, W, C), values in [0, 1]
ForwardOperator = Callable[[jax.Array], jax.Array]  # A: network output (H, W, C) -> target space
