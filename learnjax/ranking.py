"""Does a measure rank items as a target does, and does the evidence carry a verdict?

Items are whatever is ranked: the cells of a sweep, the networks of a population. Each item has
one value of the measure and of the target per seed (an array; a plain number is one seed). Pure
numpy (scipy only as the reference in tests): numbers in, numbers out, a fixed generator seed so a
report is reproducible.

How to call it::

  from learnjax import ranking

  # measure[i], target[i]: item i's per-seed values (arrays of equal length per item)
  ev = ranking.correlate(measure, target)            # Kendall's tau-b of the per-item means
  ev.tau, ev.lo, ev.hi, ev.p_value, ev.items, ev.seeds
  ev.sign      # +1 / -1: a verdict; 0: no verdict, ev.reason says why
  ev.text()    # 'τ = +0.73 [+0.47, +0.87], p = 0.003 (9 cells)'

  # one value per item and no seeds (a population of single networks): resample the items
  ev = ranking.correlate(measure, target, interval="items")

  # the granulated coefficient over named axes (Jiang et al. 2020, section 4)
  g = ranking.granulated(keys, measure, target)      # keys[i]: {axis name: value} of item i
  g.per_axis   # [AxisPsi(axis, psi, lo, hi, groups, skipped)] for the axes that vary
  g.psi, g.lo, g.hi, g.axes                          # Psi = mean of psi over g.axes axes

The statistics:

* tau: Kendall's tau-b (Kendall 1945; ties allowed) of the items' mean measure against their mean
  target.
* interval (``interval='seeds'``): a percentile bootstrap over seeds: resample each item's seeds
  with replacement, one resample of seed indices shared by every item with the same seed count
  (the seeds of a grid are paired), recompute the means and tau (Efron & Tibshirani 1993). It
  captures seed noise only. ``interval='items'``: resample the items with replacement instead.
* p_value: a two-sided permutation test over items (Pitman 1937): the share of permutations of
  the target's item means whose |tau| reaches the observed |tau|; exact (every permutation) for
  up to 7 items, else ``permutations`` random ones with p = (1 + hits) / (1 + permutations)
  (Phipson & Smyth 2010). It asks whether the ordering of the items could be chance, which the
  seed bootstrap cannot.
* verdict: +1 or -1 only where p < ``alpha`` and the interval excludes 0 on the side of tau;
  otherwise 0 with a reason: too few items, tau undefined, too few items for any ordering to
  reach p < alpha, too few seeds for the seed bootstrap, the interval across 0, p >= alpha.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Mapping, Sequence

import numpy as np

DRAWS = 1000            # bootstrap resamples
PERMUTATIONS = 10000    # random permutations where the exact test is too large
EXACT_MAX_ITEMS = 7     # 7! = 5040 permutations: enumerated
SEED = 0                # the generator seed of every resample
LEVEL = 0.95            # interval coverage
ALPHA = 0.05            # the p-value a verdict needs
MIN_ITEMS = 3           # fewer items: no tau
# Below this many seeds a seed bootstrap has too few distinct resamples to bound tau.
MIN_SEEDS = 5


# ---- Kendall's tau-b, vectorised ----------------------------------------------------------------

def _pair_signs(v: np.ndarray) -> np.ndarray:
  """sign(v_j - v_i) over the pairs i < j of the last axis: (..., n (n - 1) / 2)."""
  i, j = np.triu_indices(v.shape[-1], 1)
  return np.sign(v[..., j] - v[..., i])


def tau_b(x, y) -> np.ndarray:
  """Kendall's tau-b of x and y along the last axis (leading axes broadcast); NaN where x or y
  is constant: (n_c - n_d) / sqrt((n_0 - n_x)(n_0 - n_y)), n_x, n_y the pairs tied in x, in y."""
  sx, sy = _pair_signs(np.asarray(x, np.float64)), _pair_signs(np.asarray(y, np.float64))
  concordance = (sx * sy).sum(-1)
  norm = np.sqrt((sx != 0).sum(-1) * (sy != 0).sum(-1).astype(np.float64))
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(norm > 0, concordance / np.where(norm > 0, norm, 1.0), np.nan)


def kendall_tau(x, y) -> float:
  """Kendall's tau-b of two sequences (ties allowed); NaN where it is undefined."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  return float(tau_b(x, y)) if x.size >= 2 else float("nan")


