"""The metrics of a cell, each defined once: its name, how it is computed, how it is shown.

A metric is computed per seed from a cell's stored arrays (their schema:
:data:`learnjax.stored_arrays.CELL`; ``needs`` names them, seed axis first) and, where
it needs it, the cell's record. The cell record (:mod:`learnjax.sweep`), the result of
:func:`learnjax.learnability`, the report's tables, the console table and the reference format all
follow from :data:`REGISTRY`, and the report computes every metric from the stored arrays when it
loads a workdir, so a workdir written before a metric existed shows it without retraining.

A new metric is one :func:`register` call::

  @register("my_metric", title="my metric", unit="%")
  def my_metric(a):
    return 100.0 * ...          # (S,) per seed; NaN where undefined for a seed

A metric whose arrays are missing is absent (its function is not called). A per-seed value that is
undefined is NaN in memory and ``None`` in the record; it is shown as "undefined", never a number.
numpy only: the report and the API import this module without JAX.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import numpy as np

from learnjax import registration, stored_arrays

UNDEFINED = "undefined"
# Stored and recomputed numbers must agree to this many percentage points (float32 arrays).
AGREEMENT_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class Metric:
  """One number of a cell, per seed."""
  name: str
  compute: Callable[..., np.ndarray | None]   # (arrays[, record]) -> (S,) or None: absent
  title: str                # the column header, without the unit
  unit: str = "%"
  digits: int = 1
  console: bool = False     # shown in the console table by default
  needs: tuple = ("n1_preds_d3", "n2_preds_d3", "y_d3")
  with_record: bool = False
  ensemble: bool = False    # one number over all seeds (stored as its mean alone), not per seed
  doc: str = ""

  @property
  def header(self) -> str:
    return f"{self.title} {self.unit}".strip()

  def per_seed(self, arrays: Mapping, record: Mapping | None = None) -> np.ndarray | None:
    """(S,) float64 values (NaN: undefined for that seed), or None where the metric is absent."""
    if not all(k in arrays and arrays[k] is not None for k in self.needs):
      return None
    values = (self.compute(arrays, record or {}) if self.with_record else self.compute(arrays))
    return None if values is None else np.asarray(values, np.float64).reshape(-1)


REGISTRY: dict[str, Metric] = {}


def register(name: str, *, title: str, unit: str = "%", digits: int = 1, console: bool = False,
             needs=("n1_preds_d3", "n2_preds_d3", "y_d3"), with_record: bool = False,
             ensemble: bool = False):
  """Decorator: registers ``fn(arrays)`` (or ``fn(arrays, record)``) as the metric ``name``.

  Registration order is the column order of the tables. ``needs``: the arrays it reads (absent
  without them); ``with_record``: ``fn`` also gets the cell's record; ``ensemble``: ``fn``
  returns one number for all seeds.
  """
  def decorate(fn):
    stored_arrays.check_needs(name, needs)
    metric = Metric(name, fn, title, unit, digits, console, tuple(needs), with_record, ensemble,
                    (fn.__doc__ or "").strip())
    if registration.admit("metric", name, REGISTRY.get(name), metric, lambda m: m.compute):
      REGISTRY[name] = metric
    return fn
  return decorate


def names() -> tuple[str, ...]:
  return tuple(REGISTRY)


def console_names() -> tuple[str, ...]:
  return tuple(m.name for m in REGISTRY.values() if m.console)


# ---- statistics as stored -------------------------------------------------------------------

def _number(x) -> float | None:
  x = float(x)
  return x if math.isfinite(x) else None


def seed_stats(values) -> dict:
  """{'mean', 'std', 'per_seed'} over the seeds where the value is defined; None where undefined.

  ``std`` is the population standard deviation (``numpy.std``), as every table states.
  """
  values = np.asarray(values, np.float64).reshape(-1)
  defined = values[np.isfinite(values)]
  stats = {"mean": _number(defined.mean()) if defined.size else None,
           "std": _number(defined.std()) if defined.size else None,
           "per_seed": [_number(v) for v in values]}
  if defined.size < values.size:
    stats["undefined_seeds"] = int(values.size - defined.size)
  return stats


def per_seed_values(stats: Mapping | None) -> np.ndarray | None:
  """The per-seed values of stored statistics as floats (NaN where undefined), or None."""
  if not stats or stats.get("per_seed") is None:
    return None
  return np.asarray([np.nan if v is None else v for v in stats["per_seed"]], np.float64)


def fmt(stats: Mapping | None, digits: int = 1) -> str:
  """'mean ± std' of stored statistics; 'undefined' where no seed defines it; '–' where absent."""
  if not stats or "mean" not in stats:
    return "–"
  if stats["mean"] is None:
    return UNDEFINED
  text = f"{stats['mean']:.{digits}f}"
  if stats.get("std") is not None:
    text += f" ± {stats['std']:.{digits}f}"
  if stats.get("undefined_seeds"):
    text += f" ({stats['undefined_seeds']} undefined)"
  return text


def fmt_metric(name: str, stats: Mapping | None) -> str:
  metric = REGISTRY.get(name)
  return fmt(stats, metric.digits if metric else 1)


def per_seed(arrays: Mapping, record: Mapping | None = None) -> dict[str, np.ndarray]:
  """{name: (S,) values} of every registered metric that ``arrays`` allow."""
  return {m.name: v for m in REGISTRY.values() if (v := m.per_seed(arrays, record)) is not None}


def compute(arrays: Mapping, record: Mapping | None = None) -> dict:
  """Every registered metric that ``arrays`` allow, as stored statistics, by name."""
  return {name: {"mean": _number(values[0])} if REGISTRY[name].ensemble else seed_stats(values)
          for name, values in per_seed(arrays, record).items()}


def agree(stored: Mapping, computed: Mapping) -> bool:
  """Whether stored and recomputed statistics are the same numbers (undefined where undefined)."""
  a, b = per_seed_values(stored), per_seed_values(computed)
  if a is None or b is None:
    m1, m2 = stored.get("mean"), computed.get("mean")
    return (m1 is None) == (m2 is None) and (m1 is None or abs(m1 - m2) <= AGREEMENT_TOLERANCE)
  return a.shape == b.shape and bool(np.all((np.isnan(a) & np.isnan(b))
                                            | (np.abs(a - b) <= AGREEMENT_TOLERANCE)))


def complete(record: dict, arrays: Mapping) -> tuple[dict, list[str]]:
  """``record`` with every metric its arrays allow filled in; and the metrics whose stored numbers
  disagree with the arrays (those keep the stored numbers)."""
  out, disagree = dict(record), []
  for name, stats in compute(arrays, record).items():
    if name not in record:
      out[name] = stats
    elif not agree(record[name], stats):
      disagree.append(name)
  return out, disagree


# ---- the metrics (docs/protocol.md section 7 writes each formula out with its source) ---------
# Notation on D3, per seed: a = N1's prediction, b = N2's, y = the true label.

def _agreement(a, b) -> np.ndarray:
  a, b = np.atleast_2d(a), np.atleast_2d(np.broadcast_to(b, np.shape(a)))
  return 100.0 * np.mean(a == b, axis=-1)


def _given_n1(record: Mapping) -> bool:
  """An N1 given as labels, the same for every seed (its seeds' spread measures nothing); one
  given per seed (``n1_per_seed``) has seeds of its own."""
  return ("predictions" in (record.get("n1_source"), record.get("source"))
          and not record.get("n1_per_seed") and not record.get("predictions_per_seed"))


@register("learnability", title="learnability", console=True)
def learnability(a):
  """100 × P(a = b)."""
  return _agreement(a["n1_preds_d3"], a["n2_preds_d3"])


@register("kappa", title="kappa", unit="", digits=2, console=True)
def kappa(a):
  """Cohen's kappa of a and b, (L - p_e) / (1 - p_e) with L = P(a = b) and
  p_e = sum_k P(a = k) P(b = k); undefined (NaN) when p_e = 1 (a and b one and the same class)."""
  n1, n2 = np.atleast_2d(a["n1_preds_d3"]), np.atleast_2d(a["n2_preds_d3"])
  k = int(max(n1.max(), n2.max())) + 1
  out = np.full(n1.shape[0], np.nan)
  for s in range(n1.shape[0]):
    n = n1.shape[1]
    expected = int(np.dot(np.bincount(n1[s], minlength=k), np.bincount(n2[s], minlength=k)))
    if expected == n * n:   # p_e = 1, decided on integer counts
      continue
    p_e, observed = expected / (n * n), float(np.mean(n1[s] == n2[s]))
    out[s] = (observed - p_e) / (1.0 - p_e)
  return out


def _real_d3(a) -> bool:
  """Whether learnability's D3 holds the real test images (not a variant's noise, see
  docs/protocol.md section 2), so that N1's answers there can be right or wrong."""
  return "n1_preds_test" not in a


