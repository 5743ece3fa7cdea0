r"""Reproduces the paper's Set5 super-resolution table (×4 and ×8) with its Y-channel protocol.

For each image of ``<data_dir>/sr_set5/x<f>/`` the low-resolution input is made from
``<name>_GT.png`` as the reference does (8-bit PIL Lanczos, high resolution cut to a
multiple of ``f``; no LR images are published); the loss is ``||d(f_θ(z)) − x0||²``
with the Lanczos-2 downsampler ``d``. PSNR: the paper's protocol, Y channel
(BT.601 studio) inside the non-zero box of the published DIP output shaved by 4 px
(the same box for every method; ``dipjax.psnr_sr``). The table reports per image and
mean our final output (mean ± sd over seeds), EMA, ensembles, the published DIP and
bicubic outputs on the same pixels, and with ``--baselines`` our bicubic upscaling.
Paper: ×4 DIP 29.90, bicubic 28.43; ×8 DIP 25.89 (σ_p 0.05; 25.79 with 0.03), bicubic 24.37.

    python -m experiments.reproduce_super_resolution --factor=4                      # paper protocol (GPU)
    python -m experiments.reproduce_super_resolution --factor=8
    python -m experiments.reproduce_super_resolution --scale=128 --steps=1000 --seeds=1   # CPU scale

The curves' PSNR is RGB over all pixels (what the scan computes); the table's is the
Y-channel protocol. Outputs as ``experiments.reproduce``; default ``--out_dir``
``runs/reproduce_super_resolution_x<f>``.
"""

from __future__ import annotations

import dataclasses
import os

from absl import flags

import dipjax
from dipjax import tasks
from experiments import cli, reproduce
from experiments.reproduce import FLAGS

DEFAULT_SEEDS = 1
PAPER = {
    4: {"DIP": 29.90, "bicubic": 28.43},
    8: {"DIP (σ_p 0.05)": 25.89, "DIP (σ_p 0.03)": 25.79, "bicubic": 24.37},
}
PUBLISHED = {4: ("deep_prior", "bicubic"), 8: ("deep_prior_005", "deep_prior_003", "bicubic")}
LABELS = {"deep_prior": "DIP", "deep_prior_005": "DIP (σ_p 0.05)", "deep_prior_003": "DIP (σ_p 0.03)",
          "bicubic": "bicubic"}


def load_items(data_dir: str, *, factor: int, scale: int, names=(), preset=None) -> list[reproduce.Item]:
  """Set5 at ``factor`` as items; each carries the evaluation box of the published DIP output (same crop)."""
  folder = os.path.join(data_dir, "sr_set5", f"x{factor}")
  items = []
  for name in reproduce.list_names(folder, "_GT.png", names):
    gt = reproduce.load(folder, f"{name}_GT.png")
    problem = tasks.super_resolution(clean=tasks.centre_crop(gt, scale, multiple=factor), factor=factor,
                                     kernel=preset.kernel)
    hr = problem.clean.shape[:2]
    published = {}
    for m in PUBLISHED[factor]:
      image = reproduce.load(folder, f"{name}_{m}.png")
      published[m] = tasks.centre_crop(image, scale, multiple=factor)  # the window of the ground truth's crop
      if published[m].shape[:2] != hr:
        raise ValueError(f"{name}_{m}.png is {image.shape[1]}x{image.shape[0]} but {name}_GT.png is "
                         f"{gt.shape[1]}x{gt.shape[0]}; the benchmark folder is inconsistent.")
    box = dipjax.metrics.nonzero_box(published[PUBLISHED[factor][0]])
    items.append(reproduce.Item(name=name, problem=problem, published=published, box=box))
  return items


def prepare():
  factor = FLAGS.factor
  if factor not in (4, 8):
    raise ValueError(f"--factor must be 4 or 8 (the published Set5 sets), got {factor}.")
  name, preset = reproduce.preset_from_flags("super_resolution", f"paper_x{factor}")
  preset = dataclasses.replace(preset, factor=factor)  # --factor picks the set; the preset the fit's settings

  def build():
    items = load_items(FLAGS.data_dir, factor=factor, scale=FLAGS.scale, names=FLAGS.images, preset=preset)
    return reproduce.Spec(title=f"Super-resolution x{factor}, Set5 ({len(items)} images)",
                          protocol="Y channel (BT.601), inside the published DIP output's non-zero box shaved by 4 px",
                          paper=PAPER[factor], published_labels=LABELS,
                          score=lambda image, clean, box: dipjax.psnr_sr(image, clean, box=box),
                          curve_note=", curves: RGB PSNR over all pixels"), items

  return name, preset, FLAGS.out_dir or os.path.join("runs", f"reproduce_super_resolution_x{factor}"), build


reproduce.define_flags(data_help="Folder laid out like ../shared/data/benchmarks (with sr_set5/x4, sr_set5/x8).",
                       default_seeds=DEFAULT_SEEDS)
flags.DEFINE_integer("factor", 4, "The published Set5 set: 4 or 8.")
main = reproduce.make_main(prepare)

if __name__ == "__main__":
  cli.run(main)
