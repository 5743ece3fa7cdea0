r"""Natural pre-images: optimise an image to match or maximise a classifier's activations (the paper's Fig. 9).

Two objectives on a classifier ``Φ`` of :mod:`dipjax.features` (AlexNet / VGG, Caffe
input), read at layer ``l`` of one image ``x`` in ``[0, 1]``:

* **feature inversion** (``mode='invert'``, ``feature_inversion.ipynb``): the image whose
  features equal those of a given picture ``x0``,
  ``E(x) = mean((Φ_l(x) − Φ_l(x0))²)``;
* **activation maximisation** (``activation_maximization.ipynb``): ``mode='maximize'``,
  ``E(x) = −s Σ_{window} Φ_l(x)[.., c]`` (channel ``c`` summed over the central
  ``2w x 2w`` window of a conv map, or logit ``c`` of an fc layer), or
  ``mode='match'``, ``E(x) = s Σ |t − Φ_l(x)[.., c]|`` (the reference's fc8 "class"
  run: ``t = 300``, ``s = 5``);

under one of two priors:

* ``'dip'``: ``x = crop(f_θ(z))``, the Deep Image Prior: a randomly initialised
  hourglass net (``skip_feature_inversion`` / ``skip_activation_max``) on fixed noise,
  its output cropped to the classifier's input at the **top-left** corner as the
  reference does (``out[:, :, :224, :224]`` of a 256-pixel output), Adam on ``θ``;
* ``'tv'``: the pixels themselves (``x = crop(z)``, ``z`` optimised, initialised to
  ``0.5 + U(0, 0.1)``) plus ``λ TV_β(x)`` (:func:`dipjax.regularizers.tv_loss`), the
  reference's commented-out "TV only" variant.

Both run through :func:`dipjax.make_fit_loop` (a custom loss; the pixel prior is the
parameter-free :class:`dipjax.architectures.Pixels` net with ``optimize_input=True``), in jit-compiled
chunks. The classifier's parameters and the feature target are *arguments* of the
compiled program, not constants baked into it.

Example:
  >>> import jax
  >>> from dipjax import features, preimage
  >>> net = features.VGG(depth=16)
  >>> image = jax.random.uniform(jax.random.key(0), (32, 32, 3))
  >>> params = net.init(jax.random.key(1), features.caffe_preprocess(image), layer="conv1_1")["params"]
  >>> objective = preimage.Objective(net, "conv1_1", mode="invert")
  >>> prior = preimage.Prior("tv", size=32, net_size=32, learning_rate=0.01)
  >>> result = preimage.optimize(jax.random.key(2), objective, preimage.objective_data(objective, params, image),
  ...                            prior, num_steps=3)
  >>> result.image.shape, result.loss.shape
  ((32, 32, 3), (3,))
"""

from __future__ import annotations

import functools
import os
import time
from typing import Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dipjax import architectures, features, operators, validation
from dipjax import fit as fit_lib

MODES = ("invert", "maximize", "match")
PRIORS = ("dip", "tv")
PRESETS = ("paper", "cpu", "tiny")
# The reference's "TV only" weight, 1e-6 on the 0..255 (Caffe) scale with beta = 2, in units of a [0, 1] image:
# TV_2(255 x) = 255**4 TV_2(x).
REFERENCE_TV_WEIGHT = 1e-6 * 255.0 ** 4


class Objective(NamedTuple):
  """What the image is optimised for (static and hashable: the compiled program is keyed on it).

  ``scale`` multiplies the whole objective (the reference's ``* 5`` of activation
  maximisation; 1 for inversion). ``window`` is the half-width ``w`` of the central
  region of a conv map (rows ``max(H//2 − w, 0) .. H//2 + w``); ``target_value`` is
  ``t`` of ``mode='match'``.
  """

  classifier: nn.Module  # features.AlexNet / features.VGG
  layer: str
  mode: str = "invert"  # 'invert' | 'maximize' | 'match'
  channel: int = 0  # the channel (conv) or unit (fc) of 'maximize' / 'match'
  window: int = 20
  scale: float = 1.0
  target_value: float = 300.0


