r"""Early stopping without ground truth on the colour denoising set: detected vs oracle vs last PSNR.

For each image of ``--data_dir/denoising_cset9`` (``<name>_noisy.png`` as the input,
``<name>_GT.png`` only for scoring) the denoising fit runs with every stopping
criterion tracked in the scan (``dipjax.stopping``: ES-EMV, ES-WMV, the discrepancy
principle with σ estimated from the noisy image), and the table reports the PSNR of
the per-step output at each criterion's detected step, at the best step (the
oracle, which needs ground truth) and at the last step, with the mean gap::

    python -m experiments.stopping_table --data_dir=../shared/data/benchmarks --crop=64 --steps=2500 --stop_patience=200

Writes ``table.md`` and ``table.json`` into ``--out_dir`` (and each image's run
folder). The benchmark images are never part of the project.
"""

from __future__ import annotations

import dataclasses
import os
import time

from absl import flags

import jax
import numpy as np

from dipjax import image_io, presets, report, restoration, tasks
from experiments import cli, flag_groups, reproduce

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", os.path.join("..", "shared", "data", "benchmarks"),
                    "Folder laid out like ../shared/data/benchmarks (with denoising_cset9/).")
flags.DEFINE_list("images", [], "Subset of image names (default: every image of the set).")
flags.DEFINE_integer("crop", 64, "Centre crop of every image (CPU scale).")
flags.DEFINE_integer("steps", 2500, "Adam steps per image.")
flags.DEFINE_string("out_dir", "runs/stopping_table", "Output folder.")
flag_groups.define_stopping()


def run_table(*, data_dir: str, names: list[str], crop: int, steps: int, stop: restoration.StopOptions,
              out_dir: str, log=print) -> dict:
  """Runs the denoising fit on each image; returns per-image and mean PSNRs per criterion."""
  folder = os.path.join(data_dir, "denoising_cset9")
  names = reproduce.list_names(folder, "_noisy.png", names)
  preset = dataclasses.replace(presets.get("denoise", "cpu"), steps=steps, crop=crop)
  rows = {}
  for name in names:
    problem = tasks.denoise(noisy=tasks.centre_crop(image_io.load_image(os.path.join(folder, f"{name}_noisy.png")), crop),
                            clean=tasks.centre_crop(image_io.load_image(os.path.join(folder, f"{name}_GT.png")), crop))
    t0 = time.perf_counter()
    result = tasks.restore_problem(tasks.keys_for_seed(0)[1], problem, preset, chunk=500, stop=stop)
    m = report.write_run(os.path.join(out_dir, name), problem, result, preset)
    st = m["summary"]["stopping"]
    rows[name] = dict(wall_s=time.perf_counter() - t0, best=st["emv"]["psnr_best"][0], last=st["emv"]["psnr_last"][0],
                      best_step=m["summary"]["best_step_per_seed"][0],
                      sigma_255=problem.source.get("estimated_sigma_255"),
                      **{c: dict(step=st[c]["detected_step"][0], fired=st[c]["fired"][0],
                                 psnr=st[c]["psnr_detected"][0]) for c in ("emv", "wmv", "discrepancy") if c in st})
    log(f"{name}: best {rows[name]['best']:.2f} (step {rows[name]['best_step']}), last {rows[name]['last']:.2f}, "
        + ", ".join(f"{c} {rows[name][c]['psnr']:.2f} (step {rows[name][c]['step']})"
                    for c in ("emv", "wmv", "discrepancy") if c in rows[name])
        + f" [{rows[name]['wall_s']:.0f} s]")
  crits = [c for c in ("emv", "wmv", "discrepancy") if all(c in r for r in rows.values())]
  mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in ("best", "last")}
  for c in crits:
    mean[c] = float(np.mean([r[c]["psnr"] for r in rows.values()]))
    mean[f"{c}_gap"] = mean["best"] - mean[c]
  return dict(rows=rows, mean=mean, criteria=crits, crop=crop, steps=steps, stop=dataclasses.asdict(stop),
              device=str(jax.devices()[0].device_kind))


def markdown(result: dict) -> str:
  crits = result["criteria"]
  head = "| image | best (oracle) | " + " | ".join(f"{c} detected" for c in crits) + " | last |\n"
  head += "|---" * (3 + len(crits)) + "|\n"
  lines = []
  for name, r in result["rows"].items():
    cells = [f"{r['best']:.2f} ({r['best_step']})"] + [f"{r[c]['psnr']:.2f} ({r[c]['step']})" for c in crits]
    lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['last']:.2f} |")
  m = result["mean"]
  lines.append("| **mean** | **%.2f** | " % m["best"] + " | ".join(
      f"**{m[c]:.2f}** (gap {m[c + '_gap']:.2f})" for c in crits) + f" | **{m['last']:.2f}** (gap "
      f"{m['best'] - m['last']:.2f}) |")
  return head + "\n".join(lines) + "\n"


def main():
  flag_groups.check()
  stop = restoration.StopOptions(patience=FLAGS.stop_patience, window=FLAGS.stop_window)
  out_dir = flag_groups.out_dir("runs/stopping_table")
  result = run_table(data_dir=FLAGS.data_dir, names=FLAGS.images, crop=FLAGS.crop, steps=FLAGS.steps, stop=stop,
                     out_dir=out_dir, log=cli.say)
  table = markdown(result)
  cli.say(table)
  image_io.save_text(os.path.join(out_dir, "table.md"), table)
  image_io.save_json(os.path.join(out_dir, "table.json"), result)


if __name__ == "__main__":
  cli.run(main)
