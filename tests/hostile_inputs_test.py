"""A corpus of hostile inputs, generated here: each gives a one-line error or a documented conversion.

Never a traceback, never a partially written output.
"""

import json
import os
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from cli_helpers import error_of, run_main
from tasks_test import ROOT, save, smooth_image


def png_header_only(path, width, height):
  """A PNG whose header declares ``width x height`` RGB pixels, with no real pixel data."""

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
                   + chunk(b"IEND", b""))
  return str(path)


@pytest.fixture
def corpus(tmp_path):
  good = smooth_image(40, 40)
  files = {}
  full = tmp_path / "full.png"
  save(full, good)
  data = full.read_bytes()
  (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
  files["truncated"] = str(tmp_path / "truncated.png")
  (tmp_path / "empty.png").write_bytes(b"")
  files["empty"] = str(tmp_path / "empty.png")
  (tmp_path / "text.png").write_text("this is not a picture\n")
  files["text"] = str(tmp_path / "text.png")
  files["one_pixel"] = save(tmp_path / "one.png", np.full((1, 1, 3), 0.5, np.float32))
  files["bomb"] = png_header_only(tmp_path / "bomb.png", 20000, 20000)
  nan = good.copy()
  nan[3, 4, 1] = np.nan
  np.save(tmp_path / "nan.npy", nan)
  files["nan_npy"] = str(tmp_path / "nan.npy")
  files["good"] = str(full)
  files["mask_small"] = save(tmp_path / "mask_small.png", np.full((32, 40), 255, np.uint8))
  grey = np.full((40, 40), 255, np.uint8)
  grey[10:20, 10:20] = 100
  files["mask_grey"] = save(tmp_path / "mask_grey.png", grey)
  return files


@pytest.mark.parametrize("name,task,flag,expected", [
    ("truncated", "denoise", "image", "not a readable image"),
    ("empty", "denoise", "image", "is empty (0 bytes)"),
    ("text", "deblock", "image", "not a readable image"),
    ("one_pixel", "denoise", "image", "needs at least 32x32"),
    ("bomb", "denoise", "image", "refused before decoding"),
    ("nan_npy", "denoise", "clean", "non-finite values"),
    ("mask_small", "inpaint", "mask", "pass a mask of the image's size"),
    ("mask_grey", "restore", "mask", "not binary"),
])
def test_hostile_input_gives_a_one_line_error_and_writes_nothing(corpus, tmp_path, name, task, flag, expected):
  out = tmp_path / "out"
  args = ["--preset=tiny", "--steps=1", f"--out_dir={out}", f"--{flag}={corpus[name]}"]
  if flag == "mask":
    args.append(f"--clean={corpus['good']}")
  message = error_of(task, args)
  assert expected in message, message
  assert not out.exists() or os.listdir(out) == []


def test_bomb_is_refused_from_the_header_alone(corpus):
  from dipjax import image_io
  with pytest.raises(ValueError, match="refused before decoding"):
    image_io.read_image(corpus["bomb"])
  assert os.path.getsize(corpus["bomb"]) < 200  # nothing but a header: decoding never started


def test_hostile_input_in_a_real_process_has_no_traceback(corpus, tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-m", "experiments.denoise", "--preset=tiny", f"--image={corpus['truncated']}",
                         f"--out_dir={tmp_path / 'o'}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


def test_documented_conversions_run(tmp_path, capsys):
  rgb = (smooth_image(40, 40) * 255).astype(np.uint8)
  gray16 = tmp_path / "gray16.png"
  Image.fromarray((smooth_image(40, 40, 1)[..., 0] * 65535).astype(np.int32), mode="I").convert("I;16").save(gray16)
  cmyk = tmp_path / "cmyk.jpg"
  Image.fromarray(rgb).convert("CMYK").save(cmyk, quality=95)
  gif = tmp_path / "anim.gif"
  frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
  frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
  npy = tmp_path / "ok.npy"
  np.save(npy, smooth_image(40, 40))
  from dipjax import image_io
  for path in (cmyk, npy):  # read as RGB float images (the entry point's run on them is the RGB run below)
    image, _ = image_io.read_image(str(path))
    assert image.shape == (40, 40, 3) and image.dtype == np.float32 and 0 <= image.min() <= image.max() <= 1
  for path, mode, channels in ((gray16, "I;16", 1), (gif, "RGB", 3)):
    out = tmp_path / os.path.basename(str(path)).replace(".", "_")
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      run_main("denoise", ["--preset=tiny", "--steps=1", f"--image={path}", f"--out_dir={out}"])
    assert Image.open(out / "output.png").mode == mode, path
    assert json.loads((out / "metrics.json").read_text())["channels"] == channels
    if path == gif:
      assert any("2 frames; the first is used" in str(w.message) for w in caught)
      first = np.asarray(Image.open(out / "input.png").convert("RGB"), np.int32)
      assert np.abs(first - rgb).mean() < 12  # the first frame, not the inverted second
