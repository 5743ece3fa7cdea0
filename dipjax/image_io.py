"""Host-side image I/O (numpy only, never jitted): float32 HWC images in [0, 1].

Writes are atomic: the file is written under a temporary name in the target
folder and renamed, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps


class ImageInfo(NamedTuple):
  """What :func:`read_image` found in the file, so outputs can be written back in kind."""

  mode: str  # the file's PIL mode ('L', 'RGB', 'RGBA', 'P', 'I;16', 'CMYK', ...)
  bit_depth: int  # 16 for 16-bit gray files, else 8
  alpha_dropped: bool  # the file had an alpha channel, which was dropped
  size: tuple[int, int]  # (H, W) after EXIF orientation


MAX_PIXELS = 100_000_000  # larger images are refused before decoding (a DIP fit of 100 MP would not fit anyway)


def _read_npy(path: str) -> tuple[np.ndarray, ImageInfo]:
  try:
    arr = np.load(path, allow_pickle=False)
  except Exception as e:
    raise ValueError(f"{path!r} is not a readable .npy array ({type(e).__name__}: {e}).") from None
  if arr.ndim == 2:
    arr = arr[..., None]
  if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
    raise ValueError(f"{path!r} holds an array of shape {arr.shape}; expected (H, W), (H, W, 1), (H, W, 3) or "
                     "(H, W, 4).")
  alpha = arr.shape[-1] == 4
  if alpha:
    warnings.warn(f"{path!r} has 4 channels; the 4th (alpha) is dropped.", UserWarning, stacklevel=3)
    arr = arr[..., :3]
  if arr.dtype == np.uint8:
    out = arr.astype(np.float32) / 255.0
  elif arr.dtype == np.uint16:
    out = arr.astype(np.float32) / 65535.0
  elif np.issubdtype(arr.dtype, np.floating):
    out = arr.astype(np.float32)
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
      raise ValueError(f"{path!r} has {bad} non-finite values (NaN or inf); pass a finite image.")
    if out.min() < 0 or out.max() > 1:
      raise ValueError(f"{path!r} has values in [{out.min():.3g}, {out.max():.3g}]; float arrays must be in [0, 1].")
  else:
    raise ValueError(f"{path!r} has dtype {arr.dtype}; use uint8, uint16 or float in [0, 1].")
  return out, ImageInfo("npy", 16 if arr.dtype == np.uint16 else 8, alpha, tuple(out.shape[:2]))


def read_image(path: str) -> tuple[np.ndarray, ImageInfo]:
  """Loads an image file as float32 ``(H, W, C)`` in ``[0, 1]`` (C = 1 gray, 3 colour) and its :class:`ImageInfo`.

  Conversions (each documented, none silent): EXIF orientation is applied; palette
  and CMYK images become RGB; 16-bit gray keeps its precision (``bit_depth`` 16); an
  alpha channel is dropped with a ``UserWarning``; an animated image gives its first
  frame with a ``UserWarning``. ``.npy`` files hold ``(H, W[, C])`` arrays: uint8,
  uint16, or float in ``[0, 1]`` (NaN/inf refused).

  Raises:
    ValueError: the file is missing, empty, truncated or not an image, or has more
      than :data:`MAX_PIXELS` pixels (refused from its header, before decoding).
  """
  if not os.path.isfile(path):
    raise ValueError(f"image file {path!r} does not exist; pass an existing image path.")
  if os.path.getsize(path) == 0:
    raise ValueError(f"{path!r} is empty (0 bytes); pass an image file.")
  if path.lower().endswith(".npy"):
    return _read_npy(path)
  try:
    with Image.open(path) as img:
      w, h = img.size
      if w * h > MAX_PIXELS:
        raise ValueError(f"{path!r} is {w}x{h} ({w * h / 1e6:.0f} MP), over dipjax's {MAX_PIXELS / 1e6:.0f} MP "
                         "limit; refused before decoding (downscale or crop it first).")
      frames = getattr(img, "n_frames", 1)
      img = ImageOps.exif_transpose(img)
      img.load()
  except ValueError:
    raise
  except Image.DecompressionBombError as e:
    raise ValueError(f"{path!r} declares an image too large to decode safely ({e}); refused before decoding.")         from None
  except Exception as e:  # PIL raises several types for unreadable files
    raise ValueError(f"{path!r} is not a readable image ({type(e).__name__}: {e}).") from None
  if frames > 1:
    warnings.warn(f"{path!r} has {frames} frames; the first is used.", UserWarning, stacklevel=2)
  mode = img.mode
  alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info)
  if alpha:
    warnings.warn(f"{path!r} has an alpha channel; it is dropped and the colour channels are restored.",
                  UserWarning, stacklevel=2)
  size = (img.height, img.width)
  if mode in ("I;16", "I;16B", "I;16L", "I"):
    arr = np.asarray(img, dtype=np.float32)
    sixteen = mode.startswith("I;16") or arr.max() > 255
    arr = np.clip(arr / (65535.0 if sixteen else 255.0), 0, 1)[..., None].astype(np.float32)
    return arr, ImageInfo(mode, 16 if sixteen else 8, alpha, size)
  if mode in ("L", "1", "LA", "La"):
    return (np.asarray(img.convert("L"), np.float32) / 255.0)[..., None], ImageInfo(mode, 8, alpha, size)
  if mode == "F":
    raise ValueError(f"{path!r} is a floating-point image; save it as a .npy array in [0, 1] instead.")
  return np.asarray(img.convert("RGB"), np.float32) / 255.0, ImageInfo(mode, 8, alpha, size)


def load_image(path: str) -> np.ndarray:
  """Loads an image file as float32 ``(H, W, C)`` in ``[0, 1]``; see :func:`read_image`."""
  return read_image(path)[0]


def to_uint8(image: np.ndarray) -> np.ndarray:
  """Clips to [0, 1], scales to 0..255 and rounds (the reference's ``np_to_pil``, with rounding)."""
  return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def atomic_write(path: str, write) -> None:
  """Writes ``path`` atomically: ``write(tmp)`` fills a temporary file in the same folder, then it replaces ``path``."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
  os.close(fd)
  try:
    write(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def ensure_writable(out_dir: str) -> None:
  """Creates ``out_dir`` and checks a file can be written there, before any work is done."""
  try:
    os.makedirs(out_dir, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".write-test-")
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise ValueError(f"output directory {out_dir!r} is not writable ({e.strerror or e}); choose a writable "
                     "folder.") from None


def save_image(path: str, image, *, bit_depth: int = 8) -> None:
  """Saves a float ``(H, W, C)`` image in [0, 1] as a PNG (gray when C = 1), atomically.

  ``bit_depth=16`` writes a 16-bit gray PNG (colour PNGs are 8-bit: Pillow writes no 48-bit RGB).
  """
  image = np.asarray(image, np.float32)
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"`image` must be (H, W, 1) or (H, W, 3), got shape {image.shape}.")
  if bit_depth not in (8, 16):
    raise ValueError(f"`bit_depth` must be 8 or 16, got {bit_depth!r}.")
  if bit_depth == 16 and image.shape[-1] == 1:
    arr16 = np.round(np.clip(image[..., 0], 0.0, 1.0) * 65535.0).astype(np.uint16)
    pil = Image.fromarray(arr16.astype(np.int32), mode="I").convert("I;16")
    atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))
    return
  arr = to_uint8(image)
  pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
  atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))


def save_text(path: str, text: str) -> None:
  """Writes ``text`` (UTF-8), atomically."""

  def write(tmp):
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)

  atomic_write(path, write)


def save_json(path: str, obj) -> None:
  """Writes ``obj`` as indented JSON, atomically."""

  def write(tmp):
    with open(tmp, "w") as f:
      json.dump(obj, f, indent=1, default=_json_default)

  atomic_write(path, write)


def _json_default(x):
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  if hasattr(x, "tolist"):
    return np.asarray(x).tolist()
  raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def load_mask(path: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
  """Loads a binary mask image as float32 ``(H, W, 1)`` with 1 = known pixel, 0 = hole.

  Any single-channel or colour image whose pixels are only black and white is
  accepted (8-bit {0, 255} as the reference's masks, or 1-bit).

  Args:
    path: the mask file.
    shape: if given, the image shape ``(H, W[, C])`` the mask must match.

  Raises:
    ValueError: missing/unreadable file, size different from ``shape``, or values
      other than black and white.
  """
  mask = load_image(path)
  if shape is not None and tuple(mask.shape[:2]) != tuple(shape[:2]):
    raise ValueError(f"mask {path!r} is {mask.shape[1]}x{mask.shape[0]} but the image is {shape[1]}x{shape[0]} "
                     "(width x height); pass a mask of the image's size.")
  values = np.unique(mask)
  if not np.all(np.isin(values, (0.0, 1.0))):
    raise ValueError(f"mask {path!r} is not binary (it has {len(values)} distinct values); use black (0) for "
                     "holes and white (255) for known pixels.")
  if mask.shape[-1] == 3:
    if not np.all(mask == mask[..., :1]):
      raise ValueError(f"mask {path!r} has coloured pixels; use a black-and-white mask.")
    mask = mask[..., :1]
  return mask.astype(np.float32)


def save_strip(path: str, images, labels, *, min_tile_width: int = 192, font_size: int = 12) -> None:
  """Saves images side by side (gray ones as RGB) with a caption above each, atomically.

  Images narrower than ``min_tile_width`` are enlarged by an integer factor with
  nearest-neighbour (pixels stay visible); captions wrap onto a second line.

  Args:
    path: output PNG path.
    images: float ``(H, W, C)`` images in [0, 1] of one height (C = 1 or 3).
    labels: one caption per image.
  """
  canvas = _strip(images, labels, min_tile_width=min_tile_width, font_size=font_size)
  atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


def save_grid(path: str, rows, labels, *, min_tile_width: int = 96, font_size: int = 11) -> None:
  """Saves rows of captioned images (each row as :func:`save_strip`) one under the other, atomically.

  Args:
    path: output PNG path.
    rows: lists of float ``(H, W, C)`` images in [0, 1] (one height per row).
    labels: one list of captions per row.
  """
  if len(rows) != len(labels) or not rows:
    raise ValueError(f"save_grid: got {len(rows)} rows and {len(labels)} label rows.")
  strips = [_strip(r, l, min_tile_width=min_tile_width, font_size=font_size) for r, l in zip(rows, labels)]
  gap = 6
  canvas = Image.new("RGB", (max(s.width for s in strips), sum(s.height for s in strips) + gap * (len(strips) - 1)),
                     (255, 255, 255))
  y = 0
  for strip in strips:
    canvas.paste(strip, (0, y))
    y += strip.height + gap
  atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


def _strip(images, labels, *, min_tile_width: int, font_size: int):
  """The captioned row of :func:`save_strip` as a PIL image."""
  from PIL import ImageDraw, ImageFont

  images = [np.asarray(im, np.float32) for im in images]
  if len(images) != len(labels) or not images:
    raise ValueError(f"save_strip: got {len(images)} images and {len(labels)} labels.")
  height = images[0].shape[0]
  if any(im.ndim != 3 or im.shape[0] != height for im in images):
    raise ValueError(f"save_strip: images must be (H, W, C) of one height, got {[im.shape for im in images]}.")
  scale = max(1, -(-min_tile_width // min(im.shape[1] for im in images)))
  tiles = [to_uint8(np.repeat(im, 3, axis=-1) if im.shape[-1] == 1 else im) for im in images]
  tiles = [np.repeat(np.repeat(t, scale, axis=0), scale, axis=1) for t in tiles]
  font = ImageFont.load_default(size=font_size)
  measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

  def wrap(label: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in label.split():
      trial = f"{line} {word}".strip()
      if line and measure.textlength(trial, font=font) > width - 4:
        lines.append(line)
        line = word
      else:
        line = trial
    return lines + [line]

  wrapped = [wrap(label, t.shape[1]) for t, label in zip(tiles, labels)]
  line_h = font_size + 3
  label_height = line_h * max(len(w) for w in wrapped) + 2
  gap = 4
  width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
  canvas = Image.new("RGB", (width, tiles[0].shape[0] + label_height), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  x = 0
  for tile, lines in zip(tiles, wrapped):
    canvas.paste(Image.fromarray(tile), (x, label_height))
    for i, line in enumerate(lines):
      draw.text((x + 2, 1 + i * line_h), line, fill=(0, 0, 0), font=font)
    x += tile.shape[1] + gap
  return canvas
