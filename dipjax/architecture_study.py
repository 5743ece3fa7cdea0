r"""The architecture study (the paper's Fig. 8): one problem, several networks × seeds, a PSNR table.

Fig. 8 inpaints a large hole in ``library.png`` with hourglasses of depth 6, 4 and 2
(no skip connections), a U-Net and a ResNet (dip_reference.md §2.3), and reads off
"deeper is better", "skip connections are detrimental" (for large holes) and "the
U-Net/ResNet do worse". Here any restoration problem (:func:`dipjax.tasks.make_problem`)
is fitted by each network named in ``nets`` (:data:`dipjax.architectures.NETWORKS`):
each network is one compiled program with its seeds batched (:func:`dipjax.batch.fit_problems`);
networks differ in parameter shapes, so they cannot share one. Each fit uses ``config``'s
settings with the network's learning rate from ``learning_rates`` (the reference runs
the U-Net and ResNet variants at 0.001 and the hourglasses at 0.01:
:data:`PAPER_LEARNING_RATES`).

For each network it reports the PSNR against the ground truth of the final output
(mean ± sd over seeds), of the EMA of the outputs, of the seed ensemble (mean of
the final outputs) and the best PSNR along the run (an oracle, ground truth needed),
with the parameter count and wall time.

Example (``study`` fits; ``experiments/architecture_study.py`` runs it from flags; the
entry point's test runs it on the tiny net)::

  >>> from dipjax import architecture_study
  >>> config = architecture_study.study_config("inpaint", "cpu")  # Fig. 8's settings on a 128² crop
  >>> architecture_study.default_nets("inpaint"), config.steps, config.input_channels
  (('skip_depth6', 'skip_depth4', 'skip_depth2', 'unet_deconv', 'resnet'), 1000, 1)

  then ``rows = architecture_study.study(key, problem, config, architecture_study.FIG8_NETS,
  seeds=2, learning_rates=architecture_study.PAPER_LEARNING_RATES)`` with a ``problem`` from
  :func:`dipjax.tasks.make_problem`, and ``print(architecture_study.markdown(rows))``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import numpy as np

from dipjax import architectures, batch, metrics, models, presets, validation

FIG8_NETS = ("skip_depth6", "skip_depth4", "skip_depth2", "unet_deconv", "resnet")  # the networks of Fig. 8
DENOISE_NETS = ("default", "skip_noskip", "skip_deconv", "unet", "resnet", "deep_decoder")  # a denoising study
PAPER_LEARNING_RATES = {"unet": 1e-3, "unet_deconv": 1e-3, "resnet": 1e-3}  # §2.3: UNET and ResNet use LR 0.001
TASKS = ("inpaint", "denoise")
# (task, study preset) -> (the task preset it starts from, its overrides). Inpainting: the library large-hole
# settings of Fig. 8 (1-channel z, no jitter, 3001 steps) with the centred box hole (1/9 of the area).
STUDY_PRESETS = {
    ("inpaint", "paper"): ("paper_large_hole", {}),
    ("inpaint", "cpu"): ("paper_large_hole", dict(steps=1000, crop=128)),
    ("inpaint", "tiny"): ("tiny", dict(mask_kind="box", input_channels=1, reg_noise_std=0.0, steps=3, crop=32)),
    ("denoise", "paper"): ("paper", {}),
    ("denoise", "cpu"): ("cpu", {}),
    ("denoise", "tiny"): ("tiny", dict(steps=3, crop=32)),
}


def study_config(task: str, name: str, **overrides) -> "presets.TaskPreset":
  """The settings of study preset ``name`` (``paper``, ``cpu``, ``tiny``) for ``task``, with non-None overrides.

  Example:
    >>> c = study_config("inpaint", "cpu")
    >>> c.model, c.steps, c.crop, c.input_channels, c.mask_kind
    ('inpaint_large_hole', 1000, 128, 1, 'box')
  """
  validation.one_of("task", task, TASKS)
  validation.one_of("preset", name, sorted({n for _, n in STUDY_PRESETS}))
  base, fields = STUDY_PRESETS[(task, name)]
  return presets.get(task, base, **{**fields, **{k: v for k, v in overrides.items() if v is not None}})


def default_nets(task: str) -> tuple[str, ...]:
  """The networks a study of ``task`` compares by default: Fig. 8's for inpainting."""
  validation.one_of("task", task, TASKS)
  return FIG8_NETS if task == "inpaint" else DENOISE_NETS


class StudyRow(NamedTuple):
  """One network's fits (S seeds)."""

  name: str  # the network's name (dipjax.architectures.NETWORKS)
  num_params: int  # its parameter count for this problem's channels
  learning_rate: float  # the Adam rate it was fitted with
  psnr: np.ndarray  # (S,) PSNR of the final output against the ground truth (all pixels)
  hole_psnr: Optional[np.ndarray]  # (S,) PSNR over the unknown pixels only (mask == 0); None without a mask
  ema_psnr: np.ndarray  # (S,) PSNR of the EMA of the outputs
  ensemble_psnr: float  # PSNR of the mean of the S final outputs
  best_psnr: np.ndarray  # (S,) best per-step PSNR along the run (oracle)
  best_step: np.ndarray  # (S,) the 1-based step of it
  outputs: np.ndarray  # (S, H, W, C) final outputs
  wall_s: float  # fit time of this network's program, compile included


def network_params(name: str, channels: int, input_channels: int, image_size: tuple[int, int]) -> int:
  """Parameter count of network ``name`` with ``channels`` outputs for an ``image_size`` output."""
  model = architectures.get_network(name, out_channels=channels)
  z_shape = architectures.input_shape(model, *image_size, input_channels)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(z_shape, np.float32))["params"]
  return models.count_params(shapes)


