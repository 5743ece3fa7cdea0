"""Host-side image I/O (numpy only, never jitted): float32 HWC images in [0, 1].

Writes are atomic: the file is written under a temporary name in the target
folder and renamed, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from PIL import Image, ImageOps


def load_image(path: str) -> np.ndarray:
  """Loads an image file as float32 ``(H, W, C)`` in ``[0, 1]`` (C = 1 for gray, 3 for colour).

  EXIF orientation is applied; palette images become RGB; 16-bit images keep
  their precision; an alpha channel is dropped.

  Raises:
    ValueError: the file is missing or is not a readable image.
  """
  if not os.path.isfile(path):
    raise ValueError(f"image file {path!r} does not exist; pass an existing image path.")
  try:
    with Image.open(path) as img:
      img = ImageOps.exif_transpose(img)
      img.load()
  except Exception as e:  # PIL raises several types for unreadable files
    raise ValueError(f"{path!r} is not a readable image ({type(e).__name__}: {e}).") from None
  if img.mode in ("I;16", "I;16B", "I;16L", "I"):
    arr = np.asarray(img, dtype=np.float32)
    arr = arr / (65535.0 if arr.max() > 255 or img.mode.startswith("I;16") else 255.0)
    return np.clip(arr, 0, 1)[..., None].astype(np.float32)
  if img.mode in ("L", "1"):
    return (np.asarray(img.convert("L"), np.float32) / 255.0)[..., None]
  return np.asarray(img.convert("RGB"), np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
  """Clips to [0, 1], scales to 0..255 and rounds (the reference's ``np_to_pil``, with rounding)."""
  return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def _atomic_write(path: str, write) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
  os.close(fd)
  try:
    write(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def save_image(path: str, image) -> None:
  """Saves a float ``(H, W, C)`` image in [0, 1] as an 8-bit PNG (gray when C = 1), atomically."""
  arr = to_uint8(np.asarray(image))
  if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
    raise ValueError(f"`image` must be (H, W, 1) or (H, W, 3), got shape {arr.shape}.")
  pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
  _atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))


def save_json(path: str, obj) -> None:
  """Writes ``obj`` as indented JSON, atomically."""

  def write(tmp):
    with open(tmp, "w") as f:
      json.dump(obj, f, indent=1, default=_json_default)

  _atomic_write(path, write)


def _json_default(x):
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  if hasattr(x, "tolist"):
    return np.asarray(x).tolist()
  raise TypeError(f"not JSON serialisable: {type(x).__name__}")
