"""Learnability curves: N2 trained on the first n examples of D2 for growing n, and their summaries.

A curve is one N1 row x one N2 (model, batch size, N1 epoch) over the sizes of ``data.n2_size``
(:mod:`learnjax.train_sizes`). Per seed it gives (docs/protocol.md section 8):

* the area under learnability over log n, normalised to [0, 1]:
  AUC = (1 / log(n_J / n_1)) * integral of L(n) / 100 d(log n), by the trapezoid rule;
* ``n_at(p)``: the smallest size whose learnability reaches p % per seed (NaN where none does:
  censored, beyond the largest size); summarised by the median over seeds only where more than
  half of them reach p (:func:`n_at_text`);
* the prequential code length of N1's labels of D2, in bits: the first n_1 labels at log2 K bits
  each, then each block (n_j, n_{j+1}] coded by the code model of size n_j, a model fitted to the
  first n_j examples with early stopping on a held-out part of them (:mod:`learnjax.prequential`),
  sum of -log2 p(N1's label); beside it the uniform code |D2| log2 K (|D2| = n_J) and the
  compression ratio uniform / prequential (Blier & Ollivier 2018; Voita & Titov 2020).

numpy only: the report and the API use it without JAX.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

from learnjax import metrics

# The cell fields that name a curve (all but the size).
CURVE_KEYS = ("variant", "n1_model", "n1_batch_size", "n2_model", "n2_batch_size", "n1_epoch")
# (S, |D2| - n) natural-log p(N1's label) under the code model of size n (learnjax.prequential)
CODE_LOG_PROBS = "code_label_log_probs_d2_after"
# What a curve measured before each size had a code model of its own stored: the learnability
# N2's log-probabilities, which code nothing the literature would call a prequential code.
LEARNABILITY_N2_LOG_PROBS = "n2_label_log_probs_d2_after"
DEFAULT_LEVEL = 90.0   # n_at's learnability (%) unless another is asked for


def auc(sizes: Sequence[int], values) -> np.ndarray:
  """(S,) area under ``values`` (S, J) in % over log n, normalised to [0, 1]; NaN for one size."""
  values = np.atleast_2d(np.asarray(values, np.float64))
  x = np.log(np.asarray(sizes, np.float64))
  if len(x) < 2:
    return np.full(values.shape[0], np.nan)
  y = values / 100.0
  area = ((y[:, 1:] + y[:, :-1]) / 2.0 * np.diff(x)[None]).sum(-1)
  return area / (x[-1] - x[0])


def n_at_median(values) -> float:
  """The median over seeds of n_at, censored seeds (NaN) counted as beyond every size; NaN unless
  more than half of the seeds reach the level. For an even number of seeds the larger of the two
  middle values, so that the median is a measured size."""
  values = np.asarray(values, np.float64).reshape(-1)
  reached = np.sort(values[np.isfinite(values)])
  if reached.size * 2 <= values.size:
    return float("nan")
  return float(reached[values.size // 2])


def n_at_text(values, largest: int) -> str:
  """n_at over seeds: the median where more than half reach the level, the censored seeds
  ('> 400 in 4 of 5 seeds') and every seed's value, e.g. '200; > 400 in 1 of 5 seeds (100, 200,
  200, 400, > 400)'."""
  values = np.asarray(values, np.float64).reshape(-1)
  censored = int(np.sum(~np.isfinite(values)))
  median = n_at_median(values)
  parts = [] if not np.isfinite(median) else [f"{median:.0f}"]
  if censored:
    parts.append(f"> {largest} in {censored} of {values.size} seeds")
  seeds = ", ".join(f"{v:.0f}" if np.isfinite(v) else f"> {largest}" for v in values)
  return "; ".join(parts) + (f" ({seeds})" if values.size > 1 else "")


def n_at(sizes: Sequence[int], values, level: float) -> np.ndarray:
  """(S,) the smallest size whose value (S, J) reaches ``level``; NaN where none does."""
  values = np.atleast_2d(np.asarray(values, np.float64))
  out = np.full(values.shape[0], np.nan)
  for s, row in enumerate(values):
    reached = np.nonzero(row >= level)[0]
    if reached.size:
      out[s] = sizes[reached[0]]
  return out


def code_length(sizes: Sequence[int], num_classes: int, log_probs: Mapping[int, np.ndarray]):
  """(S,) prequential code length in bits of N1's labels of D2 (|D2| = the largest size).

  ``log_probs[n_j]``: (S, |D2| - n_j) natural-log probabilities that the code model fitted to the
  first n_j examples gives N1's labels of examples n_j+1, ..., |D2|; only those of the next
  block, (n_j, n_{j+1}], are used. The largest size codes nothing (None where it is not stored)."""
  sizes = [int(n) for n in sizes]
  first = sizes[0] * math.log2(num_classes)
  total = None
  for n, following in zip(sizes[:-1], sizes[1:]):
    block = -np.asarray(log_probs[n], np.float64)[..., :following - n] / math.log(2.0)
    bits = np.atleast_2d(block).sum(-1)
    total = bits if total is None else total + bits
  return first + (0.0 if total is None else total)