def study(key: jax.Array, problem, config, nets: Sequence[str], *, seeds: int = 1,
          learning_rates: Optional[dict] = None, max_batch: int = 0, chunk=None,
          log: Callable[[str], None] = lambda message: None) -> list[StudyRow]:
  """Fits ``problem`` with each network of ``nets`` (``seeds`` each, same keys for all); one row per network.

  Args:
    key: the fits' key; seed ``s`` of every network uses ``jax.random.split(key, seeds)[s]``.
    problem: a :class:`dipjax.tasks.Problem` with its ground truth ``clean``.
    config: the settings (:func:`dipjax.presets.get`); its ``model`` is replaced by each name.
    nets: network names (:data:`dipjax.architectures.NETWORKS`), distinct.
    seeds: fits per network, batched in its program.
    learning_rates: ``{name: rate}`` overriding ``config.learning_rate`` for those networks
      (e.g. :data:`PAPER_LEARNING_RATES`); default: ``config``'s rate for all.
    max_batch / chunk / log: as :func:`dipjax.batch.fit_problems`.

  Returns:
    A :class:`StudyRow` per network, in the order of ``nets``.
  """
  if problem.clean is None:
    raise ValueError("the architecture study scores against the ground truth; the problem needs `clean`.")
  nets = list(nets)
  if not nets or len(set(nets)) != len(nets):
    raise ValueError(f"`nets` must name distinct networks, got {nets!r}.")
  for name in nets:
    validation.one_of("nets", name, architectures.NETWORKS)
  rates = dict(learning_rates or {})
  rows = []
  for name in nets:
    rate = float(rates.get(name, config.learning_rate))
    net_config = dataclasses.replace(config, model=name, learning_rate=rate).validate()
    log(f"{name}: learning rate {rate:g}, {seeds} seed(s)")
    t0 = time.perf_counter()
    fitted = batch.fit_problems(net_config, [problem], key=key, seeds=seeds, max_batch=max_batch, chunk=chunk,
                                log=log)[0]
    rows.append(_row(name, rate, fitted, problem, net_config, time.perf_counter() - t0))
    log(f"{name}: {describe(rows[-1])}")
  return rows


def hole_psnr(output, clean, mask) -> float:
  """PSNR (data range 1) over the pixels where ``mask == 0`` (the unknown ones), every channel.

  Example:
    >>> clean, mask = np.zeros((4, 4, 3)), np.ones((4, 4, 1))
    >>> mask[1:3, 1:3] = 0
    >>> round(hole_psnr(clean + 0.1 * (1 - mask), clean, mask), 6)  # error 0.1 in the hole only
    20.0
  """
  hole = np.broadcast_to(np.asarray(mask) == 0, np.shape(clean))
  err = (np.asarray(output, np.float64) - np.asarray(clean, np.float64))[hole]
  return float(-10.0 * np.log10(np.mean(err ** 2))) if err.size else float("nan")


def _row(name: str, rate: float, fitted, problem, config, wall_s: float) -> StudyRow:
  clean = np.asarray(problem.clean, np.float32)
  outputs = np.asarray(fitted.outputs[:, 0])
  psnr_of = lambda x: float(metrics.psnr(x, clean))
  hole = None if problem.mask is None else np.array([hole_psnr(x, clean, problem.mask) for x in outputs])
  curve = np.asarray(fitted.curves.psnr_clean[:, 0])
  return StudyRow(
      name=name, learning_rate=rate, outputs=outputs, wall_s=wall_s,
      num_params=network_params(name, clean.shape[-1], config.input_channels, tuple(problem.image_size)),
      psnr=np.array([psnr_of(x) for x in outputs]), hole_psnr=hole, ema_psnr=np.array([psnr_of(x) for x in fitted.emas[:, 0]]),
      ensemble_psnr=psnr_of(outputs.mean(axis=0)), best_psnr=np.nanmax(curve, axis=-1),
      best_step=np.nanargmax(curve, axis=-1) + 1)


def describe(row: StudyRow) -> str:
  """One line: final PSNR mean ± sd (and in the hole), EMA, ensemble, best."""
  hole = "" if row.hole_psnr is None else f" (hole {row.hole_psnr.mean():.2f})"
  return (f"output {row.psnr.mean():.2f} ± {row.psnr.std():.2f} dB{hole}, EMA {row.ema_psnr.mean():.2f}, "
          f"ensemble {row.ensemble_psnr:.2f}, best {row.best_psnr.mean():.2f} (step {int(np.median(row.best_step))}), "
          f"{row.num_params:,} parameters, {row.wall_s:.0f} s")


def markdown(rows: Sequence[StudyRow]) -> str:
  """The study's table: one line per network (a hole column when the problem has a mask)."""
  seeds = len(rows[0].psnr) if rows else 0
  holes = bool(rows) and rows[0].hole_psnr is not None
  head = ["network", "parameters", "lr", "output (mean ± sd)"] + (["in the hole"] if holes else []) + [
      "EMA", f"ensemble of {seeds}", "best (oracle)", "best step", "wall s"]
  lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
  for r in rows:
    cells = [r.name, f"{r.num_params:,}", f"{r.learning_rate:g}", f"{r.psnr.mean():.2f} ± {r.psnr.std():.2f}"]
    cells += [f"{r.hole_psnr.mean():.2f} ± {r.hole_psnr.std():.2f}"] if holes else []
    cells += [f"{r.ema_psnr.mean():.2f}", f"{r.ensemble_psnr:.2f}", f"{r.best_psnr.mean():.2f}",
              f"{int(np.median(r.best_step))}", f"{r.wall_s:.0f}"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