# ---- the permutation test over items ------------------------------------------------------------

def _chunks(total: int, pairs: int):
  step = max(1, 2_000_000 // max(1, pairs))
  for start in range(0, total, step):
    yield start, min(total, start + step)


def permutation_test(x, y, permutations: int = PERMUTATIONS, seed: int = SEED
                     ) -> tuple[float, float]:
  """(p, smallest attainable p) of the two-sided permutation test of tau-b(x, y) over items.

  Exact for up to ``EXACT_MAX_ITEMS`` items: p = share of all n! orderings of y with |tau| >=
  the observed |tau|; the smallest attainable p is the share reaching the largest |tau|. Above
  that, Monte Carlo: p = (1 + hits) / (1 + permutations), smallest attainable 1 / (1 +
  permutations). NaN where tau is undefined.
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  n = x.size
  observed = kendall_tau(x, y)
  if not np.isfinite(observed):
    return float("nan"), float("nan")
  eps = 1e-12
  pairs = n * (n - 1) // 2
  if n <= EXACT_MAX_ITEMS:
    orders = np.asarray(list(itertools.permutations(range(n))))
    taus = np.abs(tau_b(x, y[orders]))
    return (float(np.mean(taus >= abs(observed) - eps)),
            float(np.mean(taus >= taus.max() - eps)))
  rng = np.random.default_rng(seed)
  hits = 0
  for start, stop in _chunks(permutations, pairs):
    orders = rng.permuted(np.broadcast_to(np.arange(n), (stop - start, n)), axis=1)
    hits += int(np.sum(np.abs(tau_b(x, y[orders])) >= abs(observed) - eps))
  return (1 + hits) / (1 + permutations), 1 / (1 + permutations)


def permutation_test_of(statistic, x, y, permutations: int = PERMUTATIONS, seed: int = SEED,
                        alternative: str = "two-sided") -> tuple[float, float]:
  """(p, smallest attainable p) of a permutation test over items of any ``statistic(x, y)``,
  ``y``'s items permuted; the rule of :func:`permutation_test` (exact up to
  ``EXACT_MAX_ITEMS`` items, else Monte Carlo with p = (1 + hits) / (1 + permutations)).
  ``alternative``: 'two-sided' (|statistic| reaches the observed) or 'greater'. NaN where the
  observed statistic is undefined; permutations whose statistic is undefined never count as hits.
  A plain loop: for statistics that do not vectorise over permutations."""
  if alternative not in ("two-sided", "greater"):
    raise ValueError(f"alternative must be 'two-sided' or 'greater', got {alternative!r}")
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  n = y.shape[0]
  size = (lambda v: abs(v)) if alternative == "two-sided" else (lambda v: v)
  observed = statistic(x, y)
  if not np.isfinite(observed):
    return float("nan"), float("nan")
  eps = 1e-12
  if n <= EXACT_MAX_ITEMS:
    values = np.asarray([size(statistic(x, y[list(order)]))
                         for order in itertools.permutations(range(n))], np.float64)
    values = np.where(np.isfinite(values), values, -np.inf)
    return (float(np.mean(values >= size(observed) - eps)),
            float(np.mean(values >= values.max() - eps)))
  rng = np.random.default_rng(seed)
  hits = sum(bool(size(statistic(x, y[rng.permutation(n)])) >= size(observed) - eps)
             for _ in range(permutations))
  return (1 + hits) / (1 + permutations), 1 / (1 + permutations)


def permutation_p_value(x, y, permutations: int = PERMUTATIONS, seed: int = SEED) -> float:
  """The two-sided permutation p-value of tau-b(x, y) over items (see :func:`permutation_test`)."""
  return permutation_test(x, y, permutations, seed)[0]


# ---- resampling -----------------------------------------------------------------------------------

def _as_items(values) -> list[np.ndarray]:
  return [np.atleast_1d(np.asarray(v, np.float64)) for v in values]


def seed_resamples(counts: Sequence[int], draws: int = DRAWS, seed: int = SEED) -> dict:
  """{seed count: (draws, count) indices}: one resample of seed indices per draw, shared by every
  item with that seed count (the seeds of a grid are paired)."""
  rng = np.random.default_rng(seed)
  return {c: rng.integers(0, c, (draws, c)) for c in sorted(set(int(c) for c in counts))}


def resampled_means(values: Sequence, resamples: Mapping[int, np.ndarray]) -> np.ndarray:
  """(draws, items) each item's mean over its resampled seeds."""
  items = _as_items(values)
  return np.stack([v[resamples[v.size]].mean(-1) for v in items], -1)


