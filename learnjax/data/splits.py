"""The protocol's three disjoint parts of a pool, normalised.

D1 = the first ``n1_size`` training images, D2 = the last ``n2_size`` training images, D3 = the
first ``test_size`` test images (docs/protocol.md section 1). Left unset, n1_size and n2_size are the two
halves of the training split (the first half gets the odd image) and test_size is the whole test
split. Images are normalised per channel with the mean and standard deviation of the whole
training split (the pool D1 and D2 come from), and kept as float32 NHWC arrays on the host.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from learnjax.data.pool import Pool
from learnjax.errors import LearnjaxError


@dataclasses.dataclass(frozen=True)
class Split:
  x: np.ndarray       # float32 (N, H, W, C), normalised
  y: np.ndarray       # int32 (N,)
  index: np.ndarray   # positions of the examples in the pool's train or test split

  def __len__(self):
    return len(self.y)


@dataclasses.dataclass(frozen=True)
class Splits:
  d1: Split
  d2: Split
  d3: Split
  num_classes: int
  mean: np.ndarray
  std: np.ndarray


def split_sizes(pool: Pool, n1_size=None, n2_size=None, test_size=None) -> tuple[int, int, int]:
  """(|D1|, |D2|, |D3|), with the protocol's defaults, checked against the pool."""
  n_train, n_test = len(pool.y_train), len(pool.y_test)
  n1 = (n_train + 1) // 2 if n1_size is None else n1_size
  n2 = n_train // 2 if n2_size is None else n2_size
  n3 = n_test if test_size is None else test_size
  for name, value in (("n1_size", n1), ("n2_size", n2), ("test_size", n3)):
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise LearnjaxError(f"data.{name} must be a positive integer, got {value!r}")
  if n1 + n2 > n_train:
    raise LearnjaxError(f"D1 ({n1}) + D2 ({n2}) need {n1 + n2} training images, but "
                        f"{pool.name} has {n_train}; lower data.n1_size / data.n2_size")
  if n3 > n_test:
    raise LearnjaxError(f"D3 ({n3}) is larger than the {n_test} test images of {pool.name}")
  return int(n1), int(n2), int(n3)


def make_splits(pool: Pool, n1_size=None, n2_size=None, test_size=None) -> Splits:
  n1, n2, n3 = split_sizes(pool, n1_size, n2_size, test_size)
  pixels = pool.x_train.reshape(-1, pool.x_train.shape[-1]).astype(np.float64)
  mean = pixels.mean(axis=0)
  std = pixels.std(axis=0)
  std = np.where(std > 0, std, 1.0)

  def normalise(x):
    return ((x.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32))

  def part(x, y, index):
    return Split(normalise(x[index]), y[index], index)

  n_train = len(pool.y_train)
  return Splits(
      d1=part(pool.x_train, pool.y_train, np.arange(n1)),
      d2=part(pool.x_train, pool.y_train, np.arange(n_train - n2, n_train)),
      d3=part(pool.x_test, pool.y_test, np.arange(n3)),
      num_classes=pool.num_classes, mean=mean, std=std)
