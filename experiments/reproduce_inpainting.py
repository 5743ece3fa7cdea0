r"""Reproduces the paper's Table 1: 11 gray images with 50% of the pixels missing.

The masks come from the published masked inputs (``<data_dir>/inpainting_gray50/<name>_masked.png``
equals GT × mask exactly, so the mask is ``masked > 0``; where the ground truth itself
is 0 — 0.09–0.78% of the pixels of couple, montage and peppers256 — a kept pixel
counts as missing, which loses nothing: its value is 0 either way and the network
is still scored there). Loss ``||(f_θ(z) − x0) ⊙ m||²``; the paper's setting
(preset ``restore/paper_50``: default net, lr 0.001, 11000 steps, σ_p 0.03). PSNR:
gray, all pixels. The table reports per image and mean our final output (mean ± sd
over seeds), EMA, ensembles, the published DIP and Papyan et al. outputs, and with
``--baselines`` our biharmonic inpainting. Paper: DIP mean 33.48, Papyan et al. 31.19
(per-image Table 1 in dip_reference.md §5.3).

    python -m experiments.reproduce_inpainting                                    # paper protocol (GPU)
    python -m experiments.reproduce_inpainting --scale=96 --steps=1000 --lr=0.01     # CPU scale

Outputs as ``experiments.reproduce``; default ``--out_dir`` ``runs/reproduce_inpainting``.
"""

from __future__ import annotations

import os

import numpy as np

from dipjax import tasks
from experiments import cli, reproduce
from experiments.reproduce import FLAGS

DEFAULT_SEEDS = 1
PAPER = {"DIP": 33.48, "Papyan et al.": 31.19, "released DIP outputs": 33.44}
PUBLISHED = ("deep_prior", "papyan")
LABELS = {"deep_prior": "DIP", "papyan": "Papyan et al."}


def load_items(data_dir: str, *, scale: int, names=()) -> list[reproduce.Item]:
  """The 11-image set as items: observation = the published masked image, mask = ``masked > 0``."""
  folder = os.path.join(data_dir, "inpainting_gray50")
  items = []
  for name in reproduce.list_names(folder, "_masked.png", names):
    crop = lambda f: tasks.centre_crop(reproduce.load(folder, f"{name}_{f}.png")[..., :1], scale)
    masked, clean = crop("masked"), crop("GT")
    if masked.shape != clean.shape:
      raise ValueError(f"{name}_masked.png is {masked.shape[1]}x{masked.shape[0]} but {name}_GT.png is "
                       f"{clean.shape[1]}x{clean.shape[0]}; the benchmark folder is inconsistent.")
    mask = (masked > 0).astype(np.float32)
    problem = tasks.masked("restore", image=masked * mask, clean=clean, mask=mask)
    items.append(reproduce.Item(name=name, problem=problem, published={m: crop(m) for m in PUBLISHED}))
  return items


def prepare():
  name, preset = reproduce.preset_from_flags("restore", "paper_50")

  def build():
    items = load_items(FLAGS.data_dir, scale=FLAGS.scale, names=FLAGS.images)
    return reproduce.Spec(title=f"Inpainting, 50% of pixels missing, {len(items)} gray images",
                          protocol="gray, all pixels", paper=PAPER, published_labels=LABELS), items

  return name, preset, FLAGS.out_dir or os.path.join("runs", "reproduce_inpainting"), build


reproduce.define_flags(data_help="Folder laid out like ../shared/data/benchmarks (with inpainting_gray50/).",
                       default_seeds=DEFAULT_SEEDS)
main = reproduce.make_main(prepare)

if __name__ == "__main__":
  cli.run(main)