def percentile_interval(stats: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
  """The central ``level`` percentile interval of the finite values of ``stats``."""
  return _percentile_interval(stats, level)


def _percentile_interval(stats: np.ndarray, level: float) -> tuple[float, float]:
  stats = np.asarray(stats, np.float64)
  stats = stats[np.isfinite(stats)]
  if stats.size == 0:
    return float("nan"), float("nan")
  tail = 100 * (1 - level) / 2
  return float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))


def bootstrap_interval(measure: Sequence, target: Sequence, interval: str = "seeds",
                       draws: int = DRAWS, seed: int = SEED, level: float = LEVEL
                       ) -> tuple[float, float]:
  """Percentile interval of tau-b of the item means, over seed (or item) resamples."""
  measure, target = _as_items(measure), _as_items(target)
  if interval == "seeds":
    resamples = seed_resamples([v.size for v in measure], draws, seed)
    return _percentile_interval(
        tau_b(resampled_means(measure, resamples), resampled_means(target, resamples)), level)
  if interval == "items":
    x = np.asarray([v.mean() for v in measure])
    y = np.asarray([v.mean() for v in target])
    idx = np.random.default_rng(seed).integers(0, x.size, (draws, x.size))
    return _percentile_interval(tau_b(x[idx], y[idx]), level)
  raise ValueError(f"interval must be 'seeds' or 'items', got {interval!r}")


# ---- one tau with its evidence ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Evidence:
  """tau of a measure against a target over items, its interval, its p-value and the verdict."""
  tau: float
  lo: float             # the bootstrap interval (NaN: none)
  hi: float
  p_value: float        # two-sided permutation p over items (NaN: tau undefined)
  min_p: float          # the smallest p any ordering of these items could reach
  items: int
  seeds: int            # the fewest seeds of an item
  interval: str         # 'seeds' or 'items': what the bootstrap resampled
  sign: int             # +1, -1: a verdict; 0: none (``reason`` says why)
  reason: str           # '' with a verdict
  noun: str = "cells"

  @property
  def decided(self) -> bool:
    return self.sign != 0

  def text(self, with_items: bool = True) -> str:
    """'τ = +0.73 [+0.47, +0.87], p = 0.003 (9 cells)'; '–' parts where undefined."""
    text = "τ = " + ("–" if not np.isfinite(self.tau) else f"{self.tau:+.2f}")
    if np.isfinite(self.lo):
      text += f" [{self.lo:+.2f}, {self.hi:+.2f}]"
    if np.isfinite(self.p_value):
      p = format_p(self.p_value)
      text += f", p {p}" if p.startswith("<") else f", p = {p}"
    if with_items:
      text += f" ({self.items} {self.noun})"
    return text


def format_p(p: float) -> str:
  return "–" if not np.isfinite(p) else (f"{p:.3f}" if p >= 0.001 else "< 0.001")


