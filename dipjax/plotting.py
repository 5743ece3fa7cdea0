"""Plots of a run's curves (matplotlib, headless ``Agg`` backend), written atomically."""

from __future__ import annotations

from typing import Optional

import numpy as np


def pyplot():
  """matplotlib's pyplot with the headless ``Agg`` backend (matplotlib is imported only when a plot is drawn)."""
  import matplotlib

  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt

  return plt


def save_figure(fig, path: str) -> None:
  """Lays ``fig`` out, writes it as a PNG atomically and closes it."""
  from dipjax.image_io import atomic_write

  fig.tight_layout()
  try:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
  finally:
    pyplot().close(fig)


def plot_curves(path: str, *, loss: np.ndarray, psnr_target: np.ndarray, psnr_clean: Optional[np.ndarray] = None,
                ema_psnr_clean: Optional[np.ndarray] = None, title: str = "") -> None:
  """Saves a two-panel PNG: loss (log scale when positive) and PSNR against steps, one line per seed.

  With ground truth, the PSNR panel shows PSNR(output, clean) and PSNR(EMA, clean) and
  marks the best step of seed 0 (a dashed line and a dot with its value); without, it
  shows PSNR(A(output), target), the only PSNR a real run can see.

  Args:
    path: output PNG path.
    loss, psnr_target, psnr_clean, ema_psnr_clean: ``(S, T)`` or ``(T,)`` curves.
    title: figure title.
  """
  plt = pyplot()
  as2d = lambda a: None if a is None else np.atleast_2d(np.asarray(a, np.float64))
  loss, psnr_target = as2d(loss), as2d(psnr_target)
  psnr_clean, ema_psnr_clean = as2d(psnr_clean), as2d(ema_psnr_clean)
  has_clean = psnr_clean is not None and np.isfinite(psnr_clean).any()
  steps = np.arange(1, loss.shape[1] + 1)
  fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(10, 3.6))
  alpha = lambda s: 1.0 if s == 0 else 0.35
  for s in range(loss.shape[0]):
    ax_loss.plot(steps, loss[s], color="C0", lw=1, alpha=alpha(s), label="loss" if s == 0 else None)
    if has_clean:
      ax_psnr.plot(steps, psnr_clean[s], color="C1", lw=1, alpha=alpha(s), label="output vs clean" if s == 0 else None)
      if ema_psnr_clean is not None:
        ax_psnr.plot(steps, ema_psnr_clean[s], color="C2", lw=1, alpha=alpha(s),
                     label="EMA vs clean" if s == 0 else None)
    else:
      ax_psnr.plot(steps, psnr_target[s], color="C3", lw=1, alpha=alpha(s),
                   label="A(output) vs input" if s == 0 else None)
  if has_clean:
    finite = np.where(np.isfinite(psnr_clean[0]), psnr_clean[0], -np.inf)
    best = int(np.argmax(finite))
    ax_psnr.axvline(best + 1, color="k", ls="--", lw=0.8)
    ax_psnr.plot([best + 1], [finite[best]], "ko", ms=4)
    right = best + 1 > 0.6 * len(steps)
    ax_psnr.annotate(f"best step {best + 1}: {finite[best]:.2f} dB", (best + 1, finite[best]),
                     textcoords="offset points", xytext=(-5 if right else 5, -14), fontsize=8,
                     ha="right" if right else "left")
  if np.all(np.asarray(loss)[np.isfinite(loss)] > 0):  # a likelihood loss (Poisson NLL) can be negative: linear
    ax_loss.set_yscale("log")
  ax_loss.set_xlabel("step")
  ax_loss.set_ylabel("loss")
  ax_psnr.set_xlabel("step")
  ax_psnr.set_ylabel("PSNR (dB)")
  finite_vals = np.concatenate([a[np.isfinite(a)] for a in (psnr_clean if has_clean else psnr_target,
                                                           ema_psnr_clean if has_clean and ema_psnr_clean is not None
                                                           else np.zeros((1, 0)))])
  if finite_vals.size:
    lo, hi = np.percentile(finite_vals, 2), finite_vals.max()
    ax_psnr.set_ylim(lo - 1.0, hi + 1.0)
  for ax in (ax_loss, ax_psnr):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
  if title:
    fig.suptitle(title, fontsize=10)
  save_figure(fig, path)


