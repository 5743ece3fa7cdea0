r"""The paper's other networks: UNet, ResNet, Deep Decoder, hourglass variants, and a registry.

Every module maps ONE input ``z`` of shape ``(H_in, W_in, C_in)`` to one image
``(H, W, out_channels)``, is built from :class:`dipjax.layers.Conv` (matmul conv,
PyTorch-default init), :class:`dipjax.layers.BatchNorm` and :func:`dipjax.layers.activation`
(plus :class:`ConvTranspose` here), so :func:`dipjax.models.init_params` draws its
initial parameters, and exposes ``min_size``, ``size_multiple`` (read by
:func:`dipjax.canvas.canvas_for`) and ``out_channels``.

* :class:`UNet` — the reference's ``models/unet.py`` (dip_reference.md §1.7), used in
  the large-hole inpainting ablation (Fig. 8);
* :class:`ResNet` — the reference's ``models/resnet.py`` (same ablation);
* :class:`DeepDecoder` — Heckel & Hand (ICLR 2019), ``decodernw`` of their supplement
  (peers.md §2): an under-parameterised decoder from a small seed tensor;
* ``skip_*`` factories — :class:`dipjax.models.SkipNet` configurations of the depth and
  skip ablations and of feature inversion / activation maximisation (§2.3, §2.6, §2.7).

``ARCHITECTURES`` names them all; :func:`get_architecture` builds one with overrides.

Example:
  >>> import jax
  >>> net = get_architecture("deep_decoder", channels=8)
  >>> z = jax.random.uniform(jax.random.key(0), input_shape(net, 64, 32)) * 0.1
  >>> z.shape
  (2, 1, 8)
  >>> params = models.init_params(jax.random.key(1), net, z)  # as net.init(key, z)["params"]
  >>> jax.jit(net.apply)({"params": params}, z).shape
  (64, 32, 3)
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dipjax import conv as conv_lib
from dipjax import layers
from dipjax import models

NORMS = ("bn", "in", "none")
UNET_UPSAMPLE_MODES = ("deconv", "nearest", "bilinear")


# ---------------------------------------------------------------------------
# Upsampling primitives.
# ---------------------------------------------------------------------------


# Moved to dipjax.layers (SkipNet uses them too); kept here under their old names.
conv_transpose2x = layers.conv_transpose2x
upsample2x_bicubic = layers.upsample2x_bicubic
ConvTranspose = layers.ConvTranspose


def instance_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """``torch.nn.InstanceNorm2d`` (no affine) on one image: ``(x - mean_hw) / sqrt(var_hw + eps)`` per channel."""
  mean = jnp.mean(x, axis=(0, 1), keepdims=True)
  centred = x - mean
  return centred * jax.lax.rsqrt(jnp.mean(jnp.square(centred), axis=(0, 1), keepdims=True) + eps)


def _conv(module: nn.Module, *args, **kwargs) -> layers.Conv:
  """A :class:`dipjax.layers.Conv` with ``module``'s ``precision`` and ``conv_impl``."""
  return layers.Conv(*args, precision=module.precision, conv_impl=module.conv_impl, **kwargs)


def _check_numerics(module: nn.Module) -> None:
  conv_lib.check_precision(module.precision)
  conv_lib.resolve_impl(module.conv_impl)


def _check_choice(name: str, value, choices) -> None:
  if value not in choices:
    raise ValueError(f"`{name}` must be one of {choices}, got {value!r}.")


def _check_input(z: jax.Array, min_size: int, multiple: int, what: str) -> None:
  if z.ndim != 3:
    raise ValueError(f"`z` must be (H, W, C), got shape {z.shape}.")
  h, w = z.shape[:2]
  if min(h, w) < min_size or h % multiple or w % multiple:
    raise ValueError(f"`z` of spatial size {h}x{w} is not accepted by {what}: H and W must be >= {min_size} "
                     f"and multiples of {multiple} (pad with dipjax.canvas.canvas_for).")


# ---------------------------------------------------------------------------
# UNet (models/unet.py).
# ---------------------------------------------------------------------------