def verdict(tau: float, lo: float, hi: float, p_value: float, min_p: float, items: int,
            seeds: int, interval: str = "seeds", alpha: float = ALPHA,
            min_seeds: int = MIN_SEEDS, noun: str = "cells") -> tuple[int, str]:
  """(+1 / -1, '') where p < alpha and the interval excludes 0 on tau's side; else (0, why)."""
  if items < MIN_ITEMS:
    return 0, f"too few {noun} ({items}; {MIN_ITEMS} needed)"
  if not np.isfinite(tau):
    return 0, f"τ is undefined: the measure or the target takes one value across the {noun}"
  if np.isfinite(min_p) and min_p >= alpha:
    return 0, (f"too few {noun}: with {items} {noun} no ordering reaches p < {alpha:g} (the "
               f"smallest p is {format_p(min_p)})")
  if interval == "seeds" and seeds < min_seeds:
    return 0, (f"too few seeds ({seeds}; the seed bootstrap needs {min_seeds} to bound τ)")
  why = []
  if not np.isfinite(lo):
    why.append("no interval")
  elif lo <= 0 <= hi or (tau > 0) != (lo > 0):
    why.append(f"the interval [{lo:+.2f}, {hi:+.2f}] includes 0")
  if not p_value < alpha:
    why.append(f"p = {format_p(p_value)} ≥ {alpha:g}")
  if why:
    return 0, "; ".join(why)
  return (1 if tau > 0 else -1), ""


def correlate(measure: Sequence, target: Sequence, *, interval: str = "seeds",
              draws: int = DRAWS, permutations: int = PERMUTATIONS, seed: int = SEED,
              level: float = LEVEL, alpha: float = ALPHA, min_seeds: int = MIN_SEEDS,
              noun: str = "cells") -> Evidence:
  """tau-b of the items' mean measure against their mean target, with the bootstrap interval
  (``interval``: 'seeds' or 'items'), the permutation p-value over items and the verdict.

  ``measure[i]``, ``target[i]``: item i's per-seed values (equal lengths within an item; the
  caller leaves out items with undefined values). ``noun`` names the items in the reasons.
  """
  measure, target = _as_items(measure), _as_items(target)
  if len(measure) != len(target):
    raise ValueError(f"{len(measure)} measure items against {len(target)} target items")
  for m, t in zip(measure, target):
    if m.size != t.size:
      raise ValueError("an item's measure and target need one value per seed each")
  n = len(measure)
  seeds = min((m.size for m in measure), default=0)
  x = np.asarray([m.mean() for m in measure])
  y = np.asarray([t.mean() for t in target])
  tau = kendall_tau(x, y) if n >= 2 else float("nan")
  lo = hi = p = min_p = float("nan")
  if n >= MIN_ITEMS and np.isfinite(tau):
    lo, hi = bootstrap_interval(measure, target, interval, draws, seed, level)
    p, min_p = permutation_test(x, y, permutations, seed)
  sign, reason = verdict(tau, lo, hi, p, min_p, n, seeds, interval, alpha, min_seeds, noun)
  return Evidence(tau, lo, hi, p, min_p, n, seeds, interval, sign, reason, noun)


# ---- the granulated coefficient (Jiang, Neyshabur, Mobahi, Krishnan, Bengio 2020, sec. 4) --------

@dataclasses.dataclass(frozen=True)
class AxisPsi:
  """psi of one axis: the mean over groups of items that differ in that axis alone of tau-b."""
  axis: str
  psi: float          # NaN when no group has a tau
  lo: float           # bootstrap interval (NaN: none)
  hi: float
  groups: int         # groups with a tau
  skipped: int        # groups whose measure or target takes fewer than two distinct values


@dataclasses.dataclass(frozen=True)
class Granulated:
  """psi per axis that varies and Psi, their mean over the ``axes`` axes that have a psi."""
  per_axis: list
  psi: float
  lo: float
  hi: float
  axes: int

  def text(self) -> str:
    if not np.isfinite(self.psi):
      return "–"
    text = f"{self.psi:+.2f}"
    if np.isfinite(self.lo):
      text += f" [{self.lo:+.2f}, {self.hi:+.2f}]"
    return text + f" ({self.axes} ax{'is' if self.axes == 1 else 'es'})"


def _hashable(value):
  return tuple(value) if isinstance(value, list) else value


def varying_axes(keys: Sequence[Mapping], axes: Sequence[str] | None = None) -> list[str]:
  """The axes (default: every key, in first-seen order) that take more than one value."""
  if axes is None:
    axes = list(dict.fromkeys(k for item in keys for k in item))
  return [a for a in axes if len({_hashable(item.get(a)) for item in keys}) > 1]


