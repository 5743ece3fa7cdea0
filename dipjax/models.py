"""The DIP encoder-decoder (``skip`` hourglass) and the paper's configurations.

``SkipNet`` reproduces ``models/skip.py`` of the reference (dip_reference.md §1.1):
level ``i`` (0 = finest) has

* a skip branch ``conv(k_skip, ns[i]) -> BN -> act`` when ``ns[i] > 0``;
* a deeper branch ``conv(kd[i], nd[i], stride 2 | stride 1 + pool) -> BN -> act ->
  conv(kd[i], nd[i]) -> BN -> act -> [level i+1] -> upsample x2``;
* ``concat([skip, deeper])`` (centre-cropped to the smaller size) -> BN (no act) ->
  ``conv(ku[i], nu[i]) -> BN -> act`` -> optionally ``conv(1, nu[i]) -> BN -> act``;

and the output is ``sigmoid(conv1x1(level_0(z)))``. It maps one ``(H, W, C_in)``
input to one ``(H, W, out_channels)`` image; ``C_in`` is taken from ``z`` at init.
When every level has a skip connection, any ``H, W >= 2**num_levels`` comes back
at exactly the input size.

Example:
  >>> import jax
  >>> net = skip_default()
  >>> z = jax.ShapeDtypeStruct((64, 64, 32), jax.numpy.float32)  # shapes only: no compute
  >>> params = jax.eval_shape(net.init, jax.random.key(1), z)
  >>> count_params(params)
  2217831
  >>> jax.eval_shape(net.apply, params, z).shape
  (64, 64, 3)
"""

from __future__ import annotations

import functools
from typing import Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dipjax import conv as conv_lib
from dipjax import layers

IntOrSeq = Union[int, Sequence[int]]
UPSAMPLE_MODES = layers.UPSAMPLE_MODES + ("deconv",)  # SkipNet's 2x upsampling choices
StrOrSeq = Union[str, Sequence[str]]


def _per_level(value, n: int, name: str) -> tuple:
  if isinstance(value, (str, int)):
    return (value,) * n
  value = tuple(value)
  if len(value) != n:
    raise ValueError(f"`{name}` must be a scalar or have one entry per level ({n}), got {value!r}.")
  return value


