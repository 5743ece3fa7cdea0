"""The groups of absl flags the entry points share, defined only by the scripts that call them.

Importing this module defines no flag: each script calls the ``define_*`` functions
of the groups it reads, so a script accepts exactly the flags it uses (absl rejects
any other). :func:`check` validates every numeric flag a script defined, with the
library's rules (:mod:`dipjax.validation`) and a one-line error naming the flag.
Readers turn the flags into library values (:func:`preset`, :func:`stop_options`).
"""

from __future__ import annotations

import os

from absl import flags

import jax

from dipjax import architectures, conv as conv_lib, features, image_io, preimage, presets as presets_lib
from dipjax import restoration as restore_lib, stopping, validation

FLAGS = flags.FLAGS


def define_images(*, mask: bool = False, flash: bool = False, observed: str = "the corrupted image") -> None:
  """--image, --clean, --crop (and --mask, --flash where the task takes them)."""
  flags.DEFINE_string("image", None, f"{observed[0].upper() + observed[1:]} to restore. Without it the corruption is "
                      "synthesised from --clean, or from an image bundled with scikit-image.")
  flags.DEFINE_string("clean", None, "Ground truth, for evaluation (and to synthesise the input when --image is "
                      "absent).")
  flags.DEFINE_integer("crop", None, "Centre-crop the images to this size (of the restored image) first; default: "
                       "the preset's crop for the bundled image, none for your own images.")
  _rules(crop=_non_negative)
  if mask:
    flags.DEFINE_string("mask", None, "Mask image (white = known pixel, black = hole).")
  if flash:
    flags.DEFINE_string("flash", None, "The flash image (the network input).")


def define_fit(*, seeds_default: int = 1) -> None:
  """--preset, --net, --steps, --lr, --reg_noise_std, --tv_weight, --precision, --conv_impl, --seeds, --seed, --out_dir."""
  flags.DEFINE_string("preset", None, "Task preset (dipjax.presets); default: the first paper preset on a GPU/TPU, "
                      "'cpu' otherwise.")
  flags.DEFINE_enum("net", None, list(architectures.NETWORKS), "Override the preset's network (a dipjax.models "
                    "preset or a dipjax.architectures entry: unet, resnet, deep_decoder, skip_depth6, ...).")
  flags.DEFINE_integer("steps", None, "Override the preset's number of Adam steps.")
  flags.DEFINE_float("lr", None, "Override the preset's learning rate.")
  flags.DEFINE_float("reg_noise_std", None, "Override the preset's input perturbation σ_p.")
  flags.DEFINE_float("tv_weight", None, "Add λ TV(x) of the network output to the loss (DIP-TV; the reference's "
                     "tv_loss, a sum over pixels: try 1e-7 to 1e-5; default: the preset's, 0).")
  flags.DEFINE_enum("precision", None, list(conv_lib.PRECISIONS), "Convolution arithmetic: float32 (XLA's default "
                    "matmul precision: exact on CPU, TF32 on NVIDIA Ampere/Hopper), float32_highest (full float32 "
                    "everywhere), or bfloat16 operands with float32 accumulation (parameters, optimiser, loss and "
                    "outputs stay float32). Default: the preset's.")
  flags.DEFINE_enum("conv_impl", None, list(conv_lib.CONV_IMPLS), "Convolution implementation: matmul (im2col + "
                    "GEMM), rows (row-im2col), xla (lax.conv_general_dilated) or auto (by backend; default: the "
                    "preset's, auto).")
  flags.DEFINE_integer("seeds", seeds_default, "Number of seeds fitted in one program; > 1 adds their ensemble.")
  flags.DEFINE_integer("seed", 0, "Base random seed (synthetic corruption and fits).")
  flags.DEFINE_string("out_dir", None, "Output folder.")
  _rules(steps=_positive, lr=_finite(minimum=0.0, inclusive=False), reg_noise_std=_finite(minimum=0.0),
         tv_weight=_finite(minimum=0.0), seeds=_positive, seed=_non_negative)


