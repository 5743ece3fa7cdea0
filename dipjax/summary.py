r"""Summaries of a restoration that compare like with like.

Two kinds of image are scored, and every number says which:

* the **per-step output** ``x_t = f_θ(z + σ_p ε_t)`` — what the loss and the curves
  (``StepMetrics.psnr_clean``) see at every step, and what the stopping criteria read;
* the **saved images** — ``f_θ(z)`` after the last step, its moving average (EMA),
  the ensembles, and the stopped output.

:func:`stopping_summary` computes a criterion's ``psnr_best``, ``psnr_detected`` and
``psnr_last`` all from the per-step curve, so ``best >= detected`` and
``best >= last`` always hold; with tiles each tile's squared error is taken at its
own step and the tiles are combined as the mean squared error, so the same holds
per seed. The PSNR of the saved stopped image is reported beside it
(``psnr_stopped_image``), labelled as such.

Example:
  >>> import numpy as np
  >>> round(float(psnr_of_mse(mse_of_psnr(np.array([20.0, 30.0])).mean())), 4)
  22.5964
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from dipjax import fit as fit_lib
from dipjax import metrics as metrics_lib

PER_STEP = "per-step output x_t = f(z + σ_p ε_t)"
SAVED = "saved image f(z) (or its average)"


def mse_of_psnr(psnr) -> np.ndarray:
  """``10^(−PSNR/10)``: the mean squared error (peak 1) of a PSNR."""
  return 10.0 ** (-np.asarray(psnr) / 10.0)


def psnr_of_mse(mse) -> np.ndarray:
  """``−10 log10(MSE)``."""
  with np.errstate(divide="ignore"):
    return -10.0 * np.log10(np.asarray(mse))


def curves_per_seed(curves: Optional[fit_lib.StepMetrics], *, tiles: int, seeds: int):
  """Curves of ``tiles x seeds`` fits ``(B, T)`` -> per seed ``(S, T)``: losses averaged, PSNRs from the MSE over tiles."""
  if curves is None or tiles == 1:
    return curves

  def reduce(name, a):
    a = np.asarray(a).reshape((tiles, seeds) + np.shape(a)[1:])
    if a.dtype == bool:
      return a.any(axis=0)
    if name.startswith("psnr") or name.startswith("ema_psnr"):
      return psnr_of_mse(np.mean(mse_of_psnr(a), axis=0))
    return a.mean(axis=0)

  return type(curves)(**{k: reduce(k, v) for k, v in curves._asdict().items()})


def _per_seed_psnr(mse_per_fit: np.ndarray, tiles: int, seeds: int) -> list:
  """``(B,)`` squared errors of tile-major fits -> per-seed PSNR (MSE averaged over the tiles)."""
  return [float(x) for x in psnr_of_mse(np.asarray(mse_per_fit).reshape(tiles, seeds).mean(axis=0))]


def stopping_summary(criteria: Sequence, stop_states: Sequence, curves, *, primary: int,
                     detected_images: Sequence[np.ndarray], clean: Optional[np.ndarray], tiles: int = 1,
                     seeds: int = 1) -> dict:
  """Per criterion: detected step and firing per fit; with ``clean`` the PSNRs per seed.

  ``psnr_best``/``psnr_detected``/``psnr_last`` score the per-step output on its curve
  (the best step, the detected step — the last where nothing was detected — and the
  last finite step, i.e. the last good one of a diverged run); ``psnr_stopped_image``
  scores the saved stopped image.

  Args:
    criteria: the stopping criteria, in the order of ``stop_states``.
    stop_states: each a :class:`dipjax.stopping.StopState` with leading axis ``B = tiles x seeds`` (tile-major).
    curves: :class:`StepMetrics` ``(B, T)``.
    primary: index of the criterion that gives the stopped image.
    detected_images: per criterion ``(S, H, W, C)`` saved stopped images.
    clean: ``(H, W, C)`` ground truth or None.

  Returns:
    ``{'primary': name, 'psnr_kind': ..., name: {...}, ...}``.
  """
  out = {"primary": criteria[primary].name, "psnr_kind": {"psnr_best/psnr_detected/psnr_last": PER_STEP,
                                                          "psnr_stopped_image": SAVED}}
  curve_mse = None if clean is None or curves is None else mse_of_psnr(curves.psnr_clean)  # (B, T)
  for criterion, st, images in zip(criteria, stop_states, detected_images):
    steps = np.asarray(st.best_step)
    entry = dict(detected_step=steps.tolist(), fired=np.asarray(st.stopped).tolist(),
                 fired_at=np.asarray(st.stopped_at).tolist(), patience=criterion.patience)
    if curve_mse is not None:
      last_index = last_finite_index(curve_mse)
      last = curve_mse[np.arange(len(last_index)), last_index]
      at = np.where(steps > 0, np.clip(steps, 1, curve_mse.shape[1]) - 1, last_index)
      detected = curve_mse[np.arange(len(at)), at]
      entry["psnr_best"] = _per_seed_psnr(np.nanmin(curve_mse, axis=1), tiles, seeds)
      entry["psnr_detected"] = _per_seed_psnr(detected, tiles, seeds)
      entry["psnr_last"] = _per_seed_psnr(last, tiles, seeds)
      entry["gap_to_best"] = [b - d for b, d in zip(entry["psnr_best"], entry["psnr_detected"])]
      entry["psnr_stopped_image"] = [image_psnr(im, clean) for im in images]
    out[criterion.name] = entry
  return out


def last_finite_index(curves: np.ndarray) -> np.ndarray:
  """Per row of ``(B, T)`` curves, the index of the last finite value (the last good step; 0 if none)."""
  finite = np.isfinite(np.asarray(curves))
  return np.where(finite.any(axis=1), finite.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1), 0)


def image_psnr(image, clean) -> float:
  """PSNR (peak 1) of a host image against the ground truth."""
  return float(metrics_lib.psnr(np.asarray(image, np.float32), np.asarray(clean, np.float32)))


def best_steps(curves) -> dict:
  """Per seed: the best step of the per-step output's PSNR curve, its PSNR and the last step's (same kind)."""
  curve = np.asarray(curves.psnr_clean)
  last = last_finite_index(curve)
  return dict(best_step_per_seed=[int(np.nanargmax(c)) + 1 for c in curve],
              best_psnr_per_seed=[float(np.nanmax(c)) for c in curve],
              last_psnr_per_seed=[float(c[i]) for c, i in zip(curve, last)], psnr_kind=PER_STEP)
