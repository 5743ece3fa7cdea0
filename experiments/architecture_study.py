r"""The paper's Fig. 8: one problem fitted by several architectures × seeds; a PSNR table and a picture.

    python -m experiments.architecture_study              # large-hole inpainting, 128x128 crop, Fig. 8's nets, 2 seeds
    python -m experiments.architecture_study --preset=paper --clean=../shared/data/dip/inpainting/library.png \
        --mask=../shared/data/dip/inpainting/library_mask.png
    python -m experiments.architecture_study --task=denoise --nets=default,skip_noskip,unet,resnet,deep_decoder

Default networks: Fig. 8's (``skip_depth6``, ``skip_depth4``, ``skip_depth2``,
``unet_deconv``, ``resnet``) for inpainting, a mix with and without skips for
denoising; any of ``dipjax.architectures.NETWORKS`` by ``--nets``. The U-Net and ResNet
run at the reference's learning rate 0.001 unless ``--paper_learning_rates=false``.
Without ``--clean`` the bundled scikit-image picture is used with the preset's crop and
the synthetic corruption (a centred box hole of 1/9 of the area; Gaussian noise).
Each network is one compiled program with its seeds batched (``dipjax.architecture_study``).

Outputs in ``--out_dir`` (default ``runs/architecture_study_<task>``): ``table.md``,
``outputs.png`` (the observation, each network's first seed, the ground truth),
``results.json``.
"""

from __future__ import annotations

import os

from absl import flags

import jax

from dipjax import architecture_study, architectures, image_io, report, runner, tasks
from experiments import cli, flag_groups, task_main

FLAGS = flags.FLAGS
flags.DEFINE_enum("task", "inpaint", list(architecture_study.TASKS), "The task every network fits.")
flags.DEFINE_list("nets", [], "Networks to compare (dipjax.architectures.NETWORKS); default: Fig. 8's for inpaint.")
flags.DEFINE_enum("preset", "cpu", ["paper", "cpu", "tiny"], "Study settings: paper (the notebook's), cpu (a crop, "
                  "1000 steps), tiny (tests).")
flags.DEFINE_integer("steps", None, "Override the preset's number of Adam steps.")
flags.DEFINE_integer("seeds", 2, "Seeds per network (batched in its program).")
flags.DEFINE_integer("seed", 0, "Base random seed (synthetic corruption and fits).")
flags.DEFINE_bool("paper_learning_rates", True, "U-Net and ResNet at the reference's 0.001 (the hourglasses at the "
                  "preset's rate).")
flags.DEFINE_string("out_dir", None, "Output folder (default runs/architecture_study_<task>).")
flag_groups.define_images(mask=True, observed="the corrupted image")


def load_problem(task: str, config):
  """The problem from --image/--clean/--mask (or the bundled picture), cropped, corrupted synthetically if needed."""
  loaded = task_main.load_images(task, config)
  images = loaded["images"]
  if "image" not in images and "clean" not in images:
    images["clean"] = tasks.centre_crop(task_main.bundled_image("astronaut"), loaded["crop"])
  corruption_key, _ = tasks.keys_for_seed(FLAGS.seed)
  problem = tasks.make_problem(corruption_key, task, config, **images)
  if problem.clean is None:
    raise ValueError("the study scores every network against the ground truth; pass --clean (with --image for a "
                     "real observation), or no image for the bundled one.")
  return problem, loaded["paths"]


def main():
  flag_groups.check()
  for name in ("steps", "seeds"):
    if FLAGS[name].value is not None and FLAGS[name].value < 1:
      raise ValueError(f"--{name} must be at least 1, got {FLAGS[name].value}.")
  nets = FLAGS.nets or list(architecture_study.default_nets(FLAGS.task))
  unknown = [n for n in nets if n not in architectures.NETWORKS]
  if unknown:
    raise ValueError(f"--nets: unknown network(s) {unknown}; choose from {list(architectures.NETWORKS)}.")
  config = architecture_study.study_config(FLAGS.task, FLAGS.preset, steps=FLAGS.steps)
  out_dir = flag_groups.out_dir(os.path.join("runs", f"architecture_study_{FLAGS.task}"))
  problem, paths = load_problem(FLAGS.task, config)
  cli.say(f"{FLAGS.task} study, preset {FLAGS.preset!r}: {config.describe()}; image "
          f"{problem.image_size[1]}x{problem.image_size[0]}; {len(nets)} networks x {FLAGS.seeds} seed(s)")
  rates = architecture_study.PAPER_LEARNING_RATES if FLAGS.paper_learning_rates else None
  rows = architecture_study.study(tasks.keys_for_seed(FLAGS.seed)[1], problem, config, nets, seeds=FLAGS.seeds,
                                  learning_rates=rates, chunk=runner.auto_chunk(), log=cli.say)
  table = architecture_study.markdown(rows)
  cli.say(table)
  image_io.save_text(os.path.join(out_dir, "table.md"), table)
  image_io.save_strip(os.path.join(out_dir, "outputs.png"),
                      [problem.input_view] + [r.outputs[0] for r in rows] + [problem.clean],
                      [problem.input_label] + [f"{r.name} {r.psnr[0]:.1f} dB" for r in rows] + ["ground truth"],
                      min_tile_width=128)
  image_io.save_json(os.path.join(out_dir, "results.json"), dict(
      task=FLAGS.task, preset=FLAGS.preset, config=config.to_dict(), seeds=FLAGS.seeds, seed=FLAGS.seed,
      inputs=paths, image_size=list(problem.image_size), device=str(jax.devices()[0].device_kind),
      versions=report.versions(),
      rows=[dict(name=r.name, num_params=r.num_params, learning_rate=r.learning_rate, psnr=r.psnr.tolist(),
                 hole_psnr=None if r.hole_psnr is None else r.hole_psnr.tolist(),
                 ema_psnr=r.ema_psnr.tolist(), ensemble_psnr=r.ensemble_psnr, best_psnr=r.best_psnr.tolist(),
                 best_step=r.best_step.tolist(), wall_s=r.wall_s) for r in rows]))
  cli.say(f"results in {out_dir}")


if __name__ == "__main__":
  cli.run(main)