def _test_preds(a, net: str = "n1") -> np.ndarray:
  """A network's predictions on the real test images: its D3 predictions, or, where the
  variant's D3 is noise, the ones stored for the real D3 (``<net>_preds_test``)."""
  return a.get(f"{net}_preds_test", a[f"{net}_preds_d3"])


def _conditional_agreement(a, n1_correct: bool) -> np.ndarray | None:
  if not _real_d3(a):   # noise images have no true label
    return None
  n1, n2 = np.atleast_2d(a["n1_preds_d3"]), np.atleast_2d(a["n2_preds_d3"])
  given = (n1 == np.asarray(a["y_d3"])[None]) == n1_correct
  with np.errstate(invalid="ignore", divide="ignore"):
    return 100.0 * (given & (n1 == n2)).sum(-1) / given.sum(-1)


@register("agreement_n1_correct", title="agree | N1 right")
def agreement_n1_correct(a):
  """100 × P(b = a | a = y): does N2 copy N1's correct answers; undefined where N1 is never
  right."""
  return _conditional_agreement(a, True)


@register("agreement_n1_wrong", title="agree | N1 wrong")
def agreement_n1_wrong(a):
  """100 × P(b = a | a ≠ y): does N2 copy N1's mistakes; undefined where N1 is never wrong."""
  return _conditional_agreement(a, False)


