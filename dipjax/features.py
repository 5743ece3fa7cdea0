r"""Pretrained-classifier feature extractors for feature inversion and activation maximisation.

The reference (dip_reference.md §1.8, §2.6, §2.7) inverts and maximises activations of
Caffe-converted classifiers: ``alexnet_caffe`` (layers ``conv1 .. conv5``, ``fc6 .. fc8``),
``vgg16_caffe`` and ``vgg19_caffe`` (``conv1_1 .. conv5_x``, ``fc6 .. fc8``), fed
Caffe-style input (:func:`caffe_preprocess`: RGB -> BGR, x255, minus the BGR means
``[103.939, 116.779, 123.680]``). This module has those networks as Linen modules on
ONE ``(H, W, 3)`` image, :func:`activation_at` to read the output of any named layer
(the reference's forward hook; ``fc6`` is pre-ReLU), and :func:`load_weights` to read
converted weights. **No weights ship and nothing downloads**: convert a PyTorch
state dict once with :func:`save_npz_from_state_dict` (keys ``'<layer>.weight'``,
``'<layer>.bias'``; torchvision VGG keys ``features.<i>``/``classifier.<i>`` are also
understood).

Layer semantics (reference / Caffe): convolutions zero-padded; AlexNet's conv2, conv4
and conv5 have 2 groups (Caffe's two-GPU split; ``groups=1`` for ungrouped
conversions), LRN ``size 5, alpha 1e-4, beta 0.75, k 1`` after relu1/relu2, 3x3/2 max
pooling in **ceil mode** (Caffe; needed for the reference's 224-pixel AlexNet input
to reach 6x6 at pool5); VGG pools 2x2/2; dropout is the identity (evaluation mode);
``torch_view`` flattens in PyTorch's channel-major ``(C, H, W)`` order so fc weights
load unchanged (transposed).

Convolutions use ``lax.conv_general_dilated`` (``conv_impl='xla'``) by default: the
classifier's weights are fixed in feature inversion / activation maximisation, so only
the input gradient is taken, which XLA:CPU runs at the speed of the matmul convolution
inside a scan while compiling ~4x faster (AlexNet to conv3 under ``grad`` in a scan:
2 s against 9 s; BUILD_NOTES). ``conv_impl='matmul'`` selects :mod:`dipjax.conv`'s
im2col convolution.

Example:
  >>> import jax
  >>> net = VGG(depth=16)
  >>> image = jax.random.uniform(jax.random.key(0), (32, 32, 3))
  >>> init = jax.jit(lambda key, x: net.init(key, x, layer="pool1")["params"])  # creates conv1_1, conv1_2
  >>> params = init(jax.random.key(1), caffe_preprocess(image))
  >>> jax.jit(lambda p, x: activation_at(net, p, x, "pool1"))(params, image).shape
  (16, 16, 64)
"""

from __future__ import annotations

import os
import tempfile
from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dipjax import conv as conv_lib
from dipjax import layers

CAFFE_BGR_MEAN = (103.939, 116.779, 123.680)  # B, G, R on the 0..255 scale

ALEXNET_LAYERS = ("conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3", "relu3",
                  "conv4", "relu4", "conv5", "relu5", "pool5", "torch_view", "fc6", "relu6", "drop6", "fc7",
                  "relu7", "drop7", "fc8", "softmax")