def uniform_code(d2: int, num_classes: int) -> float:
  """|D2| log2 K bits: every label coded with no model."""
  return d2 * math.log2(num_classes)


def key_of(cell: Mapping) -> tuple:
  return tuple(cell.get(k) for k in CURVE_KEYS)


def group(cells: Sequence[Mapping]) -> dict[tuple, list]:
  """The curve cells (those with an ``n2_size``), by curve, each sorted by size."""
  out = {}
  for c in cells:
    if c.get("n2_size") is not None and c.get("status", "ok") != "out_of_memory":
      out.setdefault(key_of(c), []).append(c)
  return {k: sorted(v, key=lambda c: c["n2_size"]) for k, v in out.items()}


@dataclasses.dataclass
class Summary:
  """A curve's numbers per seed: the curve itself (S, J) and its summaries (S,)."""
  sizes: list
  learnability: np.ndarray            # (S, J) %
  train_agreement: np.ndarray | None  # (S, J) %, N2 against N1 on its own training examples
  auc: np.ndarray
  n_at: np.ndarray
  level: float
  code_bits: np.ndarray | None        # None until every size but the largest is stored
  uniform_bits: float
  num_classes: int
  # Why code_bits is None: 'incomplete' (sizes missing), 'predates' (the cells were stored
  # before each size had a code model of its own); '' when it is known.
  code_missing: str = ""

  @property
  def compression(self) -> np.ndarray | None:
    """uniform / prequential code length per seed (1: N2 compresses nothing)."""
    return None if self.code_bits is None else self.uniform_bits / self.code_bits

  def stats(self) -> dict:
    """Stored statistics ({'mean', 'std', 'per_seed'}) of every summary."""
    out = {"auc": metrics.seed_stats(self.auc),
           "n_at": {**metrics.seed_stats(self.n_at), "median": _finite(n_at_median(self.n_at))}}
    if self.code_bits is not None:
      out["code_bits"] = metrics.seed_stats(self.code_bits)
      out["compression"] = metrics.seed_stats(self.compression)
    return out


def summarise(sizes: Sequence[int], arrays: Sequence[Mapping], num_classes: int,
              d2: int, level: float) -> Summary:
  """The summary of one curve from each size's cell arrays (in the order of ``sizes``)."""
  learn = np.stack([metrics.learnability(a) for a in arrays], -1)
  fit = [metrics.REGISTRY["n2_train_agreement"].per_seed(a) for a in arrays]
  train = None if any(f is None for f in fit) else np.stack(fit, -1)
  log_probs = {n: a.get(CODE_LOG_PROBS) for n, a in zip(sizes, arrays)}
  missing = ""
  if int(sizes[-1]) != int(d2) or any(log_probs[n] is None for n in sizes[:-1]):
    old = any(LEARNABILITY_N2_LOG_PROBS in a and CODE_LOG_PROBS not in a for a in arrays[:-1])
    missing = "predates" if old else "incomplete"
  bits = None if missing else code_length(sizes, num_classes, log_probs)
  return Summary(list(sizes), learn, train, auc(sizes, learn), n_at(sizes, learn, level), level,
                 bits, uniform_code(d2, num_classes), num_classes, missing)


def _finite(x) -> float | None:
  return float(x) if np.isfinite(x) else None


