"""A PyTorch eager implementation of the DIP ``skip`` hourglass, for speed comparisons.

Written here from the description in dip_reference.md §1.1 (reflection padding,
stride-2 downsampling, bilinear or nearest upsampling, centre-crop concat, BN in
training mode, LeakyReLU 0.2, sigmoid output); it has the same parameter count as
:class:`dipjax.SkipNet` for the same settings. Used only by ``bench_speed.py``.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(c_in, c_out, k, stride=1):
  pad = (k - 1) // 2
  layers = [nn.ReflectionPad2d(pad)] if pad else []
  layers.append(nn.Conv2d(c_in, c_out, k, stride=stride, padding=0, bias=True))
  return nn.Sequential(*layers)


class _Level(nn.Module):

  def __init__(self, c_in, nd, nu, ns, i, upsample):
    super().__init__()
    last = i == len(nd) - 1
    self.skip = nn.Sequential(_conv(c_in, ns[i], 1), nn.BatchNorm2d(ns[i]), nn.LeakyReLU(0.2)) if ns[i] else None
    self.down = nn.Sequential(
        _conv(c_in, nd[i], 3, 2), nn.BatchNorm2d(nd[i]), nn.LeakyReLU(0.2),
        _conv(nd[i], nd[i], 3), nn.BatchNorm2d(nd[i]), nn.LeakyReLU(0.2))
    self.deeper = None if last else _Level(nd[i], nd, nu, ns, i + 1, upsample)
    self.up = nn.Upsample(scale_factor=2, mode=upsample)
    k = nd[i] if last else nu[i + 1]
    self.post = nn.Sequential(
        nn.BatchNorm2d(ns[i] + k),
        _conv(ns[i] + k, nu[i], 3), nn.BatchNorm2d(nu[i]), nn.LeakyReLU(0.2),
        _conv(nu[i], nu[i], 1), nn.BatchNorm2d(nu[i]), nn.LeakyReLU(0.2))

  def forward(self, x):
    d = self.down(x)
    if self.deeper is not None:
      d = self.deeper(d)
    d = self.up(d)
    if self.skip is not None:
      s = self.skip(x)
      h, w = min(s.shape[2], d.shape[2]), min(s.shape[3], d.shape[3])
      crop = lambda t: t[:, :, (t.shape[2] - h) // 2:(t.shape[2] - h) // 2 + h,
                         (t.shape[3] - w) // 2:(t.shape[3] - w) // 2 + w]
      d = torch.cat([crop(s), crop(d)], dim=1)
    return self.post(d)


class TorchSkip(nn.Module):
  """``skip(c_in, c_out, nd, nu, ns, upsample_mode, pad='reflection')`` with need1x1_up and sigmoid."""

  def __init__(self, c_in=32, c_out=3, nd=(128,) * 5, nu=(128,) * 5, ns=(4,) * 5, upsample="bilinear"):
    super().__init__()
    self.body = _Level(c_in, list(nd), list(nu), list(ns), 0, upsample)
    self.out = nn.Conv2d(nu[0], c_out, 1)

  def forward(self, z):
    return torch.sigmoid(self.out(self.body(z)))


def count_params(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())