class Prior(NamedTuple):
  """How the image is parametrised and optimised (static and hashable).

  ``size``: the classifier's input side (the crop); ``net_size``: the side of the
  network output / pixel canvas it is cropped from (top-left). ``net`` is the DIP
  hourglass (ignored by ``'tv'``).
  """

  kind: str  # 'dip' | 'tv'
  size: int
  net_size: int
  learning_rate: float
  net: Optional[nn.Module] = None
  input_channels: int = 32
  reg_noise_std: float = 0.0
  tv_weight: float = 0.0
  tv_beta: float = 2.0


class Setup(NamedTuple):
  """A preset's choices for one task (:func:`setup`)."""

  objective_defaults: dict  # layer / channel / window / scale / target_value
  prior: Prior
  num_steps: int
  classifier_overrides: dict  # fields of the random classifier (the tiny preset's small fc head)


class Classifier(NamedTuple):
  """A classifier ready for an objective (:func:`classifier`)."""

  module: nn.Module  # features.AlexNet / features.VGG
  params: dict  # its parameters
  label: str  # the weights file's name, or "RANDOM weights"
  random_weights: bool  # True: drawn at random, the pictures are not the paper's


class PreimageResult(NamedTuple):
  """What :func:`optimize` returns (T steps)."""

  image: np.ndarray  # (size, size, 3) the optimised image: the crop of f_θ(z) (or of the pixels)
  loss: np.ndarray  # (T,) the per-step loss (objective + λ TV; for 'dip' with reg noise, of the perturbed input)
  initial_objective: float  # objective of the image before the first step
  final_objective: float  # objective of `image`
  wall_s: float  # compile included
  state: fit_lib.FitState  # the final carry


def check_objective(objective: Objective) -> Objective:
  """Validates an :class:`Objective` (one-line ``ValueError`` naming the field)."""
  if not isinstance(objective.classifier, (features.AlexNet, features.VGG)):
    raise ValueError(f"`classifier` must be a dipjax.features AlexNet or VGG, got {objective.classifier!r}.")
  if objective.layer not in objective.classifier.layer_names:
    raise ValueError(f"`layer` must be one of {list(objective.classifier.layer_names)}, got {objective.layer!r}.")
  validation.one_of("mode", objective.mode, MODES)
  validation.non_negative_int("channel", objective.channel)
  validation.positive_int("window", objective.window)
  validation.finite("scale", objective.scale, minimum=0.0, inclusive=False)
  validation.finite("target_value", objective.target_value)
  return objective


