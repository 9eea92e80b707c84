"""What identifies the data a workdir's results were computed on.

The record holds content hashes of the arrays actually used: the whole training split (D1 and D2
come from it, and its mean and standard deviation normalise every image), the test images and
labels of D3, and where each of D1, D2 and D3 lies in its split. A data set replaced under the same
path or name (another .npz, another tensorflow-datasets version) changes a hash, and a workdir
holding results refuses it instead of mixing an N1 of the old data with an N2 of the new.
"""

from __future__ import annotations

import hashlib

import numpy as np

# Keys in the order a change is reported.
_NAMES = {"dataset": "data set", "num_classes": "class count", "image_shape": "image shape",
          "train_images": "training images", "train_labels": "training labels",
          "d1": "D1 positions", "d2": "D2 positions", "d3": "D3 positions",
          "d3_images": "D3 images", "d3_labels": "D3 labels"}


def array_hash(x: np.ndarray) -> str:
  """sha256 of an array's dtype, shape and bytes."""
  x = np.ascontiguousarray(x)
  digest = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
  digest.update(x.tobytes())
  return digest.hexdigest()


def _positions(index: np.ndarray, split: str) -> str:
  index = np.asarray(index)
  if index.size and np.array_equal(index, np.arange(index[0], index[0] + index.size)):
    return f"{split}[{int(index[0])}:{int(index[0]) + index.size}]"
  return f"{split}[sha256 {array_hash(index)}]"


def fingerprint(pool, splits) -> dict:
  """The data record of a pool cut into D1, D2 and D3."""
  d3 = splits.d3.index
  return {"dataset": pool.name, "num_classes": int(pool.num_classes),
          "image_shape": [int(s) for s in pool.image_shape],
          "train_images": array_hash(pool.x_train), "train_labels": array_hash(pool.y_train),
          "d1": _positions(splits.d1.index, "train"), "d2": _positions(splits.d2.index, "train"),
          "d3": _positions(d3, "test"),
          "d3_images": array_hash(pool.x_test[d3]), "d3_labels": array_hash(pool.y_test[d3])}


def identity(record: dict) -> dict:
  """The part of a data record that identifies the data: a local .npz is its content (the hashes),
  whatever its file is called or wherever it lies, so its file name is not part of it."""
  name = record.get("dataset")
  if isinstance(name, str) and name.endswith(".npz"):
    return {**record, "dataset": "npz"}
  return record


def describe_changes(old: dict, new: dict) -> str:
  """'training images: sha256 1a2b3c4d.. -> 5e6f7a8b.., ...', or '' when nothing changed."""
  old, new = identity(old), identity(new)
  def short(value):
    text = str(value)
    return f"sha256 {text[:8]}.." if len(text) == 64 else text
  changes = [f"{label}: {short(old.get(key))} -> {short(new.get(key))}"
             for key, label in _NAMES.items() if old.get(key) != new.get(key)]
  return ", ".join(changes[:4])