@dataclasses.dataclass(frozen=True)
class Curve:
  """A learnability curve measured in memory (:func:`learnjax.learnability` with several
  ``n2_size``): one :class:`~learnjax.learnability_result.Learnability` per size and the curve's summary.

  ``c.sizes``, ``c.learnability`` (S, J), ``c.train_agreement`` (S, J), ``c.auc``, ``c.n_at``,
  ``c.code_bits``, ``c.compression`` (S,) per seed, ``c.uniform_bits``; ``c[n]`` the measurement
  at size n.
  """
  points: list
  summary: Summary

  def __getattr__(self, name):
    summary = self.__dict__.get("summary")
    if summary is not None and hasattr(summary, name):
      return getattr(summary, name)
    raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

  def n_at_level(self, level: float) -> np.ndarray:
    """(S,) the smallest size whose learnability reaches ``level`` % per seed (NaN: never)."""
    return n_at(self.summary.sizes, self.summary.learnability, level)

  def __getitem__(self, size: int):
    return self.points[self.summary.sizes.index(size)]

  def __str__(self) -> str:
    s, stats = self.summary, self.summary.stats()
    first = self.points[0]
    lines = [f"{first.n1} -> {first.n2} on {first.dataset}, {len(first.seeds)} seeds, "
             f"N2 on the first n examples of D2:"]
    for j, n in enumerate(s.sizes):
      fit = "" if s.train_agreement is None else \
          f", N2 train agreement {metrics.fmt(metrics.seed_stats(s.train_agreement[:, j]))} %"
      learn = metrics.fmt(metrics.seed_stats(s.learnability[:, j]))
      lines.append(f"  n={n}: learnability {learn} %{fit}")
    lines.append(f"  AUC over log n {metrics.fmt(stats['auc'], 3)}, n_at({s.level:g} %) "
                 f"{n_at_text(s.n_at, s.sizes[-1])}")
    if "code_bits" in stats:
      lines.append(f"  prequential code {metrics.fmt(stats['code_bits'], 0)} bits, uniform "
                   f"{s.uniform_bits:.0f} bits, "
                   f"compression {metrics.fmt(stats['compression'], 2)}x")
    return "\n".join(lines)

  def __repr__(self) -> str:
    s, first = self.summary, self.points[0]
    auc_mean = metrics.seed_stats(s.auc)["mean"]
    return (f"<Curve {first.n1} ({first.n1_source}) -> {first.n2} on {first.dataset}, "
            f"{len(first.seeds)} seeds, {len(s.sizes)} sizes {s.sizes[0]}..{s.sizes[-1]}: "
            f"learnability {metrics.fmt(metrics.seed_stats(s.learnability[:, 0]))} -> "
            f"{metrics.fmt(metrics.seed_stats(s.learnability[:, -1]))} %, AUC "
            f"{'–' if auc_mean is None else format(auc_mean, '.3f')}>")

  def _repr_markdown_(self) -> str:
    """A notebook cell's view: one row per size, mean ± std over seeds, then the summary."""
    s, stats, first = self.summary, self.summary.stats(), self.points[0]
    has_fit = s.train_agreement is not None
    head = (f"**{first.n1}** ({first.n1_source}) → **{first.n2}** on {first.dataset}, "
            f"{len(first.seeds)} seeds, N2 on the first n examples of D2\n\n"
            f"| n | learnability % |{' N2 train agreement % |' if has_fit else ''}\n"
            f"|---|---|{'---|' if has_fit else ''}")
    rows = [f"| {n} | {metrics.fmt(metrics.seed_stats(s.learnability[:, j]))} |"
            + (f" {metrics.fmt(metrics.seed_stats(s.train_agreement[:, j]))} |" if has_fit else "")
            for j, n in enumerate(s.sizes)]
    tail = (f"AUC over log n {metrics.fmt(stats['auc'], 3)}, n_at({s.level:g} %) "
            f"{n_at_text(s.n_at, s.sizes[-1])}")
    if "code_bits" in stats:
      tail += (f"; prequential code {metrics.fmt(stats['code_bits'], 0)} bits (uniform "
               f"{s.uniform_bits:.0f}), compression {metrics.fmt(stats['compression'], 2)}x")
    return "\n".join([head, *rows]) + "\n\n" + tail

  def to_pandas(self):
    """A DataFrame, one row per (seed, size): learnability and N2's train agreement (needs
    pandas); the per-seed summaries (AUC, n_at, code length) are in ``summary_frame()``."""
    pd = _pandas()
    s, seeds = self.summary, np.asarray(self.points[0].seeds)
    rows = {"seed": np.repeat(seeds, len(s.sizes)), "n": np.tile(s.sizes, len(seeds)),
            "learnability": np.asarray(s.learnability, float).ravel()}
    if s.train_agreement is not None:
      rows["n2_train_agreement"] = np.asarray(s.train_agreement, float).ravel()
    frame = pd.DataFrame(rows).set_index(["seed", "n"])
    first = self.points[0]
    frame.attrs.update(n1=first.n1, n2=first.n2, dataset=first.dataset, level=s.level)
    return frame

  def summary_frame(self):
    """A DataFrame, one row per seed: AUC, n_at and, where known, code length and compression."""
    pd = _pandas()
    s = self.summary
    columns = {"seed": np.asarray(self.points[0].seeds), "auc": s.auc, "n_at": s.n_at}
    if s.code_bits is not None:
      columns.update(code_bits=s.code_bits, compression=s.compression)
    return pd.DataFrame(columns).set_index("seed")


def _pandas():
  try:
    import pandas as pd
  except ImportError:
    raise ImportError("to_pandas() needs pandas (pip install pandas); str() and the arrays do "
                      "not") from None
  return pd