def define_run() -> None:
  """The options of a single long run: chunks, snapshots, baselines, stopping, checkpoints, tiles, divergence."""
  flags.DEFINE_integer("chunk", 0, "Steps per compiled chunk, with a progress line after each (0: about every 20 s, "
                       "from the measured speed; the result does not depend on it).")
  flags.DEFINE_integer("save_every", 0, "Also save the output every this many steps into out_dir/steps (0: never).")
  flags.DEFINE_bool("baselines", False, "Also run the classical baselines (scikit-image; CBM3D with pip install "
                    "bm3d) and report them.")
  flags.DEFINE_enum("stop_criterion", "emv", sorted(stopping.CRITERIA), "Early-stopping criterion (no ground truth "
                    "needed) whose detected output is saved as stopped.png; all available criteria are reported.")
  define_stopping()
  flags.DEFINE_bool("early_stop", False, "End the run once the criterion has fired for every seed (the output at "
                    "the detected step is kept either way).")
  flags.DEFINE_integer("checkpoint_every", 0, "Write out_dir/checkpoint.msgpack (the full run state) at the first "
                       "chunk boundary at or after every this many steps (0: never).")
  flags.DEFINE_bool("resume", False, "Continue from out_dir/checkpoint.msgpack (same flags and inputs): the result "
                    "is bit-identical to a run that was never interrupted.")
  flags.DEFINE_integer("tile", 0, "Fit the image in overlapping tiles of this size (all in one batched program) and "
                       "blend them; for images too large to fit at once. 0: no tiling.")
  flags.DEFINE_integer("tile_overlap", 32, "Overlap of neighbouring tiles in pixels (blended with linear ramps).")
  flags.DEFINE_integer("max_nonfinite", 50, "End the run when this many steps in a row were non-finite (diverged).")
  flags.DEFINE_float("progress_every", 0.0, "At most one progress line per this many seconds (0: every chunk).")
  _rules(chunk=_non_negative, save_every=_non_negative, checkpoint_every=_non_negative, tile=_non_negative,
         tile_overlap=_non_negative, max_nonfinite=_positive, progress_every=_finite(minimum=0.0))


def define_stopping() -> None:
  """--stop_patience, --stop_window."""
  flags.DEFINE_integer("stop_patience", 200, "Steps without a new minimum of the criterion's score before it fires.")
  flags.DEFINE_integer("stop_window", 100, "Window of the ES-WMV criterion (outputs kept in the carry).")
  _rules(stop_patience=_non_negative, stop_window=_positive)


def define_benchmark(*, data_help: str) -> None:
  """--data_dir, --images, --scale, --max_batch, --chunk, --baselines: the reproductions of the paper's tables."""
  flags.DEFINE_string("data_dir", os.path.join("..", "shared", "data", "benchmarks"), data_help)
  flags.DEFINE_list("images", [], "Subset of image names (default: every image of the set).")
  flags.DEFINE_integer("scale", 0, "Fit centre N x N crops of the images (of the restored image) so the run finishes "
                       "on a CPU; the published images are scored on the same crop. 0: full size (the paper's "
                       "protocol).")
  _rules(scale=_non_negative)
  define_batching()
  flags.DEFINE_bool("baselines", False, "Also run and score our classical baselines (scikit-image; CBM3D with pip "
                    "install bm3d).")


def define_batching() -> None:
  """--max_batch and --chunk of batched grids."""
  flags.DEFINE_integer("max_batch", 0, "At most this many fits per compiled call (0: chosen from the device's free "
                       "memory and the estimated memory per fit).")
  flags.DEFINE_integer("chunk", 0, "Steps per compiled chunk, with a progress line after each (0: about every 20 s, "
                       "from the measured speed).")
  _rules(max_batch=_non_negative, chunk=_non_negative)


