"""Checkpoints of a run: the full scan carry plus the run's config, written atomically (flax msgpack, no pickle).

A checkpoint holds every leaf of the state pytree (parameters, optimiser moments,
EMA, guard copy, stopping-criterion state, step, keys), any extra host arrays (the
per-step curves so far) and the run's config with its hash. Restoring needs a
*template* state of the same structure (e.g. ``loop.init`` of the same run): leaves
are matched by position and checked for shape and dtype, typed PRNG keys are
re-wrapped. Since the carry is the whole state and per-step randomness is
``fold_in(key, step)``, continuing from a checkpoint is bit-identical to never
stopping (on the same machine and backend).

Example:
  >>> import jax, dipjax, tempfile, os
  >>> loop = dipjax.make_fit_loop(dipjax.skip_tiny(), input_channels=4)
  >>> state = loop.init(jax.random.key(0), (16, 16))
  >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.msgpack")
  >>> save(path, state, config={"steps": 10})
  >>> restored, extra = load(path, state, config={"steps": 10})
  >>> bool((restored.params == state.params).all())
  True
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Optional

import jax
import numpy as np
from flax import serialization

FORMAT = "dipjax-checkpoint-1"


def config_hash(config: dict) -> str:
  """SHA-256 of the config's canonical JSON."""
  return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def _is_key(leaf) -> bool:
  return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def save(path: str, state: Any, *, config: dict, extra: Optional[dict] = None) -> None:
  """Writes ``state`` (any pytree of arrays), ``extra`` (a dict of host arrays) and ``config`` to ``path``, atomically."""
  from dipjax.image_io import atomic_write

  leaves = jax.tree_util.tree_leaves(state)
  payload = {
      "format": FORMAT,
      "config": json.dumps(config, sort_keys=True, default=str),
      "config_hash": config_hash(config),
      "leaves": {str(i): np.asarray(jax.random.key_data(x) if _is_key(x) else x) for i, x in enumerate(leaves)},
      "extra": {k: np.asarray(v) for k, v in (extra or {}).items()},
  }
  data = serialization.msgpack_serialize(payload)

  def write(tmp):
    with open(tmp, "wb") as f:
      f.write(data)

  atomic_write(path, write)


def load(path: str, template: Any, *, config: dict) -> tuple[Any, dict]:
  """Reads a checkpoint written by :func:`save`; returns ``(state, extra)``.

  Raises:
    ValueError: missing/unreadable file, a different config (the message names the
      fields that differ), or leaves that do not fit ``template``.
  """
  if not os.path.isfile(path):
    raise ValueError(f"no checkpoint at {path!r}; run without `resume` first, with checkpoints on (`checkpoint_every`).")
  try:
    with open(path, "rb") as f:
      payload = serialization.msgpack_restore(f.read())
    assert payload.get("format") == FORMAT
  except Exception:
    raise ValueError(f"{path!r} is not a dipjax checkpoint (unreadable or truncated); delete it and start over.") \
        from None
  if payload["config_hash"] != config_hash(config):
    saved = json.loads(payload["config"])
    current = json.loads(json.dumps(config, sort_keys=True, default=str))
    diffs = [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
             for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    raise ValueError(f"checkpoint {path!r} is from a different run ({'; '.join(diffs) or 'config differs'}); "
                     "use the same settings or another checkpoint path.")
  t_leaves, treedef = jax.tree_util.tree_flatten(template)
  stored = payload["leaves"]
  if len(stored) != len(t_leaves):
    raise ValueError(f"checkpoint {path!r} has {len(stored)} arrays but the run's state has {len(t_leaves)}.")
  leaves = []
  for i, t in enumerate(t_leaves):
    arr = stored[str(i)]
    if _is_key(t):
      leaves.append(jax.random.wrap_key_data(arr, impl=jax.random.key_impl(t)))
      continue
    if arr.shape != np.shape(t) or arr.dtype != np.dtype(t.dtype):
      raise ValueError(f"checkpoint {path!r}: array {i} is {arr.dtype}{list(arr.shape)}, the run expects "
                       f"{np.dtype(t.dtype)}{list(np.shape(t))}.")
    leaves.append(jax.numpy.asarray(arr))
  return jax.tree_util.tree_unflatten(treedef, leaves), dict(payload["extra"])
