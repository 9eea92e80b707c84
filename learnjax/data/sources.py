"""Where images come from: the embedded digits, a local .npz, or any tensorflow-datasets set.

Every source returns a :class:`Pool`: uint8 NHWC images and integer labels for a training and a
test split. The protocol's D1/D2/D3 are cut from a pool by :mod:`learnjax.data.splits`.

The embedded default, ``digits``, is scikit-learn's bundled 8x8 handwritten digits (1,797
images, 10 classes, derived from the UCI optical digits set), scaled from 0..16 to 0..255,
shuffled once with ``numpy.random.RandomState(0)`` and cut into 1,500 training and 297 test
images. It ships inside the package, so the main job needs no download.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os

import numpy as np

from learnjax.errors import LearnjaxError

TFDS_NAMES = ("mnist", "cifar10", "cifar100")  # examples; any tfds image classification set works
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


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


def load_pool(data_config) -> Pool:
  """The pool named by ``data_config.name``: 'digits', 'npz' (with ``npz_path``) or a tfds name."""
  name = data_config.name
  if name == "digits":
    with importlib.resources.files("learnjax.data").joinpath("digits.npz").open("rb") as f:
      return pool_from_arrays("digits", np.load(f), source="the embedded digits")
  if name == "npz":
    return load_npz(data_config.npz_path)
  if not name or not isinstance(name, str):
    raise LearnjaxError("data.name is empty; choose digits, npz (with --config.data.npz_path) or "
                        "a tensorflow-datasets name (mnist, cifar10, fashion_mnist...)")
  from learnjax.data import tfds_source  # tensorflow-datasets is imported only when used
  return tfds_source.load(name, data_dir=data_config.get("data_dir") or None)


def load_npz(path: str | None) -> Pool:
  """A pool from an .npz holding x_train, y_train, x_test, y_test (uint8 NHWC, integer labels)."""
  if not path:
    raise LearnjaxError("data.name=npz needs --config.data.npz_path=FILE.npz")
  if not os.path.isfile(path):
    raise LearnjaxError(f"no such .npz file: {path}")
  try:
    arrays = np.load(path)
    missing = [k for k in NPZ_KEYS if k not in arrays.files]
  except Exception as e:  # a truncated or foreign file
    raise LearnjaxError(f"cannot read {path} as .npz: {e}") from None
  if missing:
    raise LearnjaxError(f"{path} lacks {', '.join(missing)}; an .npz source needs "
                        f"{', '.join(NPZ_KEYS)} (uint8 images N,H,W,C and integer labels)")
  return pool_from_arrays(os.path.basename(path), arrays, source=path)


def pool_from_arrays(name: str, arrays, source: str, num_classes: int | None = None,
                     class_names=None) -> Pool:
  x_train, x_test = (_images(arrays[k], k, source) for k in ("x_train", "x_test"))
  y_train, y_test = (_labels(arrays[k], k, source) for k in ("y_train", "y_test"))
  for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
    if len(x) != len(y):
      raise LearnjaxError(f"{source}: x_{split} has {len(x)} images but y_{split} {len(y)} labels")
  if x_train.shape[1:] != x_test.shape[1:]:
    raise LearnjaxError(f"{source}: train images {x_train.shape[1:]} and test images "
                        f"{x_test.shape[1:]} differ in shape")
  if num_classes is None:
    num_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
  if min(y_train.min(initial=0), y_test.min(initial=0)) < 0 or num_classes < 2:
    raise LearnjaxError(f"{source}: labels must be integers 0..C-1 with C >= 2")
  if class_names is not None and len(class_names) != num_classes:
    raise LearnjaxError(f"{source}: {len(class_names)} class names for {num_classes} classes")
  return Pool(name, x_train, y_train, x_test, y_test, num_classes,
              tuple(str(c) for c in class_names) if class_names is not None else None)


def _images(x, key: str, source: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim == 3:  # (N, H, W) greyscale
    x = x[..., None]
  if x.ndim != 4:
    raise LearnjaxError(f"{source}: {key} must be images (N, H, W, C), got shape {x.shape}")
  if x.dtype != np.uint8:
    raise LearnjaxError(f"{source}: {key} must be uint8 pixels 0..255, got {x.dtype}")
  return x


def _labels(y, key: str, source: str) -> np.ndarray:
  y = np.asarray(y)
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise LearnjaxError(f"{source}: {key} must be a 1-d array of integer labels, got "
                        f"{y.dtype} {y.shape}")
  return y.astype(np.int32)
