"""The arrays a measured cell holds (its ``arrays.npz``, and the API's result), one schema.

Every array has its seed axis first (S seeds). A metric (:mod:`learnjax.metrics`) declares the
arrays it reads by these names (``needs``), and registering one that names an array outside
:data:`CELL` is refused; the sweep and the API build a cell's arrays in one place
(:func:`learnjax.measurement.cell_arrays`). numpy only: no JAX.
"""

from __future__ import annotations

# name -> what it holds, and when it is present.
CELL = {
    "y_d3": "(|D3|,) the true labels of D3",
    "n1_preds_d3": "(S, |D3|) N1's labels of D3 (the variant's D3 images)",
    "n1_preds_d2": "(S, |D2|) N1's labels of D2: what N2 learns",
    "n1_log_probs_d3": "(S, |D3|, K) float16 log-softmax of the final trained N1 (absent for an N1 "
                       "given as labels and for a snapshot)",
    "n1_preds_test": "(S, |D3|) N1's labels of the real D3 images, where the variant's D3 is not "
                     "real but N1's test accuracy is taken on the real one",
    "n2_preds_d3": "(S, |D3|) N2's labels of D3",
    "n2_log_probs_d3": "(S, |D3|, K) float16 log-softmax of N2",
    "n2_preds_test": "(S, |D3|) N2's labels of the real D3 images (as n1_preds_test)",
    "n2_preds_d2_train": "(S, n) a learnability curve's N2: its labels of the first n examples of "
                         "D2, which it learnt",
    "code_label_log_probs_d2_after": "(S, |D2| - n) a curve's size n below |D2|: float32 "
                                     "log-probability of N1's label on each later example of D2 "
                                     "under the size's code model (the prequential code, "
                                     "learnjax.prequential)",
}
# Histories of N2's training, one array per logged quantity: n2_history_<name>, (S, epochs).
HISTORY_PREFIX = "n2_history_"

# The arrays of a stored N1 (n1/<id>/arrays.npz) that a cell's metrics can read too: the metrics
# of an N1 alone (an N1-only experiment) are those that need nothing else.
N1 = ("y_d3", "n1_preds_d3", "n1_preds_d2", "n1_log_probs_d3", "n1_preds_test")


def check_needs(metric: str, needs) -> None:
  """Refuses a metric that reads an array no cell stores."""
  unknown = [k for k in needs if k not in CELL and not k.startswith(HISTORY_PREFIX)]
  if unknown:
    raise ValueError(f"metric {metric!r} needs {', '.join(unknown)}, which no cell stores; the "
                     f"arrays of a cell are {', '.join(CELL)} (learnjax.stored_arrays)")
