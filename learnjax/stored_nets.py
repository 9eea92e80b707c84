"""A trained network as stored in a workdir: its summary numbers, its arrays, and back.

``result.json`` holds the summary (:func:`net_summary`); ``arrays.npz`` the predictions and
histories (:func:`net_arrays`); :func:`net_from_store` rebuilds the
:class:`~learnjax.training.TrainedNet`. N1 snapshot predictions are kept one small file per
(epoch, seed) while N1 trains (:class:`SnapshotCache`).
"""

from __future__ import annotations

import os

import numpy as np

from learnjax import training, storage


def net_summary(net: training.TrainedNet) -> dict:
  summary = {"epochs": net.epochs, "train_error": net.train_error,
             "final_learning_rate": net.learning_rate, "diverged": net.diverged,
             "diverged_epoch": net.diverged_epoch, "seconds": net.seconds}
  if net.layout is not None:
    summary["seed_layout"] = net.layout
  return summary


def net_arrays(prefix: str, net: training.TrainedNet) -> dict:
  arrays = {f"{prefix}_preds_d3": net.preds_d3}
  if net.log_probs_d3 is not None:   # float16: enough for a KL divergence, a quarter of float64
    arrays[f"{prefix}_log_probs_d3"] = np.asarray(net.log_probs_d3, np.float16)
  if net.preds_d2 is not None:
    arrays[f"{prefix}_preds_d2"] = net.preds_d2
  if net.preds_test is not None:
    arrays[f"{prefix}_preds_test"] = net.preds_test
  for epoch, (preds_d2, preds_d3) in net.snapshots.items():
    arrays[f"{prefix}_epoch{epoch}_preds_d2"] = preds_d2
    arrays[f"{prefix}_epoch{epoch}_preds_d3"] = preds_d3
  for name, values in net.history.items():
    arrays[f"{prefix}_history_{name}"] = values
  return arrays


def net_from_store(result: dict, arrays: dict, prefix: str) -> training.TrainedNet:
  history = {k[len(prefix) + 9:]: v for k, v in arrays.items()
             if k.startswith(f"{prefix}_history_")}
  snapshots = {e: (arrays[f"{prefix}_epoch{e}_preds_d2"], arrays[f"{prefix}_epoch{e}_preds_d3"])
               for e in result.get("snapshot_epochs", [])}
  return training.TrainedNet(
      snapshots=snapshots,
      preds_d3=arrays[f"{prefix}_preds_d3"], preds_d2=arrays.get(f"{prefix}_preds_d2"),
      log_probs_d3=arrays.get(f"{prefix}_log_probs_d3"),
      epochs=np.asarray(result["epochs"]), train_error=np.asarray(result["train_error"]),
      learning_rate=np.asarray(result["final_learning_rate"]),
      diverged=np.asarray(result["diverged"]), diverged_epoch=np.asarray(result["diverged_epoch"]),
      history=history, seconds=result["seconds"], preds_test=arrays.get(f"{prefix}_preds_test"),
      layout=result.get("seed_layout"))


class SnapshotCache:
  """N1's snapshot predictions, one small file per (epoch, seed), kept across interruptions."""

  def __init__(self, directory: str):
    self.directory = directory

  def _path(self, key) -> str:
    epoch, seed = key
    return os.path.join(self.directory, f"epoch{epoch}_seed{seed}.npz")

  def __contains__(self, key) -> bool:
    return os.path.exists(self._path(key))

  def __getitem__(self, key):
    arrays = storage.read_npz(self._path(key))
    return arrays["preds_d2"], arrays["preds_d3"]

  def __setitem__(self, key, value) -> None:
    storage.atomic_write_npz(self._path(key), {"preds_d2": value[0], "preds_d3": value[1]})


def given_net(given, seeds: int, y_d1=None) -> training.TrainedNet:
  """An N1 given as its labels (a :class:`~learnjax.predictions.Given`, (S, N) per part).

  Untrained: no epochs, no learning rate. Its training error is its error on D1 where its D1
  labels are given (``given.d1`` and ``y_d1``), else unknown (None)."""
  unknown = np.full((seeds,), None, object)
  train_error = unknown
  if given.d1 is not None and y_d1 is not None and len(y_d1):
    train_error = (given.d1 != np.asarray(y_d1)[None]).mean(-1).astype(np.float64)
  return training.TrainedNet(
      preds_d3=np.asarray(given.d3, np.int32), preds_d2=np.asarray(given.d2, np.int32),
      epochs=np.zeros((seeds,), np.int32), train_error=train_error, learning_rate=unknown,
      diverged=np.zeros((seeds,), bool), diverged_epoch=np.full((seeds,), -1, np.int32),
      history={}, seconds=0.0)
