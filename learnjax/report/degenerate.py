"""Degenerate N1s, whose learnability measures nothing.

An N1 that gives (nearly) every example one class is learnt by any N2 (learnability near 100%
whatever the networks), and an N1 trained on true data whose test accuracy is at chance has learnt
nothing: its learnability is not that of a learned network. The report flags both (a two-epoch
smoke run typically shows them) instead of showing such numbers as results.

Thresholds: one class = one class takes at least 90% of N1's predictions on D3 in a seed (more when
the true labels of D3 are that unbalanced: 5 points above the largest true class); at chance = the
mean test accuracy over seeds lies within two binomial standard errors (|D3| examples) of chance,
chance being the larger of 1 / classes and the share of D3's largest true class. The at-chance
check applies to the variants whose registry entry does not expect chance (true data, shuffled
pixels, partial labels below fraction 1); the others are flagged only for the one-class case.
"""

from __future__ import annotations

import math

import numpy as np

from learnjax.data import variants as variants_lib
from learnjax.report.formatting import seeds_text

ONE_CLASS_PERCENT = 90.0


def largest_class_share(preds) -> np.ndarray:
  """Per seed, the percentage of examples given the most frequent predicted class. preds: (S, N)."""
  preds = np.atleast_2d(np.asarray(preds))
  if preds.shape[1] == 0:
    return np.zeros(preds.shape[0])
  return np.array([100.0 * np.bincount(p.astype(np.int64)).max() / p.size for p in preds])


def chance_accuracy(num_classes: int | None, y=None) -> float | None:
  """Chance accuracy in percent: 1 / classes, or guessing D3's largest class where that is more."""
  levels = []
  if num_classes:
    levels.append(100.0 / int(num_classes))
  if y is not None and np.size(y):
    levels.append(largest_class_share(np.asarray(y)[None])[0])
  return max(levels) if levels else None


def at_chance_margin(chance: float, n: int) -> float:
  """Two binomial standard errors at chance, in percent, for ``n`` examples."""
  p = chance / 100.0
  return 200.0 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


def reason(variant, num_classes, preds=None, y=None, accuracy=None, n=None,
           fraction=None) -> str | None:
  """Why an N1 is degenerate ('predicts one class ...', 'at chance ...'), or None.

  preds: N1's predictions on D3, (S, N); y: D3's labels; accuracy: N1's mean test accuracy in
  percent (computed from ``preds`` and ``y`` when not given); n: |D3| where ``y`` is absent;
  fraction: the variant's corrupt fraction, where it reads one.
  """
  reasons = []
  if preds is not None and np.size(preds):
    shares = largest_class_share(preds)
    limit = ONE_CLASS_PERCENT
    if y is not None and np.size(y):
      limit = max(limit, largest_class_share(np.asarray(y)[None])[0] + 5.0)
    flagged = [i for i, s in enumerate(shares) if s >= limit]
    if flagged:
      which = "every seed" if len(flagged) == len(shares) else seeds_text(flagged)
      low = shares[flagged].min()
      share = "all of D3" if low >= 100 else f"at least {low:.0f}% of D3"
      reasons.append(f"predicts a single class for {share} ({which})")
  entry = variants_lib.find(variant)
  if entry is not None and not entry.expects_chance(fraction):
    if y is not None and np.size(y):
      n = np.size(y)
      if accuracy is None and preds is not None and np.size(preds):
        accuracy = 100.0 * float((np.atleast_2d(preds) == np.asarray(y)[None]).mean())
    chance = chance_accuracy(num_classes, y)
    if accuracy is not None and chance is not None and n:
      if accuracy <= chance + at_chance_margin(chance, int(n)):
        reasons.append(f"has test accuracy {accuracy:.1f}%, at chance ({chance:.1f}%, |D3| = {n})")
  return "; ".join(reasons) if reasons else None


def cell_reason(cell: dict, arrays: dict | None = None) -> str | None:
  """The degenerate-N1 reason of a stored cell, from its D3 predictions where stored."""
  if cell.get("status") == "out_of_memory":
    return None
  arrays = arrays or {}
  accuracy = (cell.get("n1_test_accuracy") or {}).get("mean")
  # Where N1's test accuracy is on other images than its D3 (random_images), its variant expects
  # chance and only the one-class check applies, to its D3 predictions.
  return reason(cell.get("variant"), cell.get("num_classes"), arrays.get("n1_preds_d3"),
                arrays.get("y_d3"), accuracy, cell.get("d3"), cell.get("corrupt_fraction"))


def n1_reason(result: dict, arrays: dict) -> str | None:
  """The degenerate reason of a stored N1 (its D3 predictions and labels)."""
  return reason(result.get("variant"), result.get("num_classes"), arrays.get("n1_preds_d3"),
                arrays.get("y_d3"), None, result.get("d3"), result.get("corrupt_fraction"))
