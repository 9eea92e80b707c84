"""An N1 given as its predictions: any classifier, trained by any framework, made measurable.

A predictions file is an ``.npz`` holding two integer arrays, ``d2`` and ``d3``: N1's predicted
labels of D2 (the last ``n2_size`` training images) and of D3 (the first ``test_size`` test images),
in that order (``python -m learnjax.data.export`` writes exactly those images). No N1 is trained:
every seed's N2 learns D2 with the same labels, and N1's test accuracy is read off ``d3``.

The file's SHA-256 is stored with the N1 record, so a changed file never silently meets results
measured with the old one.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from learnjax.errors import LearnjaxError

MODEL = "predictions"   # the n1.model value that selects this source
KEYS = ("d2", "d3")


def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def name_of(path: str, name: str | None = None) -> str:
  """N1's name in tables: ``name`` if given, else the file's stem."""
  stem = os.path.splitext(os.path.basename(path))[0]
  return (name or stem).replace("__", "_") or "predictions"


def check_labels(labels, key: str, size: int, num_classes: int, source: str) -> np.ndarray:
  """An (N,) integer label array of the right length and range, as int32."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer)
                              or np.issubdtype(labels.dtype, np.bool_)):
    raise LearnjaxError(f"{source}: {key} must be a 1-d array of integer labels, got "
                        f"{labels.dtype} {labels.shape}")
  if len(labels) != size:
    part = "D2 (data.n2_size)" if key == "d2" else "D3 (data.test_size)"
    raise LearnjaxError(f"{source}: {key} has {len(labels)} labels but {part} has {size} images; "
                        f"predict on the images python -m learnjax.data.export writes")
  if size and (labels.min() < 0 or labels.max() >= num_classes):
    raise LearnjaxError(f"{source}: {key} holds labels {int(labels.min())}..{int(labels.max())}, "
                        f"outside 0..{num_classes - 1} (the data set's {num_classes} classes)")
  return labels.astype(np.int32)


def load(path: str, d2_size: int, d3_size: int, num_classes: int) -> tuple[np.ndarray, np.ndarray,
                                                                             str]:
  """(d2, d3, sha256) of a predictions file, checked against the splits; one error otherwise."""
  if not path:
    raise LearnjaxError("n1.model=predictions needs --config.n1.predictions=FILE.npz (integer "
                        "arrays d2 and d3: N1's labels of D2 and D3)")
  if not os.path.isfile(path):
    raise LearnjaxError(f"no such predictions file: {path}")
  try:
    with np.load(path, allow_pickle=False) as data:
      missing = [k for k in KEYS if k not in data.files]
      arrays = {k: data[k] for k in KEYS if k in data.files}
  except Exception as e:  # noqa: BLE001  a truncated or foreign file
    raise LearnjaxError(f"cannot read {path} as .npz: {' '.join(str(e).split())}") from None
  if missing:
    raise LearnjaxError(f"{path} lacks {', '.join(missing)}; a predictions file holds integer "
                        f"arrays d2 and d3 (N1's labels of D2 and D3)")
  d2 = check_labels(arrays["d2"], "d2", d2_size, num_classes, path)
  d3 = check_labels(arrays["d3"], "d3", d3_size, num_classes, path)
  return d2, d3, file_sha256(path)
