"""Where images come from: the embedded digits, a local .npz, or any tensorflow-datasets set.

Every source returns a :class:`~learnjax.data.pool.Pool`: uint8 NHWC images and integer labels
for a training and a test split. The protocol's D1/D2/D3 are cut from a pool by
:mod:`learnjax.data.splits`.

The embedded default, ``digits``, is scikit-learn's bundled 8x8 handwritten digits (1,797
images, 10 classes, derived from the UCI optical digits set), scaled from 0..16 to 0..255,
shuffled once with ``numpy.random.RandomState(0)`` and cut into 1,500 training and 297 test
images. It ships inside the package, so the main job needs no download.
"""

from __future__ import annotations

import importlib.resources
import os

import numpy as np

from learnjax.data.pool import NPZ_KEYS, TFDS_NAMES, Pool, pool_from_arrays  # noqa: F401
from learnjax.errors import LearnjaxError

def load_pool(data_config) -> Pool:
  """The pool named by ``data_config.name``: 'digits', 'npz' (with ``npz_path``) or a tfds name.

  Every call reads the files again: a caller that needs the pool twice keeps it (the command line
  checks the data, then hands that pool to the run)."""
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
  """A pool from an .npz holding x_train, y_train, x_test, y_test (uint8 NHWC, integer labels).

  An optional ``num_classes`` (a scalar) or ``class_names`` (strings) entry states the class count;
  without it the count is the largest label + 1.
  """
  if not path:
    raise LearnjaxError("data.name=npz needs --config.data.npz_path=FILE.npz")
  if not os.path.isfile(path):
    raise LearnjaxError(f"no such .npz file: {path}")
  try:
    with np.load(path) as data:
      missing = [k for k in NPZ_KEYS if k not in data.files]
      arrays = {k: data[k] for k in data.files if k in (*NPZ_KEYS, "num_classes", "class_names")}
  except ValueError as e:
    if "allow_pickle" in str(e):
      raise LearnjaxError(f"{path} holds Python objects (an object array), which learnjax does "
                          f"not load; store {', '.join(NPZ_KEYS)} as plain numeric arrays "
                          "(uint8 images N,H,W,C and integer labels)") from None
    raise LearnjaxError(f"cannot read {path} as .npz: {e}") from None
  except Exception as e:  # a truncated or foreign file
    raise LearnjaxError(f"cannot read {path} as .npz: {e}") from None
  if missing:
    raise LearnjaxError(f"{path} lacks {', '.join(missing)}; an .npz source needs "
                        f"{', '.join(NPZ_KEYS)} (uint8 images N,H,W,C and integer labels)")
  num_classes = arrays.get("num_classes")
  if num_classes is not None:
    if num_classes.shape != () or not np.issubdtype(num_classes.dtype, np.integer):
      raise LearnjaxError(f"{path}: num_classes must be one integer, got {num_classes.dtype} "
                          f"{num_classes.shape}")
    num_classes = int(num_classes)
  class_names = arrays.get("class_names")
  if class_names is not None:
    if class_names.ndim != 1 or class_names.dtype.kind not in "US":
      raise LearnjaxError(f"{path}: class_names must be a 1-d array of strings, got "
                          f"{class_names.dtype} {class_names.shape}")
    class_names = [c.decode() if isinstance(c, bytes) else str(c) for c in class_names]
  return pool_from_arrays(os.path.basename(path), arrays, source=path, num_classes=num_classes,
                          class_names=class_names)