def window_bounds(side: int, window: int) -> tuple[int, int]:
  """Rows (or columns) ``[max(side//2 − window, 0), min(side//2 + window, side))`` of the central window.

  The reference slices ``[side//2 − w : side//2 + w]``, which for ``w > side//2`` starts at a
  *negative* index (Python wraps it; AlexNet's 13x13 conv4 with ``w = 20`` happens to give
  the whole map). Here the start is clipped at 0, so a large window is the whole map.

  Example:
    >>> window_bounds(13, 20), window_bounds(13, 2)
    ((0, 13), (4, 8))
  """
  return max(side // 2 - window, 0), min(side // 2 + window, side)


def selected_activation(objective: Objective, activation: jax.Array) -> jax.Array:
  """The values of ``objective.channel`` the objective reads: the central window of a conv map, or one fc unit.

  Args:
    objective: an :class:`Objective`.
    activation: ``(H, W, C)`` (conv / pool / relu layers) or ``(F,)`` (from ``torch_view`` on).

  Returns:
    ``(h, w)`` window of channel ``c``, or a scalar.
  """
  c = objective.channel
  width = activation.shape[-1]
  if c >= width:
    raise ValueError(f"`channel` {c} is out of range: layer {objective.layer!r} has {width} channels/units.")
  if activation.ndim == 1:
    return activation[c]
  (r0, r1), (c0, c1) = (window_bounds(n, objective.window) for n in activation.shape[:2])
  return activation[r0:r1, c0:c1, c]


def objective_value(objective: Objective, data: dict, image: jax.Array) -> jax.Array:
  r"""``E(x)`` of the module docstring for one ``(H, W, 3)`` image in ``[0, 1]``.

  .. math::
     E_{invert} = s\,\mathrm{mean}((Φ_l(x) − Φ_l(x_0))^2), \quad
     E_{maximize} = −s \sum_{win} Φ_l(x)_c, \quad E_{match} = s \sum_{win} |t − Φ_l(x)_c|

  Args:
    objective: an :class:`Objective`.
    data: :func:`objective_data`: ``{'params': classifier params[, 'target': Φ_l(x0)]}``.
    image: ``(size, size, 3)`` RGB.

  Returns:
    scalar.
  """
  act = features.activation_at(objective.classifier, data["params"], image, objective.layer)
  if objective.mode == "invert":
    return objective.scale * jnp.mean(jnp.square(act - data["target"]))
  selected = selected_activation(objective, act)
  if objective.mode == "maximize":
    return -objective.scale * jnp.sum(selected)
  return objective.scale * jnp.sum(jnp.abs(objective.target_value - selected))


def objective_data(objective: Objective, params, image=None) -> dict:
  """The arrays the objective reads: the classifier's ``params``, and ``Φ_l(x0)`` for inversion (computed once).

  Args:
    objective: an :class:`Objective`.
    params: the classifier's ``params`` (:func:`dipjax.features.load_weights` or ``init``).
    image: ``(size, size, 3)`` picture ``x0`` to invert (``mode='invert'`` only).

  Returns:
    ``{'params': params[, 'target': (H_l, W_l, C_l) or (F,)]}``.
  """
  check_objective(objective)
  if objective.mode != "invert":
    return {"params": params}
  if image is None:
    raise ValueError("`image` is needed for mode='invert' (the picture whose features are inverted).")
  fit_lib.check_image("image", image)
  target = jax.jit(features.activation_at, static_argnums=(0, 3))(
      objective.classifier, params, jnp.asarray(image, jnp.float32), objective.layer)
  return {"params": params, "target": target}


class ObjectiveLoss(NamedTuple):
  """The fit loop's ``loss(prediction, target)``: the objective of the cropped output (``target`` unused).

  It holds arrays, so it is unhashable on purpose: :func:`dipjax.make_fit_loop` then
  builds a loop of its own instead of caching one per (traced) closure.
  """

  objective: Objective
  data: dict

  def __call__(self, prediction: jax.Array, target: jax.Array) -> jax.Array:
    del target
    return objective_value(self.objective, self.data, prediction)


def check_prior(prior: Prior) -> Prior:
  """Validates a :class:`Prior` (one-line ``ValueError`` naming the field)."""
  validation.one_of("kind", prior.kind, PRIORS)
  validation.positive_int("size", prior.size)
  validation.positive_int("net_size", prior.net_size)
  if prior.net_size < prior.size:
    raise ValueError(f"`net_size` ({prior.net_size}) must be >= `size` ({prior.size}): the image is its crop.")
  if prior.kind == "dip" and not isinstance(prior.net, nn.Module):
    raise ValueError(f"the 'dip' prior needs `net`, a flax.linen Module, got {prior.net!r}.")
  validation.finite("learning_rate", prior.learning_rate, minimum=0.0, inclusive=False)
  validation.finite("reg_noise_std", prior.reg_noise_std, minimum=0.0)
  validation.finite("tv_weight", prior.tv_weight, minimum=0.0)
  validation.finite("tv_beta", prior.tv_beta, minimum=0.0, inclusive=False)
  return prior


def make_loop(objective: Objective, data: dict, prior: Prior) -> fit_lib.FitLoop:
  """The :class:`dipjax.fit.FitLoop` of one pre-image: the DIP net, or the pixels (``architectures.Pixels``)."""
  pixels = prior.kind == "tv"
  return fit_lib.make_fit_loop(
      architectures.Pixels() if pixels else prior.net, loss=ObjectiveLoss(objective, data),
      learning_rate=prior.learning_rate,
      reg_noise_std=0.0 if pixels else prior.reg_noise_std, input_channels=3 if pixels else prior.input_channels,
      optimize_input=pixels, tv_weight=prior.tv_weight, tv_beta=prior.tv_beta)


def init_state(key: jax.Array, objective: Objective, data: dict, prior: Prior) -> fit_lib.FitState:
  """The carry before step 0: network parameters and ``z ~ U(0, 0.1)`` (DIP), or pixels ``0.5 + U(0, 0.1)``."""
  loop = make_loop(objective, data, prior)
  shape = (prior.net_size, prior.net_size)
  if prior.kind == "tv":
    z = 0.5 + 0.1 * jax.random.uniform(jax.random.fold_in(key, 1), shape + (3,), jnp.float32)
    return loop.init(key, shape, z=z)
  return loop.init(key, shape)


def crop(prior: Prior) -> operators.Crop:
  """The top-left ``size x size`` crop of the ``net_size`` canvas (the reference's ``out[..., :size, :size]``)."""
  return operators.Crop(0, 0, prior.size, prior.size)


@functools.lru_cache(maxsize=32)
def _compiled_init(objective: Objective, prior: Prior) -> Callable:
  return jax.jit(lambda key, data: init_state(key, objective, data, prior))


@functools.lru_cache(maxsize=32)
def _compiled_chunk(objective: Objective, prior: Prior, num_steps: int) -> Callable:
  """``(state, data, target) -> (state, StepMetrics)`` for ``num_steps`` steps, jit-compiled once per key."""

  def chunk(state, data, target):
    loop = make_loop(objective, data, prior)  # data are traced: the classifier is an argument, not a constant
    state, metrics, _ = loop.run(state, target, operator=crop(prior), num_steps=num_steps)
    return state, metrics

  return jax.jit(chunk)


@functools.lru_cache(maxsize=32)
def _compiled_image(prior: Prior) -> Callable:
  """``state -> (size, size, 3)``: the cropped output on the clean input (the network only, no classifier)."""
  pixels = prior.kind == "tv"
  loop = fit_lib.make_fit_loop(architectures.Pixels() if pixels else prior.net, optimize_input=pixels,
                               input_channels=3 if pixels else prior.input_channels)
  return jax.jit(lambda state: crop(prior)(loop.render(state)))


@functools.lru_cache(maxsize=32)
def _compiled_objective(objective: Objective) -> Callable:
  return jax.jit(functools.partial(objective_value, objective))


def optimize(key: jax.Array, objective: Objective, data: dict, prior: Prior, *, num_steps: int,
             target=None, chunk: int = 0, log: Optional[Callable[[str], None]] = None) -> PreimageResult:
  """Optimises one image for ``objective`` under ``prior`` (Adam, ``num_steps`` steps in compiled chunks).

  Args:
    key: PRNG key of the network parameters and ``z`` (or of the initial pixels).
    objective: an :class:`Objective`.
    data: :func:`objective_data`.
    prior: a :class:`Prior` (:func:`setup` gives the reference's).
    num_steps: number of Adam steps.
    target: ``(size, size, 3)`` image the fit loop's PSNR metric compares the crop with
      (the inverted picture; default gray). It does not enter the objective.
    chunk: steps per compiled call, with a ``log`` line after each (0: all at once).
    log: progress callback.

  Returns:
    A :class:`PreimageResult`.
  """
  check_objective(objective)
  check_prior(prior)
  validation.positive_int("num_steps", num_steps)
  validation.non_negative_int("chunk", chunk)
  side = (prior.size, prior.size, 3)
  target = jnp.full(side, 0.5, jnp.float32) if target is None else jnp.asarray(target, jnp.float32)
  if target.shape != side:
    raise ValueError(f"`target` must have shape {side}, got {target.shape}.")
  start = time.perf_counter()
  state = _compiled_init(objective, prior)(key, data)
  image_of, value_of = _compiled_image(prior), _compiled_objective(objective)
  initial = float(value_of(data, image_of(state)))
  losses, done = [], 0
  while done < num_steps:
    n = min(chunk or num_steps, num_steps - done)
    state, metrics = _compiled_chunk(objective, prior, n)(state, data, target)
    losses.append(np.asarray(metrics.loss))
    done += n
    if log is not None:
      log(f"step {done}/{num_steps}: loss {float(losses[-1][-1]):.5g} ({time.perf_counter() - start:.1f} s)")
  image = image_of(state)
  return PreimageResult(image=np.asarray(image), loss=np.concatenate(losses), initial_objective=initial,
                        final_objective=float(value_of(data, image)), wall_s=time.perf_counter() - start,
                        state=state)


def with_size(prior: Prior, size: int) -> Prior:
  """``prior`` for a classifier input of ``size``: the DIP canvas is ``size`` rounded up to the net's ``min_size``.

  (224 -> 256 for the 6-level paper nets, as the reference; the pixel prior's canvas is the image.)

  Example:
    >>> with_size(setup("invert", "paper", "dip").prior, 200).net_size
    256
  """
  validation.positive_int("size", size)
  if prior.kind == "tv":
    return prior._replace(size=size, net_size=size)
  multiple = int(getattr(prior.net, "min_size", 1))
  return prior._replace(size=size, net_size=-(-size // multiple) * multiple)


def describe(prior: Prior) -> dict:
  """The prior's settings as plain JSON values (the net by its widths and kernel sizes).

  Example:
    >>> describe(setup("maximize", "paper", "tv").prior)["tv_weight"]
    4228.250625
  """
  out = {k: v for k, v in prior._asdict().items() if k != "net"}
  if prior.kind == "dip":
    net = prior.net
    out["net"] = {f: getattr(net, f) for f in ("channels_down", "channels_skip", "kernel_size_down",
                                               "kernel_size_up", "downsample", "upsample", "padding")
                  if hasattr(net, f)}
  return out


def load_classifier(arch: str, weights: Optional[str] = None, *, key: Optional[jax.Array] = None,
                    overrides: Optional[dict] = None, size: Optional[int] = None):
  """The classifier and its parameters: read from ``weights`` (.npz / .pth), or drawn at random from ``key``.

  Args:
    arch: ``'alexnet'``, ``'vgg16'`` or ``'vgg19'``.
    weights: path of converted weights (:func:`dipjax.features.load_weights`); None: random.
    key: PRNG key of the random weights (PyTorch-default init).
    overrides: fields of the network (e.g. a small fc head for tests; only with random weights).
    size: input side at which ``overrides`` (e.g. ``pool5_size``) shape the random fc6; without overrides the
      network's ``default_size`` (227 / 224) is used, as for converted weights.

  Returns:
    ``(module, params)``.
  """
  net = features.get_feature_net(arch, **(overrides or {}))
  if weights:
    if overrides:
      raise ValueError(f"`overrides` {overrides} are for random weights; converted weights fix the network.")
    return net, features.load_weights(weights, net)
  if key is None:
    raise ValueError("`key` is needed for random classifier weights (no `weights` file given).")
  side = (size or net.default_size) if overrides else net.default_size
  init = jax.jit(lambda k: net.init(k, jnp.zeros((side, side, 3), jnp.float32), layer=net.layer_names[-1])["params"])
  return net, init(key)


def prepare_image(image, size: int) -> np.ndarray:
  """The picture to invert at the classifier's input: the central square, resized to ``size x size`` (antialiased).

  Example:
    >>> prepare_image(np.zeros((30, 40, 3), np.float32), 16).shape
    (16, 16, 3)
  """
  from skimage import transform  # pylint: disable=import-outside-toplevel

  fit_lib.check_image("image", image)
  image = np.asarray(image, np.float32)
  if image.shape[-1] != 3:
    raise ValueError(f"`image` must be RGB (H, W, 3), got shape {image.shape}.")
  validation.positive_int("size", size)
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = image[top:top + side, left:left + side]
  out = transform.resize(square, (size, size), order=3, anti_aliasing=side > size, preserve_range=True)
  return np.clip(out, 0.0, 1.0).astype(np.float32)


def setup(task: str, preset: str, prior: str, *, arch: str = "alexnet", mode: str = "maximize") -> Setup:
  """A preset's settings for ``task`` (``'invert'`` or ``'maximize'``) under ``prior`` (``'dip'`` / ``'tv'``).

  ``paper``: the reference notebooks (dip_reference.md §2.6, §2.7): a 256-pixel
  ``skip_feature_inversion`` (zero pad, nearest) / ``skip_activation_max`` (reflect,
  bilinear, reg noise 0.03) output cropped to 224 (227 for AlexNet activation
  maximisation), 3100 Adam steps, LR 0.001 (0.01 for the fc8 ``match`` run), layer fc6 /
  conv4 channel 2 window 20 / fc8; the TV prior: pixels, LR 0.01, ``λ = 1e-6`` on the
  0..255 scale with ``β = 2`` (:data:`REFERENCE_TV_WEIGHT` on ``[0, 1]``; 1/100 of it for
  inversion, which the reference does not run with TV), the pixels being the
  classifier's input itself (no larger canvas). ``cpu``: the same nets with half the widths, 5 levels,
  a 128-pixel canvas cropped to 112, 400 steps at LR 0.01 (inversion at conv5, since
  fc6 needs a ~224-pixel input). ``tiny``: 2-level nets on 64 -> 48
  pixels, 5 steps, LR 0.01, conv2, and a random classifier with a small fc head
  that works at 48 pixels (tests).

  Example:
    >>> s = setup("invert", "paper", "dip")
    >>> s.prior.net_size, s.prior.size, s.num_steps, s.prior.learning_rate, s.objective_defaults["layer"]
    (256, 224, 3100, 0.001, 'fc6')
  """
  validation.one_of("task", task, ("invert", "maximize"))
  validation.one_of("preset", preset, PRESETS)
  validation.one_of("prior", prior, PRIORS)
  validation.one_of("mode", mode, MODES[1:])
  net_name = "skip_feature_inversion" if task == "invert" else "skip_activation_max"
  fc = task == "maximize" and mode == "match"
  conv_layer = {"invert": {"paper": "fc6", "cpu": "conv5"}, "maximize": {"paper": "conv4", "cpu": "conv4"}}
  layer = "fc8" if fc else conv_layer[task].get(preset, "conv2")
  defaults = ({"layer": layer, "scale": 1.0} if task == "invert"
              else {"layer": layer, "channel": 100 if fc else 2, "window": 20, "scale": 5.0, "target_value": 300.0})
  if preset == "paper":
    size = 227 if task == "maximize" and arch == "alexnet" else 224
    net, net_size, steps, channels = architectures.get_network(net_name), 256, 3100, 32
  elif preset == "cpu":
    half = (8, 16, 32, 64, 64)
    k = (7, 7, 5, 5, 3) if task == "invert" else (5, 3, 5, 5, 3)
    ku = k if task == "invert" else (5, 3, 5, 3, 5)
    skips = (4,) * 5 if task == "invert" else (0, 4, 4, 4, 4)
    net = architectures.get_network(net_name, channels_down=half, channels_up=half, channels_skip=skips,
                                    kernel_size_down=k, kernel_size_up=ku)
    net_size, size, steps, channels = 128, 112, 400, 32
  else:
    net = architectures.get_network(net_name, channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2),
                                    kernel_size_down=3, kernel_size_up=3)
    net_size, size, steps, channels = 64, 48, 5, 4
  if prior == "tv":
    # The pixels are the image (no larger canvas): the TV term is then that of the classifier's input.
    # Inversion: the reference has no "TV only" run; its activation-maximisation weight swamps a feature loss (cpu
    # preset, random AlexNet conv5: the feature loss rose 2.60 -> 2.86 in 400 steps), so 1/100 of it.
    weight = REFERENCE_TV_WEIGHT * (0.01 if task == "invert" else 1.0)
    p = Prior("tv", size=size, net_size=size, learning_rate=0.01, tv_weight=weight, tv_beta=2.0)
  else:
    lr = (0.01 if fc else 0.001) if preset == "paper" else 0.01
    p = Prior("dip", size=size, net_size=net_size, learning_rate=lr, net=net, input_channels=channels,
              reg_noise_std=0.03 if task == "maximize" else 0.0)
  overrides = {"pool5_size": 1, "fc_features": (64, 64, 1000)} if preset == "tiny" else {}
  return Setup(objective_defaults=defaults, prior=p, num_steps=steps, classifier_overrides=overrides)


def configured_setup(task: str, preset: str, prior: str, *, arch: str = "alexnet", mode: str = "maximize",
                     size: Optional[int] = None, learning_rate: Optional[float] = None,
                     tv_weight: Optional[float] = None, num_steps: Optional[int] = None) -> Setup:
  """:func:`setup` with a user's overrides: classifier input ``size``, learning rate, steps, TV weight (TV prior only).

  None keeps the preset's value; ``tv_weight`` changes only the ``'tv'`` prior.

  Example:
    >>> s = configured_setup("invert", "cpu", "tv", size=64, learning_rate=0.05, tv_weight=1.0, num_steps=7)
    >>> s.prior.size, s.prior.learning_rate, s.prior.tv_weight, s.num_steps
    (64, 0.05, 1.0, 7)
  """
  s = setup(task, preset, prior, arch=arch, mode=mode)
  p = with_size(s.prior, size) if size else s.prior
  if learning_rate is not None:
    p = p._replace(learning_rate=learning_rate)
  if tv_weight is not None and prior == "tv":
    p = p._replace(tv_weight=tv_weight)
  return s._replace(prior=p, num_steps=num_steps or s.num_steps)


def check_weights_file(name: str, weights: Optional[str]) -> None:
  """One-line ``ValueError`` naming ``name`` when ``weights`` is given but is not a file (None: random weights)."""
  if weights and not os.path.isfile(weights):
    raise ValueError(f"{name}={weights} is not a file; convert weights with experiments/convert_weights.py "
                     "or leave it out for random weights.")


def classifier(arch: str, weights: Optional[str], *, key: jax.Array, size: int, overrides: Optional[dict] = None,
               log: Optional[Callable[[str], None]] = None) -> Classifier:
  """:func:`load_classifier` for a run: ``overrides`` only with random weights, which ``log`` warns about.

  Example:
    >>> s = setup("invert", "tiny", "dip")
    >>> c = classifier("alexnet", None, key=jax.random.key(0), size=s.prior.size, overrides=s.classifier_overrides)
    >>> c.label, c.random_weights
    ('RANDOM weights', True)
  """
  check_weights_file("weights", weights)
  net, params = load_classifier(arch, weights, key=key, size=size, overrides=None if weights else overrides)
  if weights:
    return Classifier(net, params, os.path.basename(weights), False)
  if log is not None:
    log(f"WARNING: no weights file: the {arch} classifier has RANDOM weights; the pictures are not the paper's. "
        "See experiments/convert_weights.py.")
  return Classifier(net, params, "RANDOM weights", True)


def prepare_study(task: str, preset: str, priors: tuple[str, ...], *, key: jax.Array, arch: str = "alexnet",
                  weights: Optional[str] = None, mode: str = "maximize", log: Optional[Callable[[str], None]] = None,
                  **overrides) -> tuple[dict[str, Setup], Classifier]:
  """Each prior's :func:`configured_setup` and the classifier they share (random from ``key`` without ``weights``).

  Args:
    task, preset, arch, mode: as :func:`setup`; ``priors``: names from :data:`PRIORS`.
    key: PRNG key of the random classifier weights.
    weights, log: as :func:`classifier`; ``overrides``: ``size``, ``learning_rate``, ``tv_weight``, ``num_steps``.

  Returns:
    ``({prior: Setup}, Classifier)``; the classifier is built at the first prior's input size.

  Example:
    >>> setups, c = prepare_study("maximize", "tiny", ("dip", "tv"), key=jax.random.key(0), num_steps=3)
    >>> sorted(setups), setups["tv"].num_steps, c.label
    (['dip', 'tv'], 3, 'RANDOM weights')
  """
  setups = {p: configured_setup(task, preset, p, arch=arch, mode=mode, **overrides) for p in priors}
  first = setups[priors[0]]
  return setups, classifier(arch, weights, key=key, size=first.prior.size, overrides=first.classifier_overrides,
                            log=log)
