"""The metrics of a cell, each defined once: its name, how it is computed, how it is shown.

A metric is computed per seed from a cell's stored arrays (``n1_preds_d3``, ``n2_preds_d3``,
``y_d3``, ``n1_preds_d2``, ``n1_probs_d3``, ``n2_probs_d3``; seed axis first) and, where it needs
it, the cell's record. The cell record (:mod:`learnjax.sweep`), the result of
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
             needs=("n1_preds_d3", "n2_preds_d3", "y_d3"), with_record: bool = False):
  """Decorator: registers ``fn(arrays)`` (or ``fn(arrays, record)``) as the metric ``name``.

  Registration order is the column order of the tables.
  """
  def decorate(fn):
    if name in REGISTRY:
      raise ValueError(f"metric {name!r} is registered twice")
    REGISTRY[name] = Metric(name, fn, title, unit, digits, console, tuple(needs), with_record,
                            (fn.__doc__ or "").strip())
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


def compute(arrays: Mapping, record: Mapping | None = None) -> dict:
  """Every registered metric that ``arrays`` allow, as stored statistics, by name."""
  out = {}
  for metric in REGISTRY.values():
    values = metric.per_seed(arrays, record)
    if values is not None:
      out[metric.name] = seed_stats(values)
  return out


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


# ---- the metrics ------------------------------------------------------------------------------

def _agreement(a, b) -> np.ndarray:
  a, b = np.atleast_2d(a), np.atleast_2d(np.broadcast_to(b, np.shape(a)))
  return 100.0 * np.mean(a == b, axis=-1)


@register("learnability", title="learnability", console=True)
def learnability(a):
  """100 × mean over D3 of [N1(x) = N2(x)]."""
  return _agreement(a["n1_preds_d3"], a["n2_preds_d3"])


@register("n1_test_accuracy", title="N1 test acc", console=True, needs=("n1_preds_d3", "y_d3"))
def n1_test_accuracy(a):
  """100 × mean over D3 of [N1(x) = y]."""
  return _agreement(a["n1_preds_d3"], a["y_d3"])


@register("n2_test_accuracy", title="N2 test acc", console=True, needs=("n2_preds_d3", "y_d3"))
def n2_test_accuracy(a):
  """100 × mean over D3 of [N2(x) = y]."""
  return _agreement(a["n2_preds_d3"], a["y_d3"])


@register("agreement_n1_wrong", title="agree | N1 wrong")
def agreement_n1_wrong(a):
  """100 × P(N2(x) = N1(x) | N1(x) ≠ y) on D3: does N2 copy N1's mistakes; undefined where N1 is
  never wrong."""
  n1, n2 = np.atleast_2d(a["n1_preds_d3"]), np.atleast_2d(a["n2_preds_d3"])
  wrong = n1 != np.asarray(a["y_d3"])[None]
  with np.errstate(invalid="ignore", divide="ignore"):
    return 100.0 * (wrong & (n1 == n2)).sum(-1) / wrong.sum(-1)