def axis_groups(keys: Sequence[Mapping], axis: str) -> list[list[int]]:
  """The items grouped by every key but ``axis``: each group's items differ in ``axis`` alone."""
  others = sorted({k for item in keys for k in item} - {axis})
  groups = {}
  for i, item in enumerate(keys):
    groups.setdefault(tuple(_hashable(item.get(k)) for k in others), []).append(i)
  return list(groups.values())


def _mean_tau(mx: np.ndarray, my: np.ndarray, groups: list) -> np.ndarray:
  """(draws,) the mean over groups of tau-b within each group (NaN groups left out)."""
  taus = np.stack([tau_b(mx[..., g], my[..., g]) for g in groups], -1)
  with np.errstate(invalid="ignore"):
    counts = np.isfinite(taus).sum(-1)
    return np.where(counts > 0, np.nansum(taus, -1) / np.maximum(counts, 1), np.nan)


def granulated(keys: Sequence[Mapping], measure: Sequence, target: Sequence, *,
               axes: Sequence[str] | None = None, interval: str = "seeds", draws: int = DRAWS,
               seed: int = SEED, level: float = LEVEL) -> Granulated:
  """psi per axis that varies and Psi with bootstrap intervals.

  ``keys[i]``: item i's values of every field that tells items apart ({axis: value}); items are
  grouped for an axis by all the other fields. ``axes``: the fields scored (default: every
  field); an axis is scored where it varies. ``measure[i]``, ``target[i]``: per-seed values;
  items whose mean is not finite are left out. Interval: the seed resample shared by all items
  (``'seeds'``), or the groups of each axis resampled with replacement (``'items'``).
  """
  measure, target = _as_items(measure), _as_items(target)
  x = np.asarray([m.mean() for m in measure])
  y = np.asarray([t.mean() for t in target])
  keep = [i for i in range(len(keys)) if np.isfinite(x[i]) and np.isfinite(y[i])]
  keys = [keys[i] for i in keep]
  measure, target, x, y = [measure[i] for i in keep], [target[i] for i in keep], x[keep], y[keep]
  if interval == "seeds" and keys:
    resamples = seed_resamples([m.size for m in measure], draws, seed)
    mx, my = resampled_means(measure, resamples), resampled_means(target, resamples)
  elif interval not in ("seeds", "items"):
    raise ValueError(f"interval must be 'seeds' or 'items', got {interval!r}")
  rng = np.random.default_rng(seed)
  per_axis, draws_psi = [], []
  for axis in varying_axes(keys, axes):
    groups = [g for g in axis_groups(keys, axis) if len(g) > 1]
    lone = sum(len(g) == 1 for g in axis_groups(keys, axis))
    taus = np.asarray([tau_b(x[g], y[g]) for g in groups])
    defined = [g for g, t in zip(groups, taus) if np.isfinite(t)]
    psi_value = float(np.mean(taus[np.isfinite(taus)])) if defined else float("nan")
    if not defined:
      boot = np.full(draws, np.nan)
    elif interval == "seeds":
      boot = _mean_tau(mx, my, defined)
    else:
      group_taus = taus[np.isfinite(taus)]
      boot = group_taus[rng.integers(0, group_taus.size, (draws, group_taus.size))].mean(-1)
    lo, hi = _percentile_interval(boot, level) if defined else (float("nan"), float("nan"))
    per_axis.append(AxisPsi(axis, psi_value, lo, hi, len(defined),
                            len(groups) - len(defined) + lone))
    if defined:
      draws_psi.append(boot)
  scored = [a.psi for a in per_axis if np.isfinite(a.psi)]
  if not scored:
    return Granulated(per_axis, float("nan"), float("nan"), float("nan"), 0)
  with np.errstate(invalid="ignore"):
    boot_psi = np.nanmean(np.stack(draws_psi), 0) if draws_psi else np.full(draws, np.nan)
  lo, hi = _percentile_interval(boot_psi, level)
  return Granulated(per_axis, float(np.mean(scored)), lo, hi, len(scored))
