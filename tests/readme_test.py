"""The README's "Use from Python" examples run as written (with the tiny network and 3 steps, to be quick)."""

import os
import re

import numpy as np
import pytest

from dipjax import presets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks(section: str, until: str) -> list[str]:
  """The ```python blocks of the README between the heading ``section`` and the text ``until``."""
  text = open(os.path.join(ROOT, "README.md")).read()
  start = text.index(f"## {section}")
  end = text.index(until, start)
  return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


BLOCKS = python_blocks("Use from Python", until="**Lower levels.**")


def test_the_section_has_the_four_tasks_each_in_at_most_five_lines_of_library_code():
  assert len(BLOCKS) >= 4
  for block in BLOCKS[1:]:  # the first block loads the image shared by the others
    code = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith(("#", "import",
                                                                                                   "from"))]
    assert len(code) <= 5, block


def test_the_examples_run(monkeypatch):
  real_get = presets.get
  monkeypatch.setattr(presets, "get", lambda task, name, **kw: real_get(task, "tiny", **{**kw, "steps": 3}))
  namespace = {}
  for block in BLOCKS:
    exec(compile(block, "README.md", "exec"), namespace)
  for name in ("denoised", "high_res", "inpainted"):
    image = np.asarray(namespace[name])
    assert image.ndim == 3 and np.all(np.isfinite(image)) and 0 <= image.min() and image.max() <= 1, name
  assert namespace["high_res"].shape[:2] == (128, 128)
