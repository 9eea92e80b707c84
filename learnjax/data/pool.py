"""The labelled data set every source returns, and the checks every source's arrays pass.

A :class:`Pool` lives here, below both :mod:`learnjax.data.sources` (which picks a source by name)
and :mod:`learnjax.data.tfds_source` (one of those sources), so neither imports the other's module
to get it. :func:`pool_from_arrays` refuses anything that would train on wrong data without saying
so: images that are not uint8 (N, H, W, C) with C > 0, labels outside 0..C-1 or that do not fit an
int32, and a class count that the labels do not support.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from learnjax.errors import LearnjaxError

TFDS_NAMES = ("mnist", "cifar10", "cifar100")  # examples; any tfds image classification set works
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# A class count inferred from the largest label is refused past this (one stray label of 5,000,000
# would otherwise build a 5M-way output layer); a source that states its count may exceed it.
MAX_INFERRED_CLASSES = 10_000


@dataclasses.dataclass(frozen=True)
class Pool:
  """A labelled data set: uint8 images (N, H, W, C) and int32 labels, train and test."""
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  class_names: tuple[str, ...] | None = None   # from the data set's metadata, where it has them

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.x_train.shape[1:])


def pool_from_arrays(name: str, arrays, source: str, num_classes: int | None = None,
                     class_names=None) -> Pool:
  """A checked pool from x_train, y_train, x_test, y_test (a dict or an open .npz).

  ``num_classes`` (or ``class_names``) states the class count; without either it is the largest
  label + 1, which must not leave a class without any example.
  """
  x_train, x_test = (_images(arrays[k], k, source) for k in ("x_train", "x_test"))
  y_train, y_test = (_raw_labels(arrays[k], k, source) for k in ("y_train", "y_test"))
  for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
    if len(x) != len(y):
      raise LearnjaxError(f"{source}: x_{split} has {len(x)} images but y_{split} {len(y)} labels")
  for x, split, what in ((x_train, "train", "D1 and D2 are"), (x_test, "test", "D3 is")):
    if not len(x):
      raise LearnjaxError(f"{source}: x_{split} holds no images; {what} cut from the {split} "
                          f"split, so x_{split} and y_{split} need at least one example each")
  if x_train.shape[1:] != x_test.shape[1:]:
    raise LearnjaxError(f"{source}: train images {x_train.shape[1:]} and test images "
                        f"{x_test.shape[1:]} differ in shape")
  if class_names is not None:
    class_names = tuple(str(c) for c in class_names)
    if num_classes is not None and num_classes != len(class_names):
      raise LearnjaxError(f"{source}: num_classes {num_classes} but {len(class_names)} "
                          "class_names")
    num_classes = len(class_names)
  num_classes = _class_count(y_train, y_test, num_classes, source)
  return Pool(name, x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32),
              num_classes, class_names)


def _class_count(y_train, y_test, num_classes, source: str) -> int:
  lowest = min(int(y_train.min(initial=0)), int(y_test.min(initial=0)))
  highest = max(int(y_train.max(initial=0)), int(y_test.max(initial=0)))
  if lowest < 0:
    raise LearnjaxError(f"{source}: labels must be 0..C-1, found {lowest}")
  if num_classes is not None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
        or not 2 <= num_classes <= np.iinfo(np.int32).max:
      raise LearnjaxError(f"{source}: num_classes must be an integer >= 2, got {num_classes!r}")
    if highest >= num_classes:
      raise LearnjaxError(f"{source}: label {highest} is outside 0..{num_classes - 1} "
                          f"({num_classes} classes)")
    return int(num_classes)
  inferred = highest + 1
  if inferred > MAX_INFERRED_CLASSES:
    raise LearnjaxError(
        f"{source}: the largest label is {highest}, which would mean {inferred:,} classes "
        f"(more than {MAX_INFERRED_CLASSES:,}); labels must be 0..C-1. If the data set really "
        "has that many classes, state it with a num_classes (or class_names) entry in the .npz")
  if inferred < 2:
    raise LearnjaxError(f"{source}: labels must be integers 0..C-1 with C >= 2, got only 0")
  present = np.zeros(inferred, bool)
  present[y_train] = True
  present[y_test] = True
  absent = np.flatnonzero(~present)
  if absent.size:
    shown = ", ".join(map(str, absent[:5])) + (", ..." if absent.size > 5 else "")
    raise LearnjaxError(
        f"{source}: the largest label {highest} means {inferred} classes, but no image has label "
        f"{shown}; fix the labels, or state the class count with a num_classes (or class_names) "
        "entry in the .npz")
  return inferred


def _images(x, key: str, source: str) -> np.ndarray:
  x = np.asarray(x)
  if x.dtype == object:
    raise LearnjaxError(f"{source}: {key} holds Python objects, not uint8 pixels; store it as one "
                        "uint8 array (N, H, W, C)")
  if x.ndim == 3:  # (N, H, W) greyscale
    x = x[..., None]
  if x.ndim != 4:
    raise LearnjaxError(f"{source}: {key} must be images (N, H, W, C), got shape {x.shape}")
  if min(x.shape[1:]) < 1:
    raise LearnjaxError(f"{source}: {key} images must have height, width and channels > 0, got "
                        f"shape {x.shape}")
  if x.dtype != np.uint8:
    raise LearnjaxError(f"{source}: {key} must be uint8 pixels 0..255, got {x.dtype}")
  return x


def _raw_labels(y, key: str, source: str) -> np.ndarray:
  """The labels as given (not yet cast: a cast to int32 would wrap large values silently)."""
  y = np.asarray(y)
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise LearnjaxError(f"{source}: {key} must be a 1-d array of integer labels, got "
                        f"{y.dtype} {y.shape}")
  return y