class SkipNet(nn.Module):
  """Hourglass encoder-decoder with skip connections (the reference's ``skip``)."""

  out_channels: int = 3  # C of the output image
  channels_down: Sequence[int] = (16, 32, 64, 128, 128)  # nd[i]: deeper-branch width per level
  channels_up: Sequence[int] = (16, 32, 64, 128, 128)  # nu[i]: decoder width per level
  channels_skip: Sequence[int] = (4, 4, 4, 4, 4)  # ns[i]: skip width per level (0 = no skip)
  kernel_size_down: IntOrSeq = 3  # kd: encoder kernel size, scalar or per level
  kernel_size_up: IntOrSeq = 3  # ku: decoder kernel size, scalar or per level
  kernel_size_skip: int = 1  # k_skip
  downsample: StrOrSeq = "stride"  # 'stride' | 'avg' | 'max' | 'lanczos2' | 'lanczos3', per level
  upsample: StrOrSeq = "nearest"  # 'nearest' | 'bilinear' | 'bicubic' | 'deconv' (learned 4/2/1 transposed conv)
  padding: str = "reflect"  # 'reflect' | 'zero' (the reference's default is 'zero'; notebooks use reflection)
  activation: str = "leaky_relu"  # 'leaky_relu' (0.2) | 'swish' | 'elu' | 'none'
  need_1x1_up: bool = True  # extra 1x1 conv + BN + act at the end of each decoder level
  need_sigmoid: bool = True  # sigmoid on the output
  use_bias: bool = True  # biases in the convolutions (the last 1x1 conv as well)
  bn_scale_init: str = "ones"  # BatchNorm scale init: 'ones' (modern PyTorch) | 'uniform' U(0,1) (paper-era)
  precision: str = "float32"  # conv arithmetic: 'float32' | 'float32_highest' | 'bfloat16' (dipjax.conv.PRECISIONS)
  conv_impl: str = "auto"  # conv path: 'auto' (by backend) | 'matmul' | 'rows' | 'xla' (dipjax.conv)

  @property
  def num_levels(self) -> int:
    return len(self.channels_down)

  def check(self) -> None:
    """Raises ``ValueError`` on an inconsistent configuration."""
    n = self.num_levels
    if n < 1:
      raise ValueError("`channels_down` must have at least one level.")
    if len(self.channels_up) != n or len(self.channels_skip) != n:
      raise ValueError(
          f"`channels_down`, `channels_up` and `channels_skip` must have the same length, got "
          f"{len(self.channels_down)}, {len(self.channels_up)}, {len(self.channels_skip)}.")
    for name in ("kernel_size_down", "kernel_size_up", "downsample", "upsample"):
      _per_level(getattr(self, name), n, name)
    for m in _per_level(self.downsample, n, "downsample"):
      if m not in layers.DOWNSAMPLE_MODES:
        raise ValueError(f"`downsample` must be one of {layers.DOWNSAMPLE_MODES}, got {m!r}.")
    for m in _per_level(self.upsample, n, "upsample"):
      if m not in UPSAMPLE_MODES:
        raise ValueError(f"`upsample` must be one of {UPSAMPLE_MODES}, got {m!r}.")
    if self.padding not in layers.PADDINGS:
      raise ValueError(f"`padding` must be one of {layers.PADDINGS}, got {self.padding!r}.")
    if self.activation not in layers.ACTIVATIONS:
      raise ValueError(f"`activation` must be one of {layers.ACTIVATIONS}, got {self.activation!r}.")
    if self.bn_scale_init not in layers.BN_SCALE_INITS:
      raise ValueError(f"`bn_scale_init` must be one of {layers.BN_SCALE_INITS}, got {self.bn_scale_init!r}.")
    conv_lib.check_precision(self.precision)
    conv_lib.resolve_impl(self.conv_impl)

  @property
  def min_size(self) -> int:
    """Smallest H and W the network accepts: ``2**num_levels`` (32 for 5 levels)."""
    return 2 ** self.num_levels

  @property
  def size_multiple(self) -> int:
    """H, W must be multiples of this for the output to keep the input size.

    1 when every level has a skip connection and downsamples by stride (the
    centre-crop concat absorbs ceil rounding); ``2**num_levels`` otherwise.
    """
    all_skips = all(c > 0 for c in self.channels_skip)
    all_stride = all(m == "stride" for m in _per_level(self.downsample, self.num_levels, "downsample"))
    return 1 if (all_skips and all_stride) else 2 ** self.num_levels

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    self.check()
    if z.ndim != 3:
      raise ValueError(f"`z` must be (H, W, C), got shape {z.shape}.")
    n = self.num_levels
    kd = _per_level(self.kernel_size_down, n, "kernel_size_down")
    ku = _per_level(self.kernel_size_up, n, "kernel_size_up")
    down = _per_level(self.downsample, n, "downsample")
    up = _per_level(self.upsample, n, "upsample")
    # Every conv except the output one is followed by BatchNorm, which cancels its bias.
    conv = functools.partial(layers.Conv, use_bias=self.use_bias, padding=self.padding, bias_cancelled=True,
                             precision=self.precision, conv_impl=self.conv_impl)
    bn = functools.partial(layers.BatchNorm, scale_init=self.bn_scale_init)
    act = functools.partial(layers.activation, kind=self.activation)

    def level(i: int, x: jax.Array) -> jax.Array:
      skip = None
      if self.channels_skip[i] > 0:
        skip = conv(self.channels_skip[i], self.kernel_size_skip, name=f"skip{i}_conv")(x)
        skip = act(bn(name=f"skip{i}_bn")(skip))
      stride = 2 if down[i] == "stride" else 1
      d = conv(self.channels_down[i], kd[i], stride=stride, name=f"down{i}_conv0")(x)
      if down[i] != "stride":
        d = layers.downsample2x(d, down[i])
      d = act(bn(name=f"down{i}_bn0")(d))
      d = conv(self.channels_down[i], kd[i], name=f"down{i}_conv1")(d)
      d = act(bn(name=f"down{i}_bn1")(d))
      if i < n - 1:
        d = level(i + 1, d)
      if up[i] == "deconv":  # ConvTranspose2d(C, C, 4, stride=2, padding=1): learned, its bias cancelled by BN
        d = layers.ConvTranspose(d.shape[-1], precision=self.precision, conv_impl=self.conv_impl,
                                 name=f"up{i}_deconv")(d)
      else:
        d = layers.upsample2x(d, up[i])
      if skip is not None:
        d = layers.concat_centre_crop([skip, d])
      d = bn(name=f"up{i}_bn_cat")(d)
      d = conv(self.channels_up[i], ku[i], name=f"up{i}_conv0")(d)
      d = act(bn(name=f"up{i}_bn0")(d))
      if self.need_1x1_up:
        d = conv(self.channels_up[i], 1, name=f"up{i}_conv1")(d)
        d = act(bn(name=f"up{i}_bn1")(d))
      return d

    out = conv(self.out_channels, 1, bias_cancelled=False, name="out_conv")(level(0, z))
    return jax.nn.sigmoid(out) if self.need_sigmoid else out


