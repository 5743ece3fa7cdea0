r"""The ``main`` of the six task entry points: flags -> images -> problem -> :func:`dipjax.restore` -> report.

A task script (``experiments/denoise.py`` etc.) defines its flags (the groups of
:mod:`experiments.flag_groups` and its own corruption flag) and calls
:func:`make_main`; everything else is library work:

1. the images named by ``--image``/``--clean``/``--mask``/``--flash`` are read
   (:mod:`dipjax.image_io`) and centre-cropped by ``--crop`` (the bundled
   scikit-image picture when none is given, with the preset's crop);
2. :func:`dipjax.tasks.make_problem` builds the observation and operator,
   synthesising the corruption when only the ground truth is given;
3. :func:`dipjax.tasks.restore_problem` runs the restoration (canvas, seeds, chunks
   with progress, stopping, checkpoints, tiles);
4. :func:`dipjax.report.write_run` writes every output file atomically.

Outputs: :data:`dipjax.report.OUTPUT_FILES`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Optional

from absl import flags

import jax
import numpy as np

from dipjax import baselines, blur, image_io, report, runner, tasks
from experiments import cli, flag_groups

FLAGS = flags.FLAGS


def bundled_image(name: str = "astronaut") -> np.ndarray:
  """An image that ships with scikit-image (no download), float32 HWC in [0, 1]."""
  from skimage import data

  arr = np.asarray(getattr(data, name)(), np.float32) / 255.0
  return arr[..., None] if arr.ndim == 2 else arr[..., :3]


def _flag(name: str):
  return FLAGS[name].value if name in FLAGS else None


def load_images(task: str, preset) -> dict:
  """The images of ``--image``/``--clean``/``--mask``/``--flash`` (or the bundled one), centre-cropped by ``--crop``."""
  paths = {k: _flag(k) for k in ("image", "clean", "mask", "flash") if _flag(k)}
  loaded, info = {}, None
  for name in ("image", "clean", "flash"):
    if name in paths:
      loaded[name], file_info = image_io.read_image(paths[name])
      info = info or file_info
  crop = FLAGS.crop
  if "image" not in loaded and "clean" not in loaded:
    crop = preset.crop if crop is None else crop
  crop = crop or 0
  if "mask" in paths:
    full = loaded.get("image", loaded.get("clean"))
    if full is None:
      raise ValueError("--mask needs the image it belongs to (--image or --clean).")
    loaded["mask"] = image_io.load_mask(paths["mask"], full.shape)
  f = preset.factor if task == "super_resolution" else 1
  images = {}
  for name, image in loaded.items():
    if task == "super_resolution":
      images[name] = tasks.centre_crop(image, crop // f if crop and name == "image" else crop,
                                       multiple=1 if name == "image" else f)
    else:
      images[name] = tasks.centre_crop(image, crop)
  if _flag("kernel_file"):
    paths["kernel_file"] = _flag("kernel_file")
    images["kernel"] = blur.load_kernel(paths["kernel_file"])
  return dict(images=images, info=info, crop=crop, paths=paths)


def make_main(task: str, *, bundled: str, corruption: Callable[[], dict]) -> Callable[[], None]:
  """The ``main`` of a task entry point; ``corruption()`` gives the preset overrides of its corruption flags."""

  def main():
    flag_groups.check()
    name, preset = flag_groups.preset(task, **corruption())
    out_dir = flag_groups.out_dir(os.path.join("runs", task))
    t_start = time.perf_counter()
    loaded = load_images(task, preset)
    images = loaded["images"]
    if "image" not in images and "clean" not in images:
      images["clean"] = tasks.centre_crop(bundled_image(bundled), loaded["crop"],
                                          multiple=preset.factor if task == "super_resolution" else 1)
      loaded["paths"]["bundled"] = f"skimage.data.{bundled}"
    corruption_key, fit_key = tasks.keys_for_seed(FLAGS.seed)
    problem = tasks.make_problem(corruption_key, task, preset, **images)
    problem.source.update(loaded["paths"], crop=loaded["crop"])
    if loaded["info"] is not None:
      problem.bit_depth = loaded["info"].bit_depth
    cli.say(f"{task} preset {name!r}: {preset.describe()}")
    cli.say(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); image {problem.image_size[1]}x"
            f"{problem.image_size[0]}x{problem.observation.shape[-1]}; seeds: {FLAGS.seeds}")
    baseline_images, baseline_s = run_baselines(problem) if FLAGS.baselines else ({}, {})
    checkpoint = os.path.join(out_dir, "checkpoint.msgpack")
    result = tasks.restore_problem(
        fit_key, problem, preset, seeds=FLAGS.seeds, stop=flag_groups.stop_options(),
        chunk=FLAGS.chunk or runner.auto_chunk(), snapshot_every=FLAGS.save_every, checkpoint_path=checkpoint,
        checkpoint_every=FLAGS.checkpoint_every, resume=FLAGS.resume, tile=FLAGS.tile, tile_overlap=FLAGS.tile_overlap,
        log=cli.say, progress_every_s=FLAGS.progress_every)
    options = dict(preset_name=name, seeds=FLAGS.seeds, seed=FLAGS.seed, out_dir=out_dir, chunk=FLAGS.chunk or 'auto',
                   save_every=FLAGS.save_every, baselines=FLAGS.baselines, argv=sys.argv)
    metrics = report.write_run(out_dir, problem, result, preset, baseline_images=baseline_images,
                               baseline_s=baseline_s, options=options, wall_s=time.perf_counter() - t_start)
    cli.say(f"compile {metrics['compile_s']:.1f} s, run {metrics['run_s']:.1f} s "
            f"({metrics['s_per_step'] * 1e3:.1f} ms/step for {FLAGS.seeds} seed(s)), wall {metrics['wall_s']:.1f} s")
    for line in report.summary_lines(metrics):
      cli.say(line)
    cli.say(f"results in {out_dir}")
    if result.ended:
      raise SystemExit(f"error: {result.ended}")

  return main


def run_baselines(problem: tasks.Problem, log: Optional[Callable[[str], None]] = cli.say) -> tuple[dict, dict]:
  """The problem's classical baselines: ``({name: image}, {name: seconds})``.

  CBM3D gets the problem's noise std (known for synthetic Gaussian noise, else
  estimated); a baseline whose optional package is missing is skipped with a line
  saying what to install.
  """
  images, seconds = {}, {}
  for name, fn in problem.baselines.items():
    t0 = time.perf_counter()
    try:
      images[name] = np.asarray(baselines.call(name, fn, sigma=problem.noise_sigma), np.float32)
    except baselines.MissingDependency as e:
      log(f"baseline {name} skipped: {e}")
      continue
    seconds[name] = time.perf_counter() - t0
    log(f"baseline {name}: {seconds[name]:.1f} s")
  return images, seconds