def define_preimage(*, size_help: str) -> None:
  """The pre-image studies' flags: --weights, --arch, --prior, --preset, --steps, --lr, --tv_weight, --size, --seed,
  --out_dir."""
  flags.DEFINE_string("weights", None, "Converted classifier weights (.npz, or .pth with PyTorch installed); see "
                      "experiments/convert_weights.py. Without it: RANDOM weights.")
  flags.DEFINE_enum("arch", "alexnet", sorted(features.FEATURE_NETS), "Classifier architecture.")
  flags.DEFINE_enum("prior", "both", ["dip", "tv", "both"], "Deep image prior, TV-regularised pixels, or both.")
  flags.DEFINE_enum("preset", "cpu", list(preimage.PRESETS), "paper: the reference's settings (GPU); cpu: a few "
                    "minutes on 2 cores; tiny: tests.")
  flags.DEFINE_integer("steps", None, "Override the preset's number of Adam steps.")
  flags.DEFINE_float("lr", None, "Override the preset's learning rate.")
  flags.DEFINE_float("tv_weight", None, "Override the TV prior's weight λ (on a [0, 1] image, beta 2).")
  flags.DEFINE_integer("size", None, size_help)
  flags.DEFINE_string("out_dir", None, "Output folder.")
  flags.DEFINE_integer("seed", 0, "Random seed (network, input noise, random classifier weights).")
  _rules(steps=_positive, size=_positive, lr=_finite(minimum=0.0, inclusive=False), tv_weight=_finite(minimum=0.0),
         seed=_non_negative, weights=preimage.check_weights_file)


def preimage_options() -> dict:
  """The pre-image flags as :func:`dipjax.preimage.prepare_study` arguments."""
  return dict(priors=("dip", "tv") if FLAGS.prior == "both" else (FLAGS.prior,), arch=FLAGS.arch,
              weights=FLAGS.weights, size=FLAGS.size, learning_rate=FLAGS.lr, tv_weight=FLAGS.tv_weight,
              num_steps=FLAGS.steps)


_positive = validation.positive_int
_non_negative = validation.non_negative_int
RULES: dict = {}  # flag name -> rule(name, value), registered by the define_* functions a script calls


def _rules(**rules) -> None:
  RULES.update(rules)


def _finite(**bounds):
  return lambda name, value: validation.finite(name, value, **bounds)


def check() -> None:
  """Validates every numeric flag this script defined (a one-line ``ValueError`` naming ``--flag``)."""
  for name, rule in RULES.items():
    if name in FLAGS and FLAGS[name].value is not None:
      rule(f"--{name}", FLAGS[name].value)


def define_corruption(name: str) -> None:
  """One synthetic-corruption flag: --sigma, --jpeg_quality, --factor, --kernel or --keep_fraction."""
  if name == "sigma":
    flags.DEFINE_float("sigma", None, "Std of the synthetic Gaussian noise, 0-255 scale (default: the preset's).")
    _rules(sigma=_finite(minimum=0.0))
  elif name == "jpeg_quality":
    flags.DEFINE_integer("jpeg_quality", None, "JPEG quality of the synthetic input, 1-95 (default: the preset's).")
    _rules(jpeg_quality=_finite(minimum=1, maximum=95))
  elif name == "factor":
    flags.DEFINE_integer("factor", None, f"Scale factor, one of {presets_lib.SR_FACTORS} (the paper uses 4 and 8).")
    _rules(factor=lambda n, v: validation.one_of(n, v, presets_lib.SR_FACTORS))
  elif name == "kernel":
    flags.DEFINE_string("kernel", None, "Downsampler in the loss: lanczos2 (the paper's), lanczos3, box or gauss.")
  elif name == "keep_fraction":
    flags.DEFINE_float("keep_fraction", None, "Fraction of known pixels of the synthetic Bernoulli mask, in (0, 1].")
    _rules(keep_fraction=_finite(minimum=0.0, inclusive=False, maximum=1.0))
  else:
    raise ValueError(f"unknown corruption flag {name!r}.")


def define_noise() -> None:
  """--noise, --peak, --impulse_fraction, --speckle_sigma, --loss: the noise model and the data term."""
  flags.DEFINE_enum("noise", None, list(presets_lib.NOISE_MODELS), "Synthetic noise model (default: the preset's, "
                    "gaussian): gaussian uses --sigma, poisson --peak, impulse --impulse_fraction, speckle "
                    "--speckle_sigma.")
  flags.DEFINE_float("peak", None, "Poisson noise: photon count of a white pixel (also the poisson_nll loss's).")
  flags.DEFINE_float("impulse_fraction", None, "Impulse (salt-and-pepper) noise: fraction of replaced values.")
  flags.DEFINE_float("speckle_sigma", None, "Speckle noise: std of the multiplicative factor (0-1 scale).")
  flags.DEFINE_enum("loss", None, list(presets_lib.LOSSES), "Data term (default: the preset's, mse); l1 for impulse "
                    "noise, poisson_nll (needs --peak) for shot noise.")
  _rules(peak=_finite(minimum=0.0, inclusive=False), impulse_fraction=_finite(minimum=0.0, maximum=1.0),
         speckle_sigma=_finite(minimum=0.0))