class UNet(nn.Module):
  r"""The reference's ``UNet``: a 4-pooling (+ ``more_layers``) U-Net with ReLU.

  Widths ``f = [64, 128, 256, 512, 1024] // feature_scale``. Encoder: ``start =
  unetConv2(C_in, f0)``, then ``down_i = maxpool2 -> unetConv2(f_{i-1}, f_i)`` for
  ``i = 1..4`` and ``more_layers`` further ``maxpool2 -> unetConv2(f4, f4)``, where
  ``unetConv2 = 2 x (conv3x3 -> norm -> ReLU)``. With ``concat_x`` each stage outputs
  ``f_i - C_in`` channels and the input, average-pooled to its resolution, is
  concatenated. Decoder: ``unetUp(f_i)`` = upsample (``'deconv'``: ConvTranspose 4/2/1,
  ``2 f_i -> f_i``; else ``nn.Upsample`` + conv3x3 ``2 f_i -> f_i``), concat
  ``[up, skip]`` (skip centre-cropped), ``unetConv2(2 f_i, f_i)`` **without norm**; the
  ``more_layers`` ups keep ``f4``. Output: ``conv1x1(f0 -> out)`` (+ sigmoid).

  ``norm``: ``'bn'`` (BatchNorm, batch statistics, affine), ``'in'`` (InstanceNorm2d,
  no affine parameters, as ``torch.nn.InstanceNorm2d``'s default) or ``'none'``; for
  one image both normalise with the same spatial statistics. The reference breaks for
  ``more_layers >= 2`` (``self.more`` is undefined); here the intended order is used.
  The transposed conv always has a bias (as the reference); ``padding`` applies to the
  3x3 and 1x1 convs.
  """

  out_channels: int = 3
  feature_scale: int = 4
  more_layers: int = 0
  concat_x: bool = False
  upsample: str = "deconv"  # 'deconv' | 'nearest' | 'bilinear'
  padding: str = "zero"  # 'zero' | 'reflect'
  norm: str = "in"  # 'bn' | 'in' | 'none' (the class default of the reference is InstanceNorm2d)
  need_sigmoid: bool = True
  use_bias: bool = True
  bn_scale_init: str = "ones"
  precision: str = "float32"  # conv arithmetic: 'float32' | 'float32_highest' | 'bfloat16' (dipjax.conv.PRECISIONS)
  conv_impl: str = "auto"  # conv path: 'auto' (by backend) | 'matmul' | 'rows' | 'xla' (dipjax.conv)

  @property
  def num_downs(self) -> int:
    return 4 + self.more_layers

  @property
  def min_size(self) -> int:
    """Smallest H, W: ``2**(4 + more_layers)`` (the deepest map is then 1x1)."""
    return 2 ** self.num_downs

  @property
  def size_multiple(self) -> int:
    """H, W must be multiples of ``2**(4 + more_layers)``: max pooling floors, the crop would shrink the output."""
    return 2 ** self.num_downs

  @property
  def filters(self) -> tuple[int, ...]:
    return tuple(f // self.feature_scale for f in (64, 128, 256, 512, 1024))

  def input_shape(self, height: int, width: int, channels: int) -> tuple[int, int, int]:
    """Shape of ``z`` for an ``height x width`` output: the same size."""
    return (height, width, channels)

  def check(self, c_in: int) -> None:
    """Raises ``ValueError`` on an inconsistent configuration."""
    _check_choice("upsample", self.upsample, UNET_UPSAMPLE_MODES)
    _check_choice("padding", self.padding, layers.PADDINGS)
    _check_choice("norm", self.norm, NORMS)
    _check_choice("bn_scale_init", self.bn_scale_init, layers.BN_SCALE_INITS)
    _check_numerics(self)
    if self.more_layers < 0:
      raise ValueError(f"`more_layers` must be >= 0, got {self.more_layers!r}.")
    if self.feature_scale < 1 or min(self.filters) < 1:
      raise ValueError(f"`feature_scale` must be in 1..64, got {self.feature_scale!r}.")
    if self.concat_x and self.filters[0] <= c_in:
      raise ValueError(f"`concat_x` needs f0 = {self.filters[0]} > C_in = {c_in} (feature_scale {self.feature_scale}).")

  def _block(self, x: jax.Array, features: int, name: str, norm: bool) -> jax.Array:
    """``unetConv2``: two ``conv3x3 -> [norm] -> ReLU``."""
    use_norm = norm and self.norm != "none"
    for j in range(2):
      x = _conv(self, features, 3, use_bias=self.use_bias, padding=self.padding, bias_cancelled=use_norm,
                      name=f"{name}_conv{j}")(x)
      if use_norm and self.norm == "bn":
        x = layers.BatchNorm(scale_init=self.bn_scale_init, name=f"{name}_bn{j}")(x)
      elif use_norm:
        x = instance_norm(x)
      x = jax.nn.relu(x)
    return x

  def _up(self, x: jax.Array, skip: jax.Array, features: int, name: str) -> jax.Array:
    """``unetUp``: upsample to ``features`` channels, concat ``[up, skip]``, ``unetConv2`` without norm."""
    if self.upsample == "deconv":
      x = ConvTranspose(features, precision=self.precision, conv_impl=self.conv_impl, name=f"{name}_deconv")(x)
    else:
      x = layers.upsample2x(x, self.upsample)
      x = _conv(self, features, 3, use_bias=self.use_bias, padding=self.padding, name=f"{name}_upconv")(x)
    return self._block(layers.concat_centre_crop([x, skip]), features, name, norm=False)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    _check_input(z, self.min_size, self.size_multiple, f"UNet with {self.num_downs} poolings")
    c_in = z.shape[-1]
    self.check(c_in)
    f = self.filters
    width = lambda n: n - c_in if self.concat_x else n
    pyramid = [z]
    for _ in range(self.num_downs):
      pyramid.append(layers.pool2x(pyramid[-1], "avg"))
    with_x = lambda x, i: jnp.concatenate([x, pyramid[i]], axis=-1) if self.concat_x else x

    feats = [with_x(self._block(z, width(f[0]), "start", norm=True), 0)]
    stage_widths = list(f[1:]) + [f[4]] * self.more_layers
    for i, n in enumerate(stage_widths, start=1):
      feats.append(with_x(self._block(layers.pool2x(feats[-1], "max"), width(n), f"down{i}", norm=True), i))
    x = feats[-1]
    for j in reversed(range(self.more_layers)):  # more_ups[j] pairs with the output of stage 4 + j
      x = self._up(x, feats[4 + j], f[4], f"more_up{j}")
    for i in (4, 3, 2, 1):
      x = self._up(x, feats[i - 1], f[i - 1], f"up{i}")
    out = _conv(self, self.out_channels, 1, use_bias=self.use_bias, padding=self.padding, name="final")(x)
    return jax.nn.sigmoid(out) if self.need_sigmoid else out


# ---------------------------------------------------------------------------
# ResNet (models/resnet.py).
# ---------------------------------------------------------------------------


class ResNet(nn.Module):
  r"""The reference's ``ResNet``: a full-resolution residual stack, no down/upsampling.

  ``conv3x3(C_in -> C, bias, padding) -> act``, then ``num_blocks`` residual blocks
  ``x + BN(conv3x3(act(BN(conv3x3(x)))))`` (convs zero-padded, no bias, no activation
  after the sum), then ``conv3x3(C -> C, zero pad) -> BN``, ``conv3x3(C -> out, bias,
  padding)`` and a sigmoid. Parameters: ``9 C_in C + C + num_blocks (18 C^2 + 4 C) +
  9 C^2 + 3 C + 9 C out + out``.

  The reference appends the sigmoid whatever its ``need_sigmoid`` says (kept here as
  the default ``need_sigmoid=True``); ``need_residual=False`` drops the skip sums.
  """

  out_channels: int = 3
  num_blocks: int = 8
  num_channels: int = 32
  need_residual: bool = True
  activation: str = "leaky_relu"
  padding: str = "reflect"  # of the first and last conv (the blocks zero-pad, as the reference)
  need_sigmoid: bool = True
  bn_scale_init: str = "ones"
  precision: str = "float32"  # conv arithmetic: 'float32' | 'float32_highest' | 'bfloat16' (dipjax.conv.PRECISIONS)
  conv_impl: str = "auto"  # conv path: 'auto' (by backend) | 'matmul' | 'rows' | 'xla' (dipjax.conv)

  @property
  def min_size(self) -> int:
    """Smallest H, W: 2 (a reflection pad of 1 needs two pixels)."""
    return 2

  @property
  def size_multiple(self) -> int:
    """Any size: every layer keeps H, W."""
    return 1

  def input_shape(self, height: int, width: int, channels: int) -> tuple[int, int, int]:
    """Shape of ``z`` for an ``height x width`` output: the same size."""
    return (height, width, channels)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    _check_input(z, self.min_size, self.size_multiple, "ResNet")
    _check_choice("activation", self.activation, layers.ACTIVATIONS)
    _check_numerics(self)
    _check_choice("padding", self.padding, layers.PADDINGS)
    if self.num_blocks < 0 or self.num_channels < 1:
      raise ValueError(f"`num_blocks` must be >= 0 and `num_channels` >= 1, got {self.num_blocks!r}, "
                       f"{self.num_channels!r}.")
    c = self.num_channels
    act = functools.partial(layers.activation, kind=self.activation)
    bn = functools.partial(layers.BatchNorm, scale_init=self.bn_scale_init)
    x = act(_conv(self, c, 3, padding=self.padding, name="first_conv")(z))
    for b in range(self.num_blocks):
      y = _conv(self, c, 3, use_bias=False, padding="zero", name=f"block{b}_conv0")(x)
      y = act(bn(name=f"block{b}_bn0")(y))
      y = _conv(self, c, 3, use_bias=False, padding="zero", name=f"block{b}_conv1")(y)
      y = bn(name=f"block{b}_bn1")(y)
      x = x + y if self.need_residual else y
    x = _conv(self, c, 3, padding="zero", bias_cancelled=True, name="last_conv")(x)
    x = bn(name="last_bn")(x)
    out = _conv(self, self.out_channels, 3, padding=self.padding, name="out_conv")(x)
    return jax.nn.sigmoid(out) if self.need_sigmoid else out


# ---------------------------------------------------------------------------
# Deep Decoder (Heckel & Hand 2019).
# ---------------------------------------------------------------------------


class DeepDecoder(nn.Module):
  r"""Heckel & Hand's deep decoder (``decodernw`` of their supplement, default settings).

  For ``l = 0 .. num_layers-1``: ``conv1x1(-> k, no bias)``, bilinear 2x upsampling
  (``align_corners=False``; not after the last layer), ReLU, then channel
  normalisation (BatchNorm with the statistics of the one image, affine); the output
  is ``sigmoid(conv1x1(k -> out, no bias))``. The input is a fixed seed of shape
  ``(H / 2**(num_layers-1), W / 2**(num_layers-1), k)``, ``U(0, 0.1)`` in the
  reference (``dipjax.make_input(key, seed[:2], channels=k)``; see :meth:`seed_shape`),
  so the output is ``2**(num_layers-1)`` times the seed: 16x16 -> 512x512 for 6 layers.

  The supplement's ``num_channels_up=[k]*5`` gives ``num_layers = 6`` (it appends one
  layer), the paper's ``d = 6``. Parameters (``C_in = k``): ``num_layers (k^2 + 2k) +
  k out``: 25,536 for ``k = 64``, 100,224 for ``k = 128`` (3 output channels).
  """

  out_channels: int = 3
  channels: int = 64  # k
  num_layers: int = 6  # d: 1x1 conv layers before the output conv; num_layers - 1 upsamplings
  upsample: str = "bilinear"  # 'bilinear' | 'nearest'
  need_sigmoid: bool = True
  bn_scale_init: str = "ones"
  precision: str = "float32"  # conv arithmetic: 'float32' | 'float32_highest' | 'bfloat16' (dipjax.conv.PRECISIONS)
  conv_impl: str = "auto"  # conv path: 'auto' (by backend) | 'matmul' | 'rows' | 'xla' (dipjax.conv)

  @property
  def factor(self) -> int:
    """Output size / seed size: ``2**(num_layers - 1)``."""
    return 2 ** (self.num_layers - 1)

  @property
  def min_size(self) -> int:
    """Smallest output H, W: ``2**(num_layers - 1)`` (a seed side of 1; the seed must have 2 pixels or more)."""
    return self.factor

  @property
  def size_multiple(self) -> int:
    """Output H, W must be multiples of ``2**(num_layers - 1)``."""
    return self.factor

  def seed_shape(self, height: int, width: int) -> tuple[int, int, int]:
    """Shape ``(height / 2**(L-1), width / 2**(L-1), k)`` of the seed for an ``height x width`` output."""
    if height % self.factor or width % self.factor or min(height, width) < 1:
      raise ValueError(f"DeepDecoder output size {height}x{width} must be a positive multiple of {self.factor} "
                       f"({self.num_layers} layers).")
    if height == width == self.factor:
      raise ValueError(f"DeepDecoder output size {height}x{width} is too small for {self.num_layers} layers: its seed "
                       "would be one pixel, where channel normalisation zeroes every feature and the output is "
                       "constant; use fewer layers or a larger image.")
    return (height // self.factor, width // self.factor, self.channels)

  def input_shape(self, height: int, width: int, channels: int | None = None) -> tuple[int, int, int]:
    """Shape of ``z`` for an ``height x width`` output (:meth:`seed_shape`; ``channels`` is ignored, k is used)."""
    del channels
    return self.seed_shape(height, width)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    if z.ndim != 3:
      raise ValueError(f"`z` must be (H, W, C), got shape {z.shape}.")
    if self.num_layers < 1 or self.channels < 1:
      raise ValueError(f"`num_layers` and `channels` must be >= 1, got {self.num_layers!r}, {self.channels!r}.")
    _check_choice("upsample", self.upsample, layers.UPSAMPLE_MODES)
    _check_numerics(self)
    x = z
    for i in range(self.num_layers):
      x = _conv(self, self.channels, 1, use_bias=False, name=f"conv{i}")(x)
      if i < self.num_layers - 1:
        x = layers.upsample2x(x, self.upsample)
      x = layers.BatchNorm(scale_init=self.bn_scale_init, name=f"bn{i}")(jax.nn.relu(x))
    out = _conv(self, self.out_channels, 1, use_bias=False, name="out_conv")(x)
    return jax.nn.sigmoid(out) if self.need_sigmoid else out


class Pixels(nn.Module):
  """The identity ``f(z) = z``, no parameters: fitted with ``optimize_input=True`` the pixels are the variables.

  The "no prior" baseline of the prior-effect study and the "TV only" prior of feature
  inversion / activation maximisation (add ``tv_weight`` to the fit for the TV prior).

  Example:
    >>> import dipjax
    >>> loop = dipjax.make_fit_loop(Pixels(), optimize_input=True, input_channels=3)
    >>> loop.init(jax.random.key(0), (8, 8)).params.shape  # the 8 x 8 x 3 pixels, nothing else
    (192,)
  """

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    return z


def input_shape(model: nn.Module, height: int, width: int, channels: int = 32) -> tuple[int, int, int]:
  """Shape of the input ``z`` that makes ``model`` output an ``height x width`` image.

  ``model.input_shape(...)`` where defined (the Deep Decoder's seed is smaller than
  the image); otherwise ``(height, width, channels)`` (SkipNet, UNet, ResNet).

  Example:
    >>> input_shape(DeepDecoder(), 512, 256)
    (16, 8, 64)
  """
  if hasattr(model, "input_shape"):
    return tuple(model.input_shape(height, width, channels))
  return (height, width, channels)


# ---------------------------------------------------------------------------
# Named configurations.
# ---------------------------------------------------------------------------

_SIX = (16, 32, 64, 128, 128, 128)


def unet(**overrides) -> UNet:
  """``get_net(.., 'UNet', 'reflection', 'bilinear')``: feature_scale 4, BatchNorm, bilinear, reflection pad."""
  return UNet(**{**dict(feature_scale=4, more_layers=0, upsample="bilinear", padding="reflect", norm="bn"),
                 **overrides})


def unet_deconv(**overrides) -> UNet:
  """Large-hole inpainting "UNET" (Fig. 8): feature_scale 8, more_layers 1, deconv, zero pad, InstanceNorm."""
  return UNet(**{**dict(feature_scale=8, more_layers=1, upsample="deconv", padding="zero", norm="in"), **overrides})


def resnet(**overrides) -> ResNet:
  """Large-hole inpainting "ResNet" (Fig. 8): ``ResNet(C_in, 3, 8, 32, act_fun='LeakyReLU')``, reflection pad."""
  return ResNet(**{**dict(num_blocks=8, num_channels=32, activation="leaky_relu", padding="reflect"), **overrides})


def deep_decoder(**overrides) -> DeepDecoder:
  """Deep Decoder k = 64, 6 layers (25,536 parameters): seed ``(H/32, W/32, 64)``."""
  return DeepDecoder(**{**dict(channels=64, num_layers=6), **overrides})


def deep_decoder_128(**overrides) -> DeepDecoder:
  """Deep Decoder k = 128, 6 layers (100,224 parameters; the supplement's denoising notebook default)."""
  return DeepDecoder(**{**dict(channels=128, num_layers=6), **overrides})


def _skip_depth(depth: int, overrides: dict) -> models.SkipNet:
  """Library inpainting ``skip_depth{depth}``: [16,32,64,128,128,128][:depth], no skips, kd 5, ku 3, no 1x1."""
  ch = _SIX[:depth]
  cfg = dict(channels_down=ch, channels_up=ch, channels_skip=(0,) * depth, kernel_size_down=5, kernel_size_up=3,
             kernel_size_skip=1, downsample="stride", upsample="nearest", padding="reflect", need_1x1_up=False)
  return models.SkipNet(**{**cfg, **overrides})


def skip_depth2(**overrides) -> models.SkipNet:
  """Library inpainting hourglass of depth 2 (Fig. 8 ablation)."""
  return _skip_depth(2, overrides)


def skip_depth4(**overrides) -> models.SkipNet:
  """Library inpainting hourglass of depth 4 (Fig. 8 ablation)."""
  return _skip_depth(4, overrides)


def skip_depth6(**overrides) -> models.SkipNet:
  """Library inpainting hourglass of depth 6 (Fig. 8; 2,996,467 parameters at C_in = 1, dip_reference §1.2)."""
  return _skip_depth(6, overrides)


def skip_noskip(**overrides) -> models.SkipNet:
  """The default net (128 x 5, bilinear, reflection) without skip connections (``channels_skip = 0``)."""
  cfg = dict(channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(0,) * 5, kernel_size_down=3,
             kernel_size_up=3, upsample="bilinear", padding="reflect", need_1x1_up=True)
  return models.SkipNet(**{**cfg, **overrides})


def skip_deconv(**overrides) -> models.SkipNet:
  """The default net (128 x 5, skips 4) with learned transposed-conv (4/2/1) instead of bilinear upsampling."""
  return models.skip_default(**{"upsample": "deconv", **overrides})


def skip_bicubic(**overrides) -> models.SkipNet:
  """The default net (128 x 5, skips 4) with bicubic instead of bilinear upsampling."""
  return models.skip_default(**{"upsample": "bicubic", **overrides})


def skip_feature_inversion(**overrides) -> models.SkipNet:
  """AlexNet inversion net (§2.6): 6 levels, k [7,7,5,5,3,3], ns 4, avg, nearest, zero pad (2,606,763 at C_in 32)."""
  k = (7, 7, 5, 5, 3, 3)
  cfg = dict(channels_down=_SIX, channels_up=_SIX, channels_skip=(4,) * 6, kernel_size_down=k, kernel_size_up=k,
             downsample="avg", upsample="nearest", padding="zero")
  return models.SkipNet(**{**cfg, **overrides})


def skip_activation_max(**overrides) -> models.SkipNet:
  """Activation maximisation net (§2.7): 6 levels, ns [0,4,4,4,4,4], mixed k, avg, bilinear (2,948,567 at C_in 32)."""
  cfg = dict(channels_down=_SIX, channels_up=_SIX, channels_skip=(0, 4, 4, 4, 4, 4),
             kernel_size_down=(5, 3, 5, 5, 3, 5), kernel_size_up=(5, 3, 5, 3, 5, 3), downsample="avg",
             upsample="bilinear", padding="reflect")
  return models.SkipNet(**{**cfg, **overrides})


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "unet": unet,
    "unet_deconv": unet_deconv,
    "resnet": resnet,
    "deep_decoder": deep_decoder,
    "deep_decoder_128": deep_decoder_128,
    "skip_depth2": skip_depth2,
    "skip_depth4": skip_depth4,
    "skip_depth6": skip_depth6,
    "skip_noskip": skip_noskip,
    "skip_deconv": skip_deconv,
    "skip_bicubic": skip_bicubic,
    "skip_feature_inversion": skip_feature_inversion,
    "skip_activation_max": skip_activation_max,
}


def get_architecture(name: str, **overrides) -> nn.Module:
  """Builds the named configuration (``ARCHITECTURES`` keys) with field overrides.

  Example:
    >>> get_architecture("deep_decoder", channels=8).channels
    8
  """
  if name not in ARCHITECTURES:
    raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}.")
  return ARCHITECTURES[name](**overrides)


NETWORKS: tuple[str, ...] = tuple(sorted(set(models.PRESETS) | set(ARCHITECTURES)))  # every name `get_network` takes


def get_network(name: str, **overrides) -> nn.Module:
  """Builds any named network: a :data:`dipjax.models.PRESETS` SkipNet or an :data:`ARCHITECTURES` entry.

  The one registry behind a preset's ``model`` field and the entry points' ``--net``.

  Example:
    >>> type(get_network("tiny")).__name__, type(get_network("unet", out_channels=1)).__name__
    ('SkipNet', 'UNet')
  """
  if name in models.PRESETS:
    return models.get_model(name, **overrides)
  if name in ARCHITECTURES:
    return ARCHITECTURES[name](**overrides)
  raise ValueError(f"unknown network {name!r}; choose one of {list(NETWORKS)}.")
