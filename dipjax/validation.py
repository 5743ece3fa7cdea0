"""Checks of numeric arguments at the library's boundary: one-line ``ValueError``s naming the argument and value.

Every public function that takes a step count, a rate, a noise level, a seed count
or a chunk size checks it with these (the entry points reuse them for their flags,
so a flag and the library argument it sets fail with the same message).

Example:
  >>> positive_int("num_steps", 10)
  10
  >>> finite("learning_rate", float("nan"), minimum=0.0, inclusive=False)
  Traceback (most recent call last):
  ...
  ValueError: `learning_rate` must be a finite number > 0.0, got nan.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(name: str, value) -> int:
  """``value`` as an int >= 1."""
  if not _is_int(value) or value < 1:
    raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
  return int(value)


def non_negative_int(name: str, value) -> int:
  """``value`` as an int >= 0."""
  if not _is_int(value) or value < 0:
    raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}.")
  return int(value)


def finite(name: str, value, *, minimum: Optional[float] = None, inclusive: bool = True,
           maximum: Optional[float] = None, maximum_inclusive: bool = True) -> float:
  """``value`` as a finite float within ``[minimum, maximum]`` (bounds optional, open with ``inclusive=False``)."""
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"`{name}` must be a number, got {value!r}.") from None
  bounds = []
  if minimum is not None:
    bounds.append(f"{'>=' if inclusive else '>'} {minimum}")
  if maximum is not None:
    bounds.append(f"{'<=' if maximum_inclusive else '<'} {maximum}")
  ok = math.isfinite(x)
  if ok and minimum is not None:
    ok = x >= minimum if inclusive else x > minimum
  if ok and maximum is not None:
    ok = x <= maximum if maximum_inclusive else x < maximum
  if not ok:
    raise ValueError(f"`{name}` must be a finite number{' ' + ' and '.join(bounds) if bounds else ''}, "
                     f"got {value!r}.")
  return x


def one_of(name: str, value, choices) -> str:
  """``value`` if it is one of ``choices``."""
  if value not in tuple(choices):
    raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}.")
  return value
