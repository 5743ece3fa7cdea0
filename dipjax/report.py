r"""Writes a restoration to a folder: images, a comparison strip, the curves and ``metrics.json``.

:func:`write_run` takes a :class:`dipjax.tasks.Problem` and the
:class:`dipjax.restore.Restoration` of it and writes every file of
:data:`OUTPUT_FILES` atomically (a crash never leaves a half-written file);
:func:`image_summary` scores every image against the ground truth. Every PSNR
names the image it scores (:mod:`dipjax.summary`).

Example:
  >>> import tempfile, numpy as np, jax, dipjax
  >>> from dipjax import presets, report, tasks
  >>> clean = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
  >>> problem = tasks.make_problem(jax.random.key(0), "denoise", presets.get("denoise", "tiny"), clean=clean)
  >>> result = tasks.restore_problem(jax.random.key(1), problem, presets.get("denoise", "tiny", steps=3))
  >>> metrics = report.write_run(tempfile.mkdtemp(), problem, result, presets.get("denoise", "tiny", steps=3))
  >>> "output.png" in metrics["files"], metrics["summary"]["psnr"]["output"] > 0
  (True, True)
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from typing import Optional

import numpy as np

from dipjax import image_io
from dipjax import metrics as metrics_lib
from dipjax import summary as summary_lib

STD_WHITE = 0.1  # a standard-deviation map is saved with 0 black and this value (or more) white

OUTPUT_FILES = {
    "input.png": "the corrupted input (for super-resolution the low-resolution image; for inpainting the "
                 "masked image)",
    "output.png": "f_θ(z) after the last step (seed 0), at the input's original size and mode",
    "ema.png": "the exponential moving average of the outputs (seed 0)",
    "stopped.png": "the per-step output at the step the early-stopping criterion detected (seed 0; no ground truth "
                   "used; f_θ(z) after the last step where it detected nothing)",
    "ensemble.png": "mean of the seeds' final outputs (only with more than one seed)",
    "ensemble_ema.png": "mean of the seeds' EMAs (only with more than one seed)",
    "posterior_mean.png": "SGLD posterior mean of the sampled outputs (seed 0; presets with sample_every > 0)",
    "posterior_ensemble.png": "mean of the seeds' posterior means (SGLD, more than one seed)",
    "posterior_std.png": "per-pixel standard deviation of the SGLD samples (seed 0, channel mean), black 0 to white "
                         "0.1 (STD_WHITE)",
    "ensemble_std.png": "per-pixel standard deviation of the seeds' outputs (more than one seed), black 0 to white "
                        "0.1 (STD_WHITE)",
    "clean.png": "the ground truth, when known",
    "mask.png": "the mask (inpainting, restoration)",
    "baseline_<name>.png": "classical baselines (only when asked for)",
    "comparison.png": "side-by-side strip: input | output | EMA | [ensemble] | [baselines] | [ground truth]",
    "curves.png": "loss and PSNR of the per-step output against steps, best step marked when the ground truth is known",
    "metrics.json": "preset, options, versions, device, timings, PSNR/SSIM summary and per-step curves",
    "steps/output_<step>.png": "f_θ(z) every `snapshot_every` steps (seed 0)",
    "checkpoint.msgpack": "the full run state (with checkpoints on), to resume",
}


def versions() -> dict:
  """Versions of Python and of the packages a result depends on."""
  out = {"python": sys.version.split()[0]}
  for pkg in ("dipjax", "jax", "jaxlib", "flax", "optax", "numpy", "scikit-image", "pillow"):
    try:
      out[pkg] = importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
      out[pkg] = None
  return out


def result_images(result) -> dict:
  """The images a run saves: ``output``, ``ema``, ``stopped`` of seed 0 and the ensembles (several seeds)."""
  images = {"output": result.output[0], "ema": result.ema[0], "stopped": result.stopped[0]}
  if result.output.shape[0] > 1:
    images["ensemble"] = result.ensemble
    images["ensemble_ema"] = result.ensemble_ema
  if result.posterior_mean is not None:
    images["posterior_mean"] = result.posterior_mean[0]
    if result.posterior_mean.shape[0] > 1:
      images["posterior_ensemble"] = result.posterior_mean.mean(axis=0)
  return images


def std_maps(result) -> dict:
  """The uncertainty maps of a run, ``(H, W)`` each (channel mean): SGLD samples' std (seed 0), seeds' std."""
  maps = {}
  if result.posterior_std is not None:
    maps["posterior_std"] = np.asarray(result.posterior_std[0]).mean(axis=-1)
  if result.output.shape[0] > 1:
    maps["ensemble_std"] = np.asarray(result.ensemble_std).mean(axis=-1)
  return maps


def uncertainty_summary(result, clean: np.ndarray) -> dict:
  """How well each std map predicts the actual error: Pearson r with ``|estimate − clean|`` (channel mean).

  The SGLD std is paired with the posterior mean's error (seed 0), the seeds' std with
  the ensemble's error; also each map's mean std and the mean absolute error.
  """
  estimates = {"posterior_std": None if result.posterior_mean is None else result.posterior_mean[0],
               "ensemble_std": result.ensemble}
  out = {}
  for name, std in std_maps(result).items():
    error = np.abs(np.asarray(estimates[name], np.float64) - clean).mean(axis=-1)
    std = np.asarray(std, np.float64)
    r = float(np.corrcoef(std.ravel(), error.ravel())[0, 1]) if std.std() > 0 and error.std() > 0 else float("nan")
    out[name] = dict(pearson_r_with_abs_error=r, mean_std=float(std.mean()), mean_abs_error=float(error.mean()))
  return out


def image_summary(problem, result, baseline_images: dict) -> dict:
  """PSNR/SSIM of every saved image against the ground truth, and the per-step curve's best and last steps.

  ``psnr``/``ssim`` score the saved images (f(z), its averages, the baselines);
  ``best_*``/``last_*`` the per-step output's curve (labelled in ``psnr_kind``).
  """
  summary = {"psnr": {}, "ssim": {}, "psnr_kind": {"psnr, ssim": summary_lib.SAVED}}
  if problem.clean is None:
    summary["final_psnr_target"] = np.asarray(result.curves.psnr_target)[:, -1].tolist()
    return summary
  clean = np.asarray(problem.clean, np.float32)
  images = {"input": problem.input_view, **result_images(result),
            **{f"baseline_{k}": v for k, v in baseline_images.items()}}
  for name, image in images.items():
    summary["psnr"][name] = summary_lib.image_psnr(image, clean)
    summary["ssim"][name] = metrics_lib.ssim(image, clean)
  if problem.sr_factor and clean.shape[-1] == 3:
    summary["psnr_y"] = {name: metrics_lib.psnr_sr(image, clean) for name, image in images.items()}
  summary["psnr_output_per_seed"] = [summary_lib.image_psnr(o, clean) for o in result.output]
  summary["psnr_ema_per_seed"] = [summary_lib.image_psnr(o, clean) for o in result.ema]
  if result.posterior_mean is not None:
    summary["psnr_posterior_mean_per_seed"] = [summary_lib.image_psnr(o, clean) for o in result.posterior_mean]
    summary["posterior_samples"] = result.posterior_samples
  summary["uncertainty"] = uncertainty_summary(result, clean)
  steps = summary_lib.best_steps(result.curves)
  summary["psnr_kind"]["best_*, last_*"] = steps.pop("psnr_kind")
  summary.update(steps)
  return summary


def _save_images(out_dir: str, problem, result, baseline_images: dict, bit_depth: int) -> None:
  join = lambda name: os.path.join(out_dir, name)
  image_io.save_image(join("input.png"), problem.observation, bit_depth=bit_depth)
  for name, image in result_images(result).items():
    image_io.save_image(join(f"{name}.png"), image, bit_depth=bit_depth)
  if problem.mask is not None:
    mask = np.asarray(problem.mask)
    image_io.save_image(join("mask.png"), mask[..., :1] if np.all(mask == mask[..., :1]) else mask)
  for name, image in baseline_images.items():
    image_io.save_image(join(f"baseline_{name}.png"), image, bit_depth=bit_depth)
  if problem.clean is not None:
    image_io.save_image(join("clean.png"), problem.clean, bit_depth=bit_depth)
  for name, std in std_maps(result).items():
    image_io.save_image(join(f"{name}.png"), np.clip(std / STD_WHITE, 0.0, 1.0)[..., None])
  for step, images in sorted(result.snapshots.items()):
    image_io.save_image(join(os.path.join("steps", f"output_{step:06d}.png")), images[0], bit_depth=bit_depth)


def _save_strip(out_dir: str, problem, result, baseline_images: dict, summary: dict) -> None:
  strip = [(problem.input_view, problem.input_label)]
  strip += [(im, name.replace("_", " ")) for name, im in result_images(result).items()]
  strip += [(im, name) for name, im in baseline_images.items()]
  if problem.clean is not None:
    keys = ["input"] + list(result_images(result)) + [f"baseline_{n}" for n in baseline_images]
    strip = [(im, f"{label} {summary['psnr'][key]:.2f} dB") for (im, label), key in zip(strip, keys)]
    strip.append((problem.clean, "ground truth"))
  image_io.save_strip(os.path.join(out_dir, "comparison.png"), [im for im, _ in strip], [lb for _, lb in strip])


def write_run(out_dir: str, problem, result, config, *, baseline_images: Optional[dict] = None,
              baseline_s: Optional[dict] = None, options: Optional[dict] = None, wall_s: Optional[float] = None) -> dict:
  """Writes the files of :data:`OUTPUT_FILES` into ``out_dir`` and returns the ``metrics.json`` dictionary.

  Args:
    out_dir: the output folder (created; must be writable).
    problem: the :class:`dipjax.tasks.Problem` that was restored.
    result: its :class:`dipjax.restore.Restoration`.
    config: the preset it ran with.
    baseline_images / baseline_s: classical restorations and their run times.
    options: anything else to record (e.g. the command-line flags).
    wall_s: the whole run's wall time (default: the restoration's).
  """
  image_io.ensure_writable(out_dir)
  baseline_images = baseline_images or {}
  bit_depth = 16 if (problem.bit_depth == 16 and problem.observation.shape[-1] == 1) else 8
  _save_images(out_dir, problem, result, baseline_images, bit_depth)
  summary = image_summary(problem, result, baseline_images)
  summary["stopping"] = result.stopping
  _save_strip(out_dir, problem, result, baseline_images, summary)
  from dipjax import plotting  # matplotlib is imported only when a plot is drawn
  has_clean = problem.clean is not None
  info = result.info
  plotting.plot_curves(os.path.join(out_dir, "curves.png"), loss=result.curves.loss,
                       psnr_target=result.curves.psnr_target,
                       psnr_clean=result.curves.psnr_clean if has_clean else None,
                       ema_psnr_clean=result.curves.ema_psnr_clean if has_clean else None,
                       title=f"{config.task}: {problem.image_size[1]}x{problem.image_size[0]}, "
                             f"{result.output.shape[0]} seed(s)" + (f", {info['tiles']} tiles" if info["tiles"] > 1
                                                                     else ""))
  metrics = dict(
      task=config.task, preset=config.to_dict(), options=options or {}, source=problem.source,
      seeds=int(result.output.shape[0]), image_size=list(problem.image_size),
      channels=int(problem.observation.shape[-1]), versions=versions(), **info,
      s_per_step=info["run_s"] / max(result.steps_run, 1), steps_run=result.steps_run, ended=result.ended,
      early_stopped=result.early_stopped, baseline_s=baseline_s or {}, summary=summary,
      curves={k: np.asarray(v).tolist() for k, v in result.curves._asdict().items()})
  if wall_s is not None:
    metrics["wall_s"] = wall_s
  metrics["files"] = sorted(os.path.relpath(os.path.join(r, f), out_dir) for r, _, fs in os.walk(out_dir)
                            for f in fs if not f.startswith(".")) + ["metrics.json"]
  metrics["files"] = sorted(set(metrics["files"]))
  image_io.save_json(os.path.join(out_dir, "metrics.json"), metrics)
  return metrics


def summary_lines(metrics: dict) -> list:
  """The lines an entry point prints at the end of a run, each saying which image its PSNR scores."""
  lines = []
  summary = metrics["summary"]
  if summary["psnr"]:
    lines.append("PSNR (dB) / SSIM of the saved images vs ground truth: " + ", ".join(
        f"{k} {v:.2f}/{summary['ssim'][k]:.3f}" for k, v in summary["psnr"].items()))
    lines.append(f"per-step output x_t = f(z + σ_p ε_t) (seed 0): best step {summary['best_step_per_seed'][0]} at "
                 f"{summary['best_psnr_per_seed'][0]:.2f} dB, last step {summary['last_psnr_per_seed'][0]:.2f} dB")
  if "psnr_posterior_mean_per_seed" in summary:
    lines.append(f"SGLD posterior mean of {summary['posterior_samples'][0]} samples (seed 0): "
                 f"{summary['psnr_posterior_mean_per_seed'][0]:.2f} dB")
  for name, u in summary.get("uncertainty", {}).items():
    lines.append(f"uncertainty {name}: mean std {u['mean_std']:.4f}, mean |error| {u['mean_abs_error']:.4f}, "
                 f"Pearson r(std, |error|) {u['pearson_r_with_abs_error']:.2f}")
  if "psnr_y" in summary:
    lines.append("PSNR Y channel (paper protocol): " + ", ".join(f"{k} {v:.2f}" for k, v in summary["psnr_y"].items()))
  if "precision" in metrics:
    lines.append(f"convolutions: {metrics['precision']} arithmetic, {metrics.get('conv_impl')} path "
                 f"({metrics.get('backend')})")
  stopping = summary["stopping"]
  for name, entry in stopping.items():
    if name in ("primary", "psnr_kind"):
      continue
    line = (f"stopping {name}{' (primary)' if name == stopping['primary'] else ''}: detected step "
            f"{entry['detected_step'][0]} ({'fired' if entry['fired'][0] else 'not fired yet'})")
    if "psnr_detected" in entry:
      line += (f"; per-step output PSNR detected {entry['psnr_detected'][0]:.2f} / best {entry['psnr_best'][0]:.2f} "
               f"/ last {entry['psnr_last'][0]:.2f} dB; stopped.png {entry['psnr_stopped_image'][0]:.2f} dB")
    lines.append(line)
  return lines