def _vgg_layers(depth: int) -> tuple[str, ...]:
  convs_per_block = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}[depth]
  names = []
  for b, n in enumerate(convs_per_block, start=1):
    for i in range(1, n + 1):
      names += [f"conv{b}_{i}", f"relu{b}_{i}"]
    names.append(f"pool{b}")
  return tuple(names + ["torch_view", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"])


VGG16_LAYERS = _vgg_layers(16)
VGG19_LAYERS = _vgg_layers(19)


def caffe_preprocess(image: jax.Array) -> jax.Array:
  r"""The reference's ``vgg_preprocess_var`` on one image: ``bgr(x) * 255 - mean``.

  .. math:: y[h, w, c] = 255\, x[h, w, 2 - c] - m_c, \quad m = (103.939, 116.779, 123.680)

  Args:
    image: ``(H, W, 3)`` RGB in ``[0, 1]``.

  Returns:
    ``(H, W, 3)`` BGR on the 0..255 scale, mean-subtracted.

  Example:
    >>> import jax.numpy as jnp
    >>> [round(float(v), 3) for v in caffe_preprocess(jnp.ones((1, 1, 3)))[0, 0]]
    [151.061, 138.221, 131.32]
  """
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"caffe_preprocess: `image` must be (H, W, 3) RGB, got shape {image.shape}.")
  mean = jnp.asarray(CAFFE_BGR_MEAN, image.dtype).reshape(1, 1, 3)
  return image[..., ::-1] * 255.0 - mean


def local_response_norm(x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> jax.Array:
  r"""Caffe's across-channel LRN: ``x / (k + alpha / size * sum_{|c' - c| <= size // 2} x_{c'}^2) ** beta``."""
  c = x.shape[-1]
  half = size // 2
  sq = jnp.pad(jnp.square(x), ((0, 0), (0, 0), (half, size - 1 - half)))
  total = sum(sq[..., i:i + c] for i in range(size))
  return x / (k + (alpha / size) * total) ** beta


def max_pool(x: jax.Array, window: int, stride: int, *, ceil_mode: bool, where: str = "max_pool") -> jax.Array:
  """Max pooling of an ``(H, W, C)`` map without padding; ``ceil_mode`` keeps a partial last window (Caffe)."""
  sizes = []
  for n in x.shape[:2]:
    out = -(-(n - window) // stride) + 1 if ceil_mode else (n - window) // stride + 1
    if out < 1 or (not ceil_mode and n < window):
      raise ValueError(f"{where}: a {x.shape[0]}x{x.shape[1]} map is too small for {window}x{window} pooling.")
    sizes.append(out)
  hp, wp = [(o - 1) * stride + window for o in sizes]
  x = jnp.pad(x, ((0, max(hp - x.shape[0], 0)), (0, max(wp - x.shape[1], 0)), (0, 0)), constant_values=-jnp.inf)
  out = None
  for i in range(window):
    for j in range(window):
      s = x[i:i + (sizes[0] - 1) * stride + 1:stride, j:j + (sizes[1] - 1) * stride + 1:stride]
      out = s if out is None else jnp.maximum(out, s)
  return out


class FeatureConv(nn.Module):
  """Zero-padded, optionally grouped conv; kernel ``(k, k, C_in / groups, C_out)`` (HWIO of torch's OIHW)."""

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  groups: int = 1
  impl: str = "auto"  # dipjax.conv.conv2d's implementation

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, g = self.kernel_size, self.groups
    if x.shape[-1] % g or self.features % g:
      raise ValueError(f"{self.name}: {x.shape[-1]} input / {self.features} output channels not divisible by "
                       f"groups={g}.")
    fan_in = x.shape[-1] // g * k * k
    kernel = self.param("kernel", layers.torch_uniform_init(fan_in), (k, k, x.shape[-1] // g, self.features))
    bias = self.param("bias", layers.torch_uniform_init(fan_in), (self.features,))
    p = self.padding
    x = jnp.pad(x, ((p, p), (p, p), (0, 0)))
    if x.shape[0] < k or x.shape[1] < k:
      raise ValueError(f"{self.name}: a {x.shape[0] - 2 * p}x{x.shape[1] - 2 * p} map is too small for this "
                       f"{k}x{k} convolution.")
    xs = jnp.split(x, g, axis=-1)
    ks = jnp.split(kernel, g, axis=-1)
    bs = jnp.split(bias, g)
    ys = [conv_lib.conv2d(xi, ki, bias=bi, stride=self.stride, impl=self.impl) for xi, ki, bi in zip(xs, ks, bs)]
    return ys[0] if g == 1 else jnp.concatenate(ys, axis=-1)


class FeatureDense(nn.Module):
  """Fully connected layer: kernel ``(in, out)`` (torch ``weight.T``), PyTorch-default init."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    init = layers.torch_uniform_init(x.shape[-1])
    kernel = self.param("kernel", init, (x.shape[-1], self.features))
    return x @ kernel + self.param("bias", init, (self.features,))


def _apply_layer(module: nn.Module, spec: tuple, x: jax.Array) -> jax.Array:
  """Runs one ``(name, kind, *args)`` layer spec inside ``module``'s compact scope."""
  name, kind, args = spec[0], spec[1], spec[2:]
  if kind == "conv":
    return FeatureConv(*args, impl=module.conv_impl, name=name)(x)
  if kind == "fc":
    return FeatureDense(args[0], name=name)(x)
  if kind == "relu":
    return jax.nn.relu(x)
  if kind == "lrn":
    return local_response_norm(x)
  if kind == "pool":
    return max_pool(x, args[0], args[1], ceil_mode=args[2], where=f"{type(module).__name__} {name}")
  if kind == "view":
    return jnp.transpose(x, (2, 0, 1)).reshape(-1)
  if kind == "drop":
    return x
  if kind == "softmax":
    return jax.nn.softmax(x)
  raise AssertionError(kind)


def _run(module: nn.Module, specs: Sequence[tuple], x: jax.Array, layer: str) -> jax.Array:
  names = [s[0] for s in specs]
  if layer not in names:
    raise ValueError(f"`layer` must be one of {names}, got {layer!r}.")
  if x.ndim != 3 or x.shape[-1] != 3:
    raise ValueError(f"`x` must be one preprocessed (H, W, 3) image, got shape {x.shape}.")
  for spec in specs:
    if spec[1] == "view" and x.shape[:2] != (module.pool5_size,) * 2:
      raise ValueError(f"{type(module).__name__}: layer {layer!r} needs pool5 to be {module.pool5_size}x"
                       f"{module.pool5_size} (the fc6 weights), got {x.shape[0]}x{x.shape[1]}; "
                       f"use a {module.default_size}x{module.default_size} image.")
    x = _apply_layer(module, spec, x)
    if spec[0] == layer:
      return x
  raise AssertionError(layer)


class AlexNet(nn.Module):
  """Caffe AlexNet (``bvlc_alexnet`` order: conv -> relu -> norm -> pool), as the reference's ``alexnet_caffe``.

  ``__call__(x, layer)`` takes a :func:`caffe_preprocess` ed ``(H, W, 3)`` image and
  returns the output of ``layer`` (``ALEXNET_LAYERS``). Layers from ``torch_view`` on
  need pool5 to be 6x6 (``H, W`` in 199..230 with ceil-mode pooling: 227 in Caffe, 224
  in the reference's feature inversion); the layers before work from 39x39 up
  (``pool5`` 1x1). ``fc_features`` shrinks the classifier for tests.
  """

  groups: int = 2  # of conv2, conv4, conv5 (Caffe); 1 for an ungrouped conversion
  fc_features: tuple[int, int, int] = (4096, 4096, 1000)
  default_size: int = 227  # input side the fc layers were trained at
  pool5_size: int = 6  # pool5 side fc6 expects (256 * 6 * 6 inputs)
  conv_impl: str = "xla"  # dipjax.conv.conv2d implementation (see the module docstring)

  @property
  def layer_names(self) -> tuple[str, ...]:
    return ALEXNET_LAYERS

  def specs(self) -> list[tuple]:
    g = self.groups
    f6, f7, f8 = self.fc_features
    return [("conv1", "conv", 96, 11, 4, 0, 1), ("relu1", "relu"), ("norm1", "lrn"), ("pool1", "pool", 3, 2, True),
            ("conv2", "conv", 256, 5, 1, 2, g), ("relu2", "relu"), ("norm2", "lrn"), ("pool2", "pool", 3, 2, True),
            ("conv3", "conv", 384, 3, 1, 1, 1), ("relu3", "relu"), ("conv4", "conv", 384, 3, 1, 1, g),
            ("relu4", "relu"), ("conv5", "conv", 256, 3, 1, 1, g), ("relu5", "relu"),
            ("pool5", "pool", 3, 2, True), ("torch_view", "view"), ("fc6", "fc", f6), ("relu6", "relu"),
            ("drop6", "drop"), ("fc7", "fc", f7), ("relu7", "relu"), ("drop7", "drop"), ("fc8", "fc", f8),
            ("softmax", "softmax")]

  @nn.compact
  def __call__(self, x: jax.Array, layer: str = "fc8") -> jax.Array:
    return _run(self, self.specs(), x, layer)


class VGG(nn.Module):
  """VGG-16 / VGG-19 (torchvision layout, Caffe weights), as the reference's ``vgg16_caffe`` / ``vgg19_caffe``.

  3x3 convs (pad 1) + ReLU, 2x2/2 max pooling (floor). Layers from ``torch_view`` on
  need pool5 to be 7x7 (``H, W`` in 224..255); the layers before work from 32x32 up
  (``pool5`` 1x1).
  """

  depth: int = 19  # 16 or 19
  fc_features: tuple[int, int, int] = (4096, 4096, 1000)
  default_size: int = 224  # input side the fc layers were trained at
  pool5_size: int = 7  # pool5 side fc6 expects (512 * 7 * 7 inputs)
  conv_impl: str = "xla"  # dipjax.conv.conv2d implementation (see the module docstring)

  @property
  def layer_names(self) -> tuple[str, ...]:
    return _vgg_layers(self.depth)

  def specs(self) -> list[tuple]:
    if self.depth not in (16, 19):
      raise ValueError(f"`depth` must be 16 or 19, got {self.depth!r}.")
    widths = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
    out = []
    for name in _vgg_layers(self.depth):
      if name.startswith("conv"):
        out.append((name, "conv", widths[int(name[4])], 3, 1, 1, 1))
      elif name.startswith("pool"):
        out.append((name, "pool", 2, 2, False))
      elif name.startswith("fc"):
        out.append((name, "fc", self.fc_features[int(name[2]) - 6]))
      else:
        out.append((name, {"relu": "relu", "drop": "drop", "torc": "view"}[name[:4]]))
    return out

  @nn.compact
  def __call__(self, x: jax.Array, layer: str = "fc8") -> jax.Array:
    return _run(self, self.specs(), x, layer)


FEATURE_NETS = {
    "alexnet": lambda **kw: AlexNet(**kw),
    "vgg16": lambda **kw: VGG(**{"depth": 16, **kw}),
    "vgg19": lambda **kw: VGG(**{"depth": 19, **kw}),
}


def get_feature_net(name: str, **overrides) -> nn.Module:
  """Builds ``'alexnet'``, ``'vgg16'`` or ``'vgg19'`` with field overrides."""
  if name not in FEATURE_NETS:
    raise ValueError(f"unknown feature net {name!r}; choose one of {sorted(FEATURE_NETS)}.")
  return FEATURE_NETS[name](**overrides)


def activation_at(model: nn.Module, params, image: jax.Array, layer: str, *, preprocess: bool = True) -> jax.Array:
  """Output of ``layer`` for one RGB image in ``[0, 1]`` (the reference's forward hook on that layer).

  Args:
    model: an :class:`AlexNet` or :class:`VGG`.
    params: its ``params`` pytree (:func:`load_weights`, or ``model.init(...)["params"]``).
    image: ``(H, W, 3)`` RGB in ``[0, 1]`` (or already preprocessed with ``preprocess=False``).
    layer: a name of ``model.layer_names``, e.g. ``'fc6'`` (pre-ReLU) or ``'conv4'``.
    preprocess: apply :func:`caffe_preprocess` first.

  Returns:
    ``(H_l, W_l, C_l)`` for conv/pool layers, ``(F,)`` from ``torch_view`` on.
  """
  x = caffe_preprocess(image) if preprocess else image
  return model.apply({"params": params}, x, layer=layer)


def _param_layers(model: nn.Module) -> dict[str, dict[str, tuple[int, ...]]]:
  """``{layer: {'kernel': shape, 'bias': shape}}`` of the full network, from abstract evaluation."""
  size = int(model.default_size)
  x = jax.ShapeDtypeStruct((size, size, 3), jnp.float32)
  shapes = jax.eval_shape(lambda k, x: model.init(k, x, layer=model.layer_names[-1]), jax.random.key(0), x)["params"]
  return {name: {leaf: tuple(v.shape) for leaf, v in d.items()} for name, d in shapes.items()}


def _aliases(model: nn.Module, layer: str) -> list[str]:
  """State-dict key prefixes accepted for ``layer``: its name, and torchvision's VGG indices."""
  out = [layer]
  if isinstance(model, VGG):
    features = model.layer_names[:model.layer_names.index("pool5") + 1]  # torchvision's vgg.features
    if layer in features:
      out.append(f"features.{features.index(layer)}")
    elif layer in ("fc6", "fc7", "fc8"):
      out.append(f"classifier.{3 * (int(layer[2]) - 6)}")
  return out


def _read_state_dict(path: str, allow_pickle: bool) -> Mapping[str, np.ndarray]:
  if not os.path.isfile(path):
    raise ValueError(f"load_weights: `path` {path!r} is not a file.")
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as data:
      return {k: data[k] for k in data.files}
  if path.endswith((".pth", ".pt")):
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ValueError(f"load_weights: reading {path!r} needs PyTorch, which is not installed; convert it to .npz "
                       "with save_npz_from_state_dict on a machine that has it.") from e
    obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    if hasattr(obj, "state_dict"):
      obj = obj.state_dict()
    return {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, "detach")}
  raise ValueError(f"load_weights: `path` must end in .npz or .pth, got {path!r}.")


def load_weights(path: str, arch, *, allow_pickle: bool = False):
  """Reads converted classifier weights into the ``params`` pytree of a feature net.

  Keys ``'<layer>.weight'`` / ``'<layer>.bias'`` (PyTorch state-dict names of the
  reference's named ``Sequential``; torchvision ``features.<i>`` / ``classifier.<i>``
  for VGG). Layouts: conv ``OIHW -> HWIO`` (grouped: ``(O, I/g, k, k)``), fc
  ``(out, in) -> (in, out)``. Extra tensors (e.g. BN buffers) are ignored.

  Args:
    path: a ``.npz`` file (:func:`save_npz_from_state_dict`), or a ``.pth`` state dict
      when PyTorch is installed (``allow_pickle=True`` also unpickles a whole saved
      module, as the reference's ``alexnet-torch_py3.pth``: only for trusted files).
    arch: ``'alexnet'``, ``'vgg16'``, ``'vgg19'``, or a module instance (e.g.
      ``AlexNet(groups=1)``).
    allow_pickle: see ``path``.

  Returns:
    ``{layer: {'kernel': ..., 'bias': ...}}`` float32, for ``model.apply({'params': p}, x)``.

  Raises:
    ValueError: one line naming the tensor, when one is missing or mis-shaped.
  """
  model = get_feature_net(arch) if isinstance(arch, str) else arch
  label = arch if isinstance(arch, str) else type(arch).__name__
  state = _read_state_dict(os.fspath(path), allow_pickle)
  params = {}
  for layer, leaves in _param_layers(model).items():
    prefix = next((p for p in _aliases(model, layer) if f"{p}.weight" in state), layer)
    kernel_shape, bias_shape = leaves["kernel"], leaves["bias"]
    conv = len(kernel_shape) == 4
    want = {"weight": (kernel_shape[3], kernel_shape[2], kernel_shape[0], kernel_shape[1]) if conv
            else kernel_shape[::-1], "bias": bias_shape}
    got = {}
    for leaf, shape in want.items():
      key = f"{prefix}.{leaf}"
      if key not in state:
        raise ValueError(f"load_weights: tensor {key!r} is missing from {path} (arch {label!r}).")
      value = np.asarray(state[key], dtype=np.float32)
      if value.shape != shape:
        raise ValueError(f"load_weights: tensor {key!r} in {path} has shape {value.shape}, expected {shape} "
                         f"(arch {label!r}).")
      got[leaf] = value
    kernel = np.transpose(got["weight"], (2, 3, 1, 0)) if conv else got["weight"].T
    params[layer] = {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(got["bias"])}
  return params


def save_npz_from_state_dict(state_dict: Mapping[str, np.ndarray], path: str) -> None:
  """Writes a (PyTorch-layout) state dict to ``path`` (``.npz``, atomically) for :func:`load_weights`.

  Args:
    state_dict: ``{name: array}``; torch tensors are converted with ``.detach().cpu().numpy()``.
    path: output file, ending in ``.npz``.

  Example:
    >>> import numpy as np, os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> save_npz_from_state_dict({"fc8.bias": np.zeros(3)}, p)
    >>> sorted(np.load(p).files)
    ['fc8.bias']
  """
  path = os.fspath(path)
  if not path.endswith(".npz"):
    raise ValueError(f"save_npz_from_state_dict: `path` must end in .npz, got {path!r}.")
  arrays = {}
  for name, value in state_dict.items():
    if hasattr(value, "detach"):
      value = value.detach().cpu().numpy()
    arrays[str(name)] = np.asarray(value)
  fd, tmp = tempfile.mkstemp(suffix=".npz", dir=os.path.dirname(os.path.abspath(path)))
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