def plot_heatmap(path: str, values: np.ndarray, *, x_label: str, x_ticks, y_label: str, y_ticks,
                 title: str = "", unit: str = "dB") -> None:
  """Saves a heat map of ``values`` (``(len(y_ticks), len(x_ticks))``), each cell annotated with its value.

  Args:
    path: output PNG path.
    values: 2-D array; NaN cells are left blank.
    x_label, x_ticks, y_label, y_ticks: axis names and the values along them.
    title: figure title.
    unit: shown on the colour bar.
  """
  plt = pyplot()
  values = np.atleast_2d(np.asarray(values, np.float64))
  fig, ax = plt.subplots(figsize=(max(5.5, 1.6 + 1.1 * values.shape[1]), max(2.8, 1.4 + 0.7 * values.shape[0])))
  im = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower")
  fig.colorbar(im, ax=ax, label=unit)
  finite = values[np.isfinite(values)]
  mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
  for (r, c), v in np.ndenumerate(values):
    if np.isfinite(v):
      ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color="k" if v > mid else "w")
  ax.set_xticks(range(values.shape[1]), [f"{t:g}" if isinstance(t, (int, float)) else str(t) for t in x_ticks])
  ax.set_yticks(range(values.shape[0]), [f"{t:g}" if isinstance(t, (int, float)) else str(t) for t in y_ticks])
  ax.set_xlabel(x_label)
  ax.set_ylabel(y_label)
  if title:
    ax.set_title(title, fontsize=9)
  save_figure(fig, path)


def plot_loss_curves(path: str, curves: dict, *, title: str = "", thresholds=()) -> None:
  """Saves one panel of several runs' loss against steps, both axes logarithmic (the paper's Fig. 2).

  Each entry is drawn as its mean over seeds with the seeds' min–max as a band;
  ``thresholds`` are drawn as dotted horizontal lines.

  Args:
    path: output PNG path.
    curves: ``{label: (S, T) or (T,)}`` positive losses.
    title: figure title.
    thresholds: loss levels to mark.
  """
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for i, (label, curve) in enumerate(curves.items()):
    curve = np.atleast_2d(np.asarray(curve, np.float64))
    steps = np.arange(1, curve.shape[1] + 1)
    ax.plot(steps, curve.mean(axis=0), color=f"C{i}", lw=1.4, label=label)
    if curve.shape[0] > 1:
      ax.fill_between(steps, curve.min(axis=0), curve.max(axis=0), color=f"C{i}", alpha=0.2, lw=0)
  for t in thresholds:
    ax.axhline(t, color="0.5", lw=0.8, ls=":")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("MSE")
  ax.legend(fontsize=8, loc="lower left")
  if title:
    ax.set_title(title, fontsize=9)
  save_figure(fig, path)


def plot_step_curves(path: str, curves: dict, *, y_label: str, title: str = "", log_y: bool = False) -> None:
  """Saves one panel of per-step curves ``{label: (T,)}`` against the step (1-based), optionally log y.

  Args:
    path: output PNG path.
    curves: ``{label: (T,) values}``.
    y_label: the y axis label.
    title: figure title.
    log_y: logarithmic y axis (ignored unless every value is positive).
  """
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  for label, curve in curves.items():
    ax.plot(np.arange(1, len(curve) + 1), curve, lw=1.3, label=label)
  if log_y and all(np.all(np.asarray(c) > 0) for c in curves.values()):
    ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel(y_label)
  ax.legend(fontsize=8)
  if title:
    ax.set_title(title, fontsize=9)
  save_figure(fig, path)