@register("kl_n1_n2", title="KL(N1‖N2)", unit="nats", digits=3,
          needs=("n1_log_probs_d3", "n2_log_probs_d3"))
def kl_n1_n2(a):
  """Mean over D3 of KL(p_N1(x) ‖ p_N2(x)) = sum_k p_N1,k (log p_N1,k - log p_N2,k), in nats,
  from the stored float16 log-probabilities."""
  l1 = np.asarray(a["n1_log_probs_d3"], np.float64)
  l2 = np.asarray(a["n2_log_probs_d3"], np.float64)
  l1 = l1 - np.logaddexp.reduce(l1, axis=-1, keepdims=True)   # renormalise after rounding
  l2 = l2 - np.logaddexp.reduce(l2, axis=-1, keepdims=True)
  return np.maximum(0.0, (np.exp(l1) * (l1 - l2)).sum(-1)).mean(-1)


@register("n1_test_accuracy", title="N1 test acc", console=True, needs=("n1_preds_d3", "y_d3"))
def n1_test_accuracy(a):
  """100 × P(a = y), on the real test images."""
  return _agreement(_test_preds(a), a["y_d3"])


@register("n2_test_accuracy", title="N2 test acc", console=True, needs=("n2_preds_d3", "y_d3"))
def n2_test_accuracy(a):
  """100 × P(b = y), on the real test images."""
  return _agreement(_test_preds(a, "n2"), a["y_d3"])


@register("n2_train_agreement", title="N2 train agreement",
          needs=("n1_preds_d2", "n2_preds_d2_train"))
def n2_train_agreement(a):
  """100 × P(N2(x) = N1(x)) on the first n examples of D2 that a curve's N2 of size n learned:
  whether it fitted its data (an N2 that underfits shows low learnability for want of fit)."""
  fitted = np.atleast_2d(a["n2_preds_d2_train"])
  return _agreement(np.atleast_2d(a["n1_preds_d2"])[:, :fitted.shape[1]], fitted)


