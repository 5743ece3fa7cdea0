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

from absl import app, flags

import jax
import numpy as np

from dipjax import image_io, presets
from experiments import common, denoise, reproduce  # reproduce defines --data_dir and --images

FLAGS = flags.FLAGS
# --crop (default 64: CPU scale), --steps (default 2500), --out_dir (default runs/stopping_table),
# --stop_patience and --stop_window are the shared flags of experiments/common.py.


def run_table(*, data_dir: str, names: list[str], crop: int, steps: int, stop: common.StopOptions, out_dir: str,
              log=print) -> dict:
  """Runs the denoising fit on each image; returns per-image and mean PSNRs per criterion."""
  folder = os.path.join(data_dir, "denoising_cset9")
  names = reproduce.list_names(folder, "_noisy.png", names)
  preset = dataclasses.replace(presets.get("denoise", "cpu"), steps=steps, crop=crop)
  rows = {}
  for name in names:
    inputs = common.Inputs(image=image_io.load_image(os.path.join(folder, f"{name}_noisy.png")),
                           clean=image_io.load_image(os.path.join(folder, f"{name}_GT.png")), crop=crop)
    problem = denoise.make_problem(preset, inputs, key=jax.random.key(0))
    t0 = time.perf_counter()
    m = common.run_task(preset, problem, out_dir=os.path.join(out_dir, name), chunk=500, stop=stop,
                        log=lambda msg: None)
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


def main(argv):
  del argv
  stop = common.StopOptions(patience=FLAGS.stop_patience, window=FLAGS.stop_window)
  try:
    out_dir = FLAGS.out_dir or "runs/stopping_table"
    common.ensure_writable(out_dir)
    result = run_table(data_dir=FLAGS.data_dir, names=FLAGS.images, crop=FLAGS.crop or 64, steps=FLAGS.steps or 2500,
                       stop=stop, out_dir=out_dir, log=lambda m: print(m, flush=True))
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  table = markdown(result)
  print(table)
  image_io.save_text(os.path.join(out_dir, "table.md"), table)
  image_io.save_json(os.path.join(out_dir, "table.json"), result)


if __name__ == "__main__":
  app.run(main)
