"""The result of :func:`learnjax.learnability`: every metric per seed, and how it reads.

Printed (``print(r)``), in a notebook (a short ``repr``, a markdown table), as a dict
(``r.to_dict()``) or a DataFrame (``r.to_pandas()``, where pandas is installed).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Learnability:
  """One measurement over S seeds: every metric of :mod:`learnjax.metrics`, per seed.

  Each metric is an attribute, a (S,) array in its unit (``r.learnability``, ``r.kappa``...; NaN
  where undefined for a seed; a (1,) array for a metric of the seed ensemble); ``r.metrics`` maps
  every name to its array. The predictions it was
  computed from are kept, seed axis first.
  """
  metrics: dict                   # metric name -> (S,) per-seed values
  seeds: np.ndarray               # (S,) the seed indices
  n1: str
  n2: str
  dataset: str
  n1_preds_d3: np.ndarray         # (S, |D3|)
  n2_preds_d3: np.ndarray         # (S, |D3|)
  y_d3: np.ndarray                # (|D3|,)
  n1_source: str = "trained"      # 'trained' (a learnjax model) or 'given' (predictions)
  n1_train_error: np.ndarray | None = None   # (S,) fraction; None where unknown (no D1 labels)
  n2_epochs: np.ndarray | None = None        # (S,) epochs N2 trained
  n2_train_error: np.ndarray | None = None   # (S,) N2's final training error, a fraction
  n2_diverged: np.ndarray | None = None      # (S,) bool
  stop_error: float | None = None            # train.stop_error: N2 converged below it
  seconds: float | None = None               # wall time of the call

  @property
  def status(self) -> str:
    """'ok', 'diverged' (some N2 seed diverged) or 'not converged' (some N2 seed stopped at or
    above train.stop_error, e.g. at the epoch limit): a number to read with care. Under
    train.stop_error=0 (no early stop) every seed trains max_epochs: 'ok' unless diverged."""
    if self.n2_diverged is not None and np.any(self.n2_diverged):
      return "diverged"
    if self.n2_train_error is not None and self.stop_error and np.any(
        np.asarray(self.n2_train_error, float) >= self.stop_error):
      return "not converged"
    return "ok"

  def __getattr__(self, name):
    values = self.__dict__.get("metrics", {})
    if name in values:
      return values[name]
    raise AttributeError(f"{type(self).__name__} has no attribute or metric {name!r}")

  @property
  def _FIELDS(self) -> tuple[str, ...]:
    return tuple(self.metrics)

  @property
  def mean(self) -> dict[str, float | None]:
    """Mean over the seeds where a metric is defined; None where no seed defines it."""
    return {k: self._stats(k)["mean"] for k in self._FIELDS}

  @property
  def std(self) -> dict[str, float | None]:
    """Population standard deviation over seeds, as in the command line's tables."""
    return {k: self._stats(k)["std"] for k in self._FIELDS}

  def _stats(self, name: str) -> dict:
    from learnjax import metrics
    if metrics.REGISTRY[name].ensemble:   # one number over the seeds: no spread
      return {"mean": metrics.seed_stats(self.metrics[name])["mean"], "std": None}
    return metrics.seed_stats(self.metrics[name])

  def __str__(self) -> str:
    from learnjax import metrics
    parts = [f"{metrics.REGISTRY[k].title} {metrics.fmt_metric(k, self._stats(k))} "
             f"{metrics.REGISTRY[k].unit}".rstrip() for k in metrics.console_names()
             if k in self.metrics]
    return (f"{self.n1} -> {self.n2} on {self.dataset}, {len(self.seeds)} seeds: "
            + ", ".join(parts) + self._training_text())

  def _training_text(self) -> str:
    bits = []
    if self.n2_epochs is not None:
      bits.append(f"N2 {_range_text(self.n2_epochs)} epochs, training error "
                  f"{_range_text(100 * np.asarray(self.n2_train_error, float), '.1f')} %")
    if self.n1_train_error is not None:
      bits.append(f"N1 training error {_range_text(100 * self.n1_train_error, '.1f')} %")
    if self.status != "ok":
      bits.append(f"status: {self.status}")
    return ("; " + "; ".join(bits)) if bits else ""

  def __repr__(self) -> str:
    stats = self._stats("learnability") if "learnability" in self.metrics else None
    learn = "" if stats is None else f" learnability={metrics_fmt('learnability', stats)}%"
    return (f"<Learnability {self.n1} ({self.n1_source}) -> {self.n2} on {self.dataset}, "
            f"{len(self.seeds)} seeds:{learn} status={self.status}>")

  def _repr_markdown_(self) -> str:
    """A notebook cell's view: one row per metric, mean ± std over seeds."""
    from learnjax import metrics
    cell = lambda text: str(text).replace("|", "\\|").strip()
    rows = [f"| {cell(metrics.REGISTRY[k].title)} | "
            f"{cell(metrics.fmt_metric(k, self._stats(k)) + ' ' + metrics.REGISTRY[k].unit)} |"
            for k in self.metrics]
    head = (f"**{self.n1}** ({self.n1_source}) → **{self.n2}** on {self.dataset}, "
            f"{len(self.seeds)} seeds{self._training_text()}")
    return head + "\n\n| metric | mean ± std over seeds |\n|---|---|\n" + "\n".join(rows)

  def to_dict(self) -> dict:
    """Plain Python values (JSON-ready): names, per-seed metrics and training numbers."""
    def plain(values):
      return None if values is None else np.asarray(values).tolist()
    return {"n1": self.n1, "n1_source": self.n1_source, "n2": self.n2, "dataset": self.dataset,
            "seeds": plain(self.seeds), "status": self.status,
            "metrics": {k: plain(v) for k, v in self.metrics.items()},
            "mean": self.mean, "std": self.std, "n1_train_error": plain(self.n1_train_error),
            "n2_epochs": plain(self.n2_epochs), "n2_train_error": plain(self.n2_train_error),
            "n2_diverged": plain(self.n2_diverged), "seconds": self.seconds}

  def to_pandas(self):
    """A DataFrame, one row per seed and one column per per-seed metric (needs pandas)."""
    try:
      import pandas as pd
    except ImportError:
      raise ImportError("to_pandas() needs pandas (pip install pandas); to_dict() does not")
    from learnjax import metrics
    columns = {"seed": self.seeds}
    columns.update({k: v for k, v in self.metrics.items()
                    if not metrics.REGISTRY[k].ensemble and np.shape(v) == np.shape(self.seeds)})
    for name in ("n1_train_error", "n2_epochs", "n2_train_error"):
      if getattr(self, name) is not None:
        columns[name] = np.asarray(getattr(self, name))
    frame = pd.DataFrame(columns).set_index("seed")
    frame.attrs.update(n1=self.n1, n2=self.n2, dataset=self.dataset, status=self.status)
    return frame


def metrics_fmt(name: str, stats) -> str:
  from learnjax import metrics
  return metrics.fmt_metric(name, stats)


def _range_text(values, fmt: str = "d") -> str:
  """'12' or '10-14' (min-max over seeds)."""
  values = np.asarray(values, float)
  lo, hi = values.min(), values.max()
  one = (lambda v: f"{int(v)}") if fmt == "d" else (lambda v: format(v, fmt))
  return one(lo) if one(lo) == one(hi) else f"{one(lo)}-{one(hi)}"