class UnknownParameterError(ValueError):
  """A parameter that :func:`init_params` has no initialiser for (not a dipjax Conv/BatchNorm leaf)."""


def init_params(key: jax.Array, model: nn.Module, z: jax.Array):
  """PyTorch-default initial parameters of a SkipNet from a single random draw.

  Same distribution as ``model.init(key, z)["params"]`` — conv kernels and biases
  ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, BatchNorm scale 1 (or ``U(0, 1)`` with
  ``bn_scale_init='uniform'``) and bias 0 — but drawn as one flat uniform vector
  instead of one PRNG call per leaf. Inside a jitted fit this compiles in a
  fraction of the time (each threefry call is a separate block of XLA code; see
  BUILD_NOTES.md), and it never runs the network's forward pass.

  Args:
    key: PRNG key.
    model: a :class:`SkipNet` (any module built from :class:`dipjax.layers.Conv`
      and :class:`dipjax.layers.BatchNorm`).
    z: the network input ``(H, W, C_in)`` (only its shape is used).

  Returns:
    The ``params`` pytree, structured as ``model.init(key, z)["params"]``.
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(z.shape, jnp.float32)).get("params", {})
  leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  total = sum(int(np.prod(leaf.shape)) for _, leaf in leaves)
  u = jax.random.uniform(key, (total,), jnp.float32, -1.0, 1.0)
  fan_in = {}
  for path, leaf in leaves:
    if path[-1].key == "kernel":
      fan_in[path[:-1]] = int(np.prod(leaf.shape[:-1]))
  out, offset = [], 0
  for path, leaf in leaves:
    size = int(np.prod(leaf.shape))
    draw = u[offset:offset + size].reshape(leaf.shape)
    offset += size
    name, parent = path[-1].key, path[:-1]
    if parent in fan_in:  # a Conv: kernel and bias
      out.append(draw / np.float32(np.sqrt(fan_in[parent])))
    elif name == "scale":  # BatchNorm scale
      uniform = getattr(model, "bn_scale_init", "ones") == "uniform"
      out.append(0.5 * (draw + 1.0) if uniform else jnp.ones(leaf.shape, jnp.float32))
    elif name == "bias":  # BatchNorm bias
      out.append(jnp.zeros(leaf.shape, jnp.float32))
    else:
      raise UnknownParameterError(f"init_params: no initialiser known for parameter {jax.tree_util.keystr(path)}; "
                                  "use model.init for modules not built from dipjax.layers.")
  return jax.tree_util.tree_unflatten(treedef, out)


def count_params(params) -> int:
  """Total number of scalars in a parameter pytree."""
  return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(params)))


# ---------------------------------------------------------------------------
# Presets (dip_reference.md §2.9). Each returns a SkipNet; kwargs override fields.
# ---------------------------------------------------------------------------


def skip_default(**overrides) -> SkipNet:
  """``get_net(32, 'skip', 'reflection', 128/128/4 x 5, bilinear)``: denoising and SR (2,217,831 params at C_in=32)."""
  cfg = dict(channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(4,) * 5, upsample="bilinear")
  return SkipNet(**{**cfg, **overrides})


def skip_deblock(**overrides) -> SkipNet:
  """Snail JPEG net: nd=nu=[8,16,32,64,128], ns=[0,0,0,4,4], bilinear (572,827 params at C_in=3)."""
  ch = (8, 16, 32, 64, 128)
  cfg = dict(channels_down=ch, channels_up=ch, channels_skip=(0, 0, 0, 4, 4), upsample="bilinear")
  return SkipNet(**{**cfg, **overrides})


def skip_inpaint_text(**overrides) -> SkipNet:
  """Kate text inpainting: 128 channels everywhere incl. skips, nearest (3,002,627 params at C_in=32)."""
  cfg = dict(channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(128,) * 5, upsample="nearest")
  return SkipNet(**{**cfg, **overrides})


def skip_inpaint_region(**overrides) -> SkipNet:
  """Vase region inpainting (meshgrid input): 128 x 5, no skips, nearest (2,157,955 params at C_in=2)."""
  cfg = dict(channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(0,) * 5, upsample="nearest")
  return SkipNet(**{**cfg, **overrides})


def skip_inpaint_large_hole(**overrides) -> SkipNet:
  """Library large-hole inpainting: 6 levels [16..128], no skips, kd=5, no 1x1 (2,996,467 params at C_in=1)."""
  ch = (16, 32, 64, 128, 128, 128)
  cfg = dict(channels_down=ch, channels_up=ch, channels_skip=(0,) * 6, kernel_size_down=5,
             kernel_size_up=3, upsample="nearest", need_1x1_up=False)
  return SkipNet(**{**cfg, **overrides})


def skip_restore_sparse(**overrides) -> SkipNet:
  """Kate 2% restoration: [16..128], no skips, avg-pool downsampling, bilinear (1,027,379 params at C_in=32)."""
  ch = (16, 32, 64, 128, 128)
  cfg = dict(channels_down=ch, channels_up=ch, channels_skip=(0,) * 5, downsample="avg", upsample="bilinear")
  return SkipNet(**{**cfg, **overrides})


def skip_flash(**overrides) -> SkipNet:
  """Flash/no-flash: 128/128/4 x 5, upsampling [nearest, nearest, bilinear x 3] (2,184,307 params at C_in=3)."""
  cfg = dict(channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(4,) * 5,
             upsample=("nearest", "nearest", "bilinear", "bilinear", "bilinear"))
  return SkipNet(**{**cfg, **overrides})


def skip_tiny(**overrides) -> SkipNet:
  """A 2-level, 8-channel net for tests (min size 4): same code paths, milliseconds per step, quick to compile."""
  cfg = dict(channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2), upsample="bilinear")
  return SkipNet(**{**cfg, **overrides})


PRESETS = {
    "default": skip_default,
    "deblock": skip_deblock,
    "inpaint_text": skip_inpaint_text,
    "inpaint_region": skip_inpaint_region,
    "inpaint_large_hole": skip_inpaint_large_hole,
    "restore_sparse": skip_restore_sparse,
    "flash": skip_flash,
    "tiny": skip_tiny,
}


def get_model(name: str, **overrides) -> SkipNet:
  """Builds a preset by name (``PRESETS`` keys), with field overrides."""
  if name not in PRESETS:
    raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}.")
  return PRESETS[name](**overrides)
