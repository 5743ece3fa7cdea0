r"""Reproduces the paper's colour denoising table: 9 images, σ = 25 (or 50), single run, EMA, seed ensembles.

The inputs are the **published noisy images** (``<data_dir>/denoising_cset9/<name>_noisy.png``,
``sigma50/`` for σ = 50) so the numbers are comparable with the paper's; the ground
truth is ``<name>_GT.png``. Every image × seed is fitted in one compiled program per
image size (``dipjax.batch``); the table reports per image and mean: the final
output (mean ± sd over seeds), its EMA, the ensembles of 2 and of S seeds, the best
step of the PSNR curve (an oracle), the released DIP / CBM3D / NLM outputs scored on
the same pixels, and with ``--baselines`` our NLM, TV and wavelet denoisers and our
CBM3D (the ``bm3d`` package, given the published σ; skipped with a note when it is
not installed: ``pip install bm3d``). Paper:
DIP 29.22 (single, 1800 steps) / 30.43 (EMA) / 31.00 (two runs averaged); CBM3D
31.42; NLM 30.26; the released DIP outputs average 31.29.

    python -m experiments.reproduce_denoising --data_dir=../shared/data/benchmarks --seeds=4      # paper protocol (GPU)
    python -m experiments.reproduce_denoising --scale=64 --steps=400 --seeds=8                     # CPU scale
    python -m experiments.reproduce_denoising --sigma=50                                           # σ = 50 set

Writes ``table.md``, ``results.json``, ``curves/``, ``ensemble.png`` and ``images/`` into
``--out_dir`` (default ``runs/reproduce_denoising``; see ``experiments.reproduce``).
"""

from __future__ import annotations

import dataclasses
import os

from absl import flags

from dipjax import tasks
from experiments import cli, reproduce
from experiments.reproduce import FLAGS

DEFAULT_SEEDS = 4
PAPER = {
    25: {"DIP single (1800 steps)": 29.22, "DIP EMA": 30.43, "DIP two-run average": 31.00, "CBM3D": 31.42,
         "NLM": 30.26, "released DIP outputs": 31.29},
    50: {"released DIP outputs": 27.69, "released CBM3D outputs": 27.78},
}
PUBLISHED = {25: ("deep_prior", "bm3d", "nlm"), 50: ("deep_prior", "bm3d")}
LABELS = {"deep_prior": "DIP", "bm3d": "CBM3D", "nlm": "NLM"}


def load_items(data_dir: str, *, sigma: int, scale: int, names=(), preset=None) -> list[reproduce.Item]:
  """The denoising set as :class:`~experiments.reproduce.Item` (published noisy inputs, centre-cropped to ``scale``)."""
  root = os.path.join(data_dir, "denoising_cset9")
  folder = root if sigma == 25 else os.path.join(root, "sigma50")
  items = []
  for name in reproduce.list_names(folder, "_noisy.png", names):
    problem = tasks.denoise(noisy=tasks.centre_crop(reproduce.load(folder, f"{name}_noisy.png"), scale),
                            clean=tasks.centre_crop(reproduce.load(root, f"{name}_GT.png"), scale))
    problem = dataclasses.replace(problem, noise_sigma=sigma / 255.0,  # the published σ (CBM3D takes it)
                                  source={**problem.source, "published_sigma_255": sigma})
    published = {m: tasks.centre_crop(reproduce.load(folder, f"{name}_{m}.png"), scale) for m in PUBLISHED[sigma]}
    items.append(reproduce.Item(name=name, problem=problem, published=published))
  return items


def prepare():
  sigma = FLAGS.sigma
  if sigma not in (25, 50):
    raise ValueError(f"--sigma must be 25 or 50 (the published sets), got {sigma:g}.")
  sigma = int(sigma)
  name, preset = reproduce.preset_from_flags("denoise", "paper" if sigma == 25 else "paper_sigma50")

  def build():
    items = load_items(FLAGS.data_dir, sigma=sigma, scale=FLAGS.scale, names=FLAGS.images, preset=preset)
    return reproduce.Spec(title=f"Denoising, σ = {sigma}, {len(items)} colour images", protocol="RGB, all pixels",
                          paper=PAPER[sigma], published_labels=LABELS), items

  return name, preset, FLAGS.out_dir or os.path.join("runs", "reproduce_denoising"), build


reproduce.define_flags(data_help="Folder laid out like ../shared/data/benchmarks (with denoising_cset9/).",
                       default_seeds=DEFAULT_SEEDS)
flags.DEFINE_float("sigma", 25, "The published noise level: 25 or 50 (0-255 scale).")
main = reproduce.make_main(prepare)

if __name__ == "__main__":
  cli.run(main)
