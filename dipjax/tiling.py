r"""Overlapping tiles for images too large to fit at once, blended back with linear ramps.

A large image is cut into ``tile x tile`` windows that overlap by ``overlap`` pixels
(the last window of a row/column is flush with the border), each window is fitted as
its own DIP problem (all windows in one batched program), and the restored windows
are blended with weights that ramp linearly from the window's edge over the overlap::

    x(p) = Σ_k w_k(p) x_k(p) / Σ_k w_k(p)

What this changes (README, "Long runs and real images"): each tile has its own
network, input and BatchNorm statistics and sees only its own window, so structure
larger than a tile is not shared, the PSNR curves are per tile, and the seams are
hidden by the blend rather than absent.

Example:
  >>> windows((100, 70), tile=64, overlap=16)
  [(0, 0), (0, 6), (36, 0), (36, 6)]
"""

from __future__ import annotations

import numpy as np


def starts(length: int, tile: int, overlap: int) -> list[int]:
  """Start offsets of the windows along one axis of ``length``: stride ``tile − overlap``, last one flush."""
  if tile < 1 or not 0 <= overlap < tile:
    raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}.")
  if length <= tile:
    return [0]
  out = list(range(0, length - tile, tile - overlap))
  return out + [length - tile]


def windows(size: tuple[int, int], *, tile: int, overlap: int) -> list[tuple[int, int]]:
  """Top-left corners ``(y, x)`` of the windows covering an ``(H, W)`` image (row-major)."""
  h, w = size
  if min(h, w) < tile:
    raise ValueError(f"`tile` = {tile} is larger than the {w}x{h} image; use a smaller tile or none.")
  return [(y, x) for y in starts(h, tile, overlap) for x in starts(w, tile, overlap)]


def _ramp(n: int, overlap: int) -> np.ndarray:
  r = np.ones(n, np.float64)
  if overlap:
    edge = (np.arange(overlap) + 0.5) / overlap
    r[:overlap] = edge
    r[-overlap:] = np.minimum(r[-overlap:], edge[::-1])
  return r


def blend(tiles: np.ndarray, corners: list[tuple[int, int]], size: tuple[int, int], *, overlap: int) -> np.ndarray:
  """Blends ``(K, h, w, C)`` tiles at ``corners`` into an ``(H, W, C)`` image (float32)."""
  tiles = np.asarray(tiles, np.float64)
  k, h, w, c = tiles.shape
  weight = _ramp(h, overlap)[:, None] * _ramp(w, overlap)[None, :]
  acc = np.zeros(tuple(size) + (c,))
  norm = np.zeros(tuple(size) + (1,))
  for tile, (y, x) in zip(tiles, corners):
    acc[y:y + h, x:x + w] += weight[..., None] * tile
    norm[y:y + h, x:x + w] += weight[..., None]
  return (acc / norm).astype(np.float32)
