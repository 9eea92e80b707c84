"""One cell measured: N2 trained on N1's labels of D2, the cell's arrays and its metrics.

The sweep (:meth:`learnjax.sweep.Experiment.cell`, which stores the result) and the API
(:func:`learnjax.learnability`, which keeps it in memory) both measure through :func:`measure`,
so a cell's arrays (:mod:`learnjax.stored_arrays`), the fields of its record that metrics read
(:func:`metric_record`) and so every metric are the same on both paths.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from learnjax import prequential, training, stored_nets


@dataclasses.dataclass(frozen=True)
class N1Labels:
  """What a cell reads of its N1: its labels of D2 and D3 (seed axis first)."""
  preds_d2: np.ndarray
  preds_d3: np.ndarray
  preds_test: np.ndarray | None = None     # on the real D3, where the variant's D3 is not real
  log_probs_d3: np.ndarray | None = None   # the final trained N1's; None given or a snapshot


def n1_labels(net: training.TrainedNet, epoch: int | None = None) -> N1Labels:
  """The final N1's labels, or those after ``epoch`` (a snapshot, which must exist)."""
  if epoch is None:
    return N1Labels(net.preds_d2, net.preds_d3, net.preds_test, net.log_probs_d3)
  preds_d2, preds_d3 = net.snapshots[epoch]
  return N1Labels(preds_d2, preds_d3)


def cell_arrays(n1: N1Labels, n2: training.TrainedNet, y_d3, n2_size: int | None) -> dict:
  """The arrays of a cell (:data:`learnjax.stored_arrays.CELL`); log-probabilities are float16,
  as stored, so a cell's numbers are the same in memory and on disk."""
  arrays = {"n1_preds_d3": np.asarray(n1.preds_d3), "n1_preds_d2": np.asarray(n1.preds_d2),
            **stored_nets.net_arrays("n2", n2), "y_d3": np.asarray(y_d3)}
  if n1.log_probs_d3 is not None:
    arrays["n1_log_probs_d3"] = np.asarray(n1.log_probs_d3, np.float16)
  if n1.preds_test is not None:
    arrays["n1_preds_test"] = np.asarray(n1.preds_test)
  if n2_size is not None:   # a curve's N2: its fit; below |D2|, the code of the rest of D2
    arrays["n2_preds_d2_train"] = n2.preds_d2_train
    if n2.code is not None:
      arrays["code_label_log_probs_d2_after"] = n2.code.label_log_probs_after
  return arrays


def metric_record(n1_source: str | None = None, n1_per_seed: bool = False) -> dict:
  """The fields of a cell's record that metrics read besides its arrays."""
  return {**({"n1_source": n1_source} if n1_source else {}),
          **({"n1_per_seed": True} if n1_per_seed else {})}


def measure(splits, trainer, n1: N1Labels, experiment_seed: int, seed_indices, *,
            variant: str = "true", n2_size: int | None = None, code_on_epoch=None,
            **run) -> tuple[training.TrainedNet, dict]:
  """Trains N2 on N1's labels of D2 (its first ``n2_size`` examples; None: all): (N2, the cell's
  arrays), from which :func:`learnjax.metrics.compute` (stored statistics) and
  :func:`learnjax.metrics.per_seed` (in memory) give every metric. ``run``: how to train
  (seed_layout, on_epoch, checkpoints, devices, concurrent_seeds, log). A curve's size below |D2|
  also trains its code models (:mod:`learnjax.prequential`; ``code_on_epoch``: their progress),
  kept as ``N2.code``."""
  n2 = training.train_n2(splits, trainer, n1.preds_d2, experiment_seed, seed_indices,
                         variant=variant, n2_size=n2_size, **run)
  if n2_size is not None and n2_size < len(splits.d2):
    n2.code = prequential.fit_and_code(
        splits, trainer, n1.preds_d2, n2_size, experiment_seed, seed_indices, variant=variant,
        on_epoch=code_on_epoch,
        **{k: v for k, v in run.items() if k in ("seed_layout", "devices", "concurrent_seeds", "log")})
  return n2, cell_arrays(n1, n2, splits.d3.y, n2_size)