def noise_overrides() -> dict:
  """The preset fields of the noise flags (None: the preset's)."""
  return {name: FLAGS[name].value for name in ("noise", "peak", "impulse_fraction", "speckle_sigma", "loss")}


def define_sgld() -> None:
  """--sgld_noise, --weight_decay, --burn_in, --sample_every: SGLD posterior sampling (Bayesian DIP)."""
  flags.DEFINE_float("sgld_noise", None, "Langevin noise scale s on the conv weights (std s*lr; 0: none; the sgld "
                     "presets use 2). Needs --sample_every.")
  flags.DEFINE_float("weight_decay", None, "Weight decay added to the gradient before Adam (SGLD presets: 5e-8).")
  flags.DEFINE_integer("burn_in", None, "Posterior: steps before the first sample (default: the preset's).")
  flags.DEFINE_integer("sample_every", None, "Posterior: a sample every this many steps after burn-in; its mean "
                       "and per-pixel std are saved (0: no posterior; default: the preset's).")
  _rules(sgld_noise=_finite(minimum=0.0), weight_decay=_finite(minimum=0.0), burn_in=_non_negative,
         sample_every=_non_negative)


def sgld_overrides() -> dict:
  """The preset fields of the SGLD flags (None: the preset's)."""
  return {name: FLAGS[name].value for name in ("sgld_noise", "weight_decay", "burn_in", "sample_every")}


def define_blur() -> None:
  """--blur, --blur_sigma, --motion_length, --motion_angle, --boundary, --kernel_file: the deblurring kernel."""
  flags.DEFINE_enum("blur", None, list(presets_lib.BLURS), "Synthetic blur kernel (default: the preset's).")
  flags.DEFINE_float("blur_sigma", None, "Gaussian blur: std in pixels.")
  flags.DEFINE_float("motion_length", None, "Motion blur: length in pixels.")
  flags.DEFINE_float("motion_angle", None, "Motion blur: angle in degrees (0: horizontal).")
  flags.DEFINE_enum("boundary", None, ["circular", "valid"], "Blur model at the border: circular (periodic image, "
                    "same size) or valid (no assumption; the observation is smaller by the kernel size - 1).")
  flags.DEFINE_string("kernel_file", None, "The known blur kernel as a .npy file or a grey image (normalised to "
                      "sum 1); overrides --blur.")
  _rules(blur_sigma=_finite(minimum=0.0, inclusive=False), motion_length=_finite(minimum=0.0, inclusive=False),
         motion_angle=_finite())


def blur_overrides() -> dict:
  """The preset fields of the blur flags (None: the preset's)."""
  return {name: FLAGS[name].value for name in ("blur", "blur_sigma", "motion_length", "motion_angle", "boundary")}


def preset(task: str, default: str | None = None, **overrides) -> tuple[str, presets_lib.TaskPreset]:
  """``--preset`` (default ``default``, or the backend's) with the fit flags and ``overrides`` applied."""
  name = FLAGS.preset or default or presets_lib.default_name(task, jax.default_backend())
  fields = dict(model=FLAGS.net, steps=FLAGS.steps, learning_rate=FLAGS.lr, reg_noise_std=FLAGS.reg_noise_std,
                tv_weight=FLAGS.tv_weight, precision=FLAGS.precision, conv_impl=FLAGS.conv_impl, **overrides)
  return name, presets_lib.get(task, name, **fields)


def stop_options() -> restore_lib.StopOptions:
  """The :class:`dipjax.StopOptions` of --stop_criterion, --stop_patience, --stop_window, --early_stop, --max_nonfinite."""
  get = lambda name, default: FLAGS[name].value if name in FLAGS else default
  return restore_lib.StopOptions(criterion=get("stop_criterion", "emv"), patience=FLAGS.stop_patience,
                                 window=FLAGS.stop_window, early_stop=get("early_stop", False),
                                 max_nonfinite=get("max_nonfinite", 50))


def out_dir(default: str) -> str:
  """``--out_dir`` (or ``default``), created and checked writable before any work."""
  path = FLAGS.out_dir or default
  image_io.ensure_writable(path)
  return path
