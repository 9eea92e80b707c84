"""An N1 given as its predictions: any classifier, trained by any framework, made measurable.

A predictions file is an ``.npz`` holding N1's predictions of D2 (the last ``n2_size`` training
images) and of D3 (the first ``test_size`` test images), as ``d2`` and ``d3``, and optionally of D1
(the first ``n1_size`` training images, the ones N1 is trained on) as ``d1``; ``python -m
learnjax.data.export`` writes exactly those images, in that order. Each array is one of:

- ``(N,)`` integer labels: one N1, the same labels for every seed;
- ``(S, N)`` integer labels: one row per N1 seed (S must equal the run's seeds), so S runs of a
  model are S seeds;
- ``(N, K)`` float scores (logits or probabilities, one column per class), argmaxed;
- ``(S, N, K)`` float scores, one N1 seed per row.

The dtype decides a 2-d array: integer means per-seed labels, float means scores, so no shape is
read two ways. No N1 is trained; with ``d1`` given, N1's training error is its error on D1.

The file's SHA-256 is stored with the N1 record, so a changed file never silently meets results
measured with the old one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from learnjax.errors import LearnjaxError

MODEL = "predictions"   # the n1.model value that selects this source
KEYS = ("d2", "d3")     # required; "d1" is optional
PARTS = {"d1": "D1 (data.n1_size)", "d2": "D2 (data.n2_size)", "d3": "D3 (data.test_size)"}
FORMAT = ("(N,) integer labels, (S, N) integer labels one row per seed, (N, K) float scores or "
          "(S, N, K) float scores")


@dataclasses.dataclass(frozen=True)
class Given:
  """An N1's predictions as (S, N) int32 labels per part; ``d1`` None where not given."""
  d2: np.ndarray
  d3: np.ndarray
  d1: np.ndarray | None = None
  sha256: str | None = None
  per_seed: bool = False    # the rows differ by seed (given as (S, N) or (S, N, K))


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


def labels_of(values, key: str, size: int, num_classes: int, seeds: int,
              source: str) -> tuple[np.ndarray, bool]:
  """(labels (seeds, size) int32, whether given per seed) of one part, by the module's rule."""
  try:
    values = np.asarray(values)
  except Exception as e:  # noqa: BLE001  ragged lists, objects...
    raise LearnjaxError(f"{source}: {key} is not an array ({e})") from None
  integer = np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.bool_)
  floating = np.issubdtype(values.dtype, np.floating)
  shape = "x".join(map(str, values.shape))
  part = PARTS[key]
  if not (integer and values.ndim in (1, 2) or floating and values.ndim in (2, 3)):
    raise LearnjaxError(f"{source}: {key} is {values.dtype} ({shape}); give {FORMAT}")
  if floating:
    if values.shape[-1] != num_classes:
      what = ("a column: labels must be an integer array (N,)" if values.shape[-1] == 1 else
              f"{values.shape[-1]} columns")
      raise LearnjaxError(f"{source}: {key} holds float scores ({shape}) with {what}, but the "
                          f"data has {num_classes} classes: one column per class")
    bad = ~np.isfinite(values).all(axis=-1)
    if bad.any():
      raise LearnjaxError(f"{source}: {key} has {int(bad.sum())} rows of scores not finite (NaN or "
                          "inf): N1's labels would be arbitrary")
    values = values.argmax(-1)
  rows = values.shape[0] if values.ndim == 2 else None
  if values.shape[-1] != size:
    raise LearnjaxError(f"{source}: {key} has {values.shape[-1]} labels but {part} has {size} "
                        "images; predict on the images python -m learnjax.data.export writes")
  if rows is not None and rows != seeds:
    raise LearnjaxError(f"{source}: {key} holds {rows} rows of labels (one per N1 seed) but the "
                        f"run has {seeds} seeds; give one row per seed, or (N,) labels for all")
  if size and (values.min() < 0 or values.max() >= num_classes):
    raise LearnjaxError(f"{source}: {key} holds labels {int(values.min())}..{int(values.max())}, "
                        f"outside 0..{num_classes - 1} (the data set's {num_classes} classes)")
  labels = values.astype(np.int32)
  return (labels if rows is not None else np.tile(labels, (seeds, 1))), rows is not None


def check_labels(labels, key: str, size: int, num_classes: int, source: str) -> np.ndarray:
  """An (N,) integer label array of the right length and range, as int32."""
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise LearnjaxError(f"{source}: {key} must be a 1-d array of integer labels, got "
                        f"{labels.dtype} {labels.shape}")
  return labels_of(labels, key, size, num_classes, 1, source)[0][0]


def given(arrays: dict, sizes: dict, num_classes: int, seeds: int, source: str,
          sha256: str | None = None) -> Given:
  """The :class:`Given` of ``{'d2': ..., 'd3': ..., ['d1': ...]}`` checked against the splits.

  sizes: {'d1': |D1|, 'd2': |D2|, 'd3': |D3|}."""
  parts = {k: labels_of(v, k, sizes[k], num_classes, seeds, source)
           for k, v in arrays.items() if k in PARTS and v is not None}
  return Given(d2=parts["d2"][0], d3=parts["d3"][0],
               d1=parts["d1"][0] if "d1" in parts else None, sha256=sha256,
               per_seed=any(p[1] for p in parts.values()))


def load(path: str, sizes: dict, num_classes: int, seeds: int) -> Given:
  """The checked :class:`Given` of a predictions file; one error otherwise."""
  if not path:
    raise LearnjaxError("n1.model=predictions needs --config.n1.predictions=FILE.npz (arrays d2 "
                        "and d3, optionally d1: N1's labels of D2 and D3, and of D1)")
  if not os.path.isfile(path):
    raise LearnjaxError(f"no such predictions file: {path}")
  try:
    with np.load(path, allow_pickle=False) as data:
      missing = [k for k in KEYS if k not in data.files]
      arrays = {k: data[k] for k in PARTS if k in data.files}
  except Exception as e:  # noqa: BLE001  a truncated or foreign file
    raise LearnjaxError(f"cannot read {path} as .npz: {' '.join(str(e).split())}") from None
  if missing:
    raise LearnjaxError(f"{path} lacks {', '.join(missing)}; a predictions file holds arrays d2 "
                        f"and d3 (N1's labels of D2 and D3) and optionally d1")
  return given(arrays, sizes, num_classes, seeds, path, file_sha256(path))
