"""How much memory a fit needs, and whether the device has it, before anything is run.

The per-fit memory of the compiled step program (XLA's ``memory_analysis``: temporary
buffers + arguments + outputs) is dominated by the activations saved for the
backward pass, which grow linearly with the number of pixels. :func:`estimate_bytes`
therefore compiles the same program at two small probe sizes and extrapolates
``a + b · H · W`` to the real canvas, *without compiling the real program*; the
measured check on this machine (BUILD_NOTES.md §10) finds the extrapolation and the
real program's own analysis within a few percent of the peak RSS a run adds.

Example:
  >>> import dipjax
  >>> from dipjax import memory
  >>> loop = dipjax.make_fit_loop(dipjax.skip_tiny(), input_channels=4)
  >>> memory.estimate_bytes(loop, (64, 64), channels=3, probe=(8, 8)) > 0
  True
"""

from __future__ import annotations

import os
from typing import Optional

import jax
import jax.numpy as jnp


def program_bytes(compiled) -> int:
  """Bytes a compiled program holds while it runs: temporaries + arguments + outputs − aliased (donated)."""
  ma = compiled.memory_analysis()
  if ma is None:
    return 0
  return int(ma.temp_size_in_bytes + ma.argument_size_in_bytes + ma.output_size_in_bytes - ma.alias_size_in_bytes)


def available_bytes(device: Optional[jax.Device] = None) -> Optional[int]:
  """Free memory of ``device``: the accelerator's limit minus what is in use, or the host's MemAvailable on CPU."""
  device = device or jax.devices()[0]
  if device.platform != "cpu":
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
      return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return None
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
  except (ValueError, OSError, AttributeError):
    return None


def _step_program_bytes(loop, hw: tuple[int, int], channels: int, seeds: int) -> int:
  target = jnp.zeros(tuple(hw) + (channels,), jnp.float32)
  init = lambda k: loop.init(k, tuple(hw))
  state = jax.eval_shape(jax.vmap(init), jax.random.split(jax.random.key(0), seeds))
  program = jax.jit(jax.vmap(lambda s: loop.run(s, target, num_steps=1)[:2]))
  return program_bytes(program.lower(state).compile())


def estimate_bytes(loop, canvas_hw: tuple[int, int], *, channels: int, seeds: int = 1,
                   probe: Optional[tuple[int, int]] = None) -> int:
  """Estimated bytes of one compiled step program of ``seeds`` vmapped fits on a ``canvas_hw`` canvas.

  Compiles the program at two probe canvases (``probe`` and twice its height; default
  the network's smallest canvas) and extrapolates linearly in the number of pixels.
  """
  if probe is None:
    side = int(getattr(loop.model, "min_size", 0) or 32)
    probe = (max(side, 32), max(side, 32))
  p1 = tuple(probe)
  p2 = (2 * p1[0], p1[1])
  m1 = _step_program_bytes(loop, p1, channels, seeds)
  m2 = _step_program_bytes(loop, p2, channels, seeds)
  per_pixel = max(m2 - m1, 0) / (p1[0] * p1[1])
  return int(m1 + per_pixel * (canvas_hw[0] * canvas_hw[1] - p1[0] * p1[1]))


def check_fits(needed: int, *, what: str, device: Optional[jax.Device] = None, margin: float = 0.9) -> None:
  """Raises a one-line ``ValueError`` when ``needed`` bytes exceed ``margin`` of the free memory."""
  free = available_bytes(device)
  if free is not None and needed > margin * free:
    raise ValueError(f"{what} needs about {needed / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB is free on "
                     f"{(device or jax.devices()[0]).device_kind}; use fewer seeds, a smaller image (a crop), tiles (`tile`), "
                     "or a device with more memory.")