def _seed_pair_agreement(preds) -> np.ndarray:
  """(S,) per seed s, 100 × mean over t ≠ s of P(N1_s(x) = N1_t(x)) on D3."""
  preds = np.atleast_2d(preds)
  pair = np.stack([(preds == p).mean(-1) for p in preds])   # (S, S), one row at a time
  s = preds.shape[0]
  return 100.0 * (pair.sum(1) - 1.0) / (s - 1)


@register("gde_accuracy", title="GDE acc", needs=("n1_preds_d3",), with_record=True)
def gde_accuracy(a, record):
  """N1's test accuracy predicted without labels from seed disagreement (Jiang et al., 2022):
  per seed s, 100 × (1 - mean over t ≠ s of P(N1_s(x) ≠ N1_t(x))); the mean over seeds is
  100 × (1 - mean over pairs s ≠ t). Absent with one seed or an N1 given as labels."""
  if np.atleast_2d(a["n1_preds_d3"]).shape[0] < 2 or _given_n1(record):
    return None
  return _seed_pair_agreement(_test_preds(a))


@register("gde_error", title="GDE error", unit="points",
          needs=("n1_preds_d3", "y_d3"), with_record=True)
def gde_error(a, record):
  """GDE accuracy minus N1's measured test accuracy, per seed (points of percent)."""
  gde = gde_accuracy(a, record)
  return None if gde is None else gde - n1_test_accuracy(a)


def _seed_votes(a, record):
  """(votes (n, K): how many of N1's S seeds predict each class, y, S), or None without two
  trained seeds."""
  preds = np.atleast_2d(_test_preds(a))
  if preds.shape[0] < 2 or _given_n1(record):
    return None
  y = np.asarray(a["y_d3"])
  seeds, n = preds.shape
  k = max(int(record.get("num_classes") or 0), int(max(preds.max(), y.max())) + 1)
  votes = np.zeros((n, k), np.int64)
  np.add.at(votes, (np.tile(np.arange(n), seeds), preds.reshape(-1)), 1)
  return votes, y, seeds


@register("n1_cace", title="N1 ensemble CACE", needs=("n1_preds_d3", "y_d3"), with_record=True,
          ensemble=True)
def n1_cace(a, record):
  """Class-aggregated calibration error of N1's seed ensemble (Jiang et al., 2022, def. 4.4), in
  %: 100 × sum_q |sum_k P(y = k, p̃_k(x) = q) - q sum_k P(p̃_k(x) = q)|, where p̃_k(x) is the
  fraction of seeds that predict k and q runs over 0, 1/S, ..., 1 (exact: no binning). The
  absolute value is taken after the sum over classes; at most 200 (each of the two sums over q
  and k is 1)."""
  table = _seed_votes(a, record)
  if table is None:
    return None
  votes, y, seeds = table
  true_votes = votes[np.arange(len(y)), y]
  total = 0.0
  for v in range(seeds + 1):
    joint = np.mean(true_votes == v)                    # sum_k P(y = k, p̃_k = q)
    mass = np.sum(votes == v) / len(y)                  # sum_k P(p̃_k = q)
    total += abs(joint - v / seeds * mass)
  return np.asarray([100.0 * total])


@register("n1_classwise_ece", title="N1 ensemble class-wise ECE", needs=("n1_preds_d3", "y_d3"),
          with_record=True, ensemble=True)
def n1_classwise_ece(a, record):
  """Class-wise expected calibration error of N1's seed ensemble (Kull et al., 2019), in %:
  100 × (1/K) sum_k sum_q P(p̃_k(x) = q) |P(y = k | p̃_k(x) = q) - q|, with p̃_k and q as for
  CACE (exact bins); in [0, 100]."""
  table = _seed_votes(a, record)
  if table is None:
    return None
  votes, y, seeds = table
  total = 0.0
  for c in range(votes.shape[1]):
    hit = y == c
    for v in np.unique(votes[:, c]):
      where = votes[:, c] == v
      total += where.mean() * abs(hit[where].mean() - v / seeds)
  return np.asarray([100.0 * total / votes.shape[1]])
