"""The granulated Kendall coefficient (Jiang, Neyshabur, Mobahi, Krishnan, Bengio, "Fantastic
Generalization Measures and Where to Find Them", ICLR 2020, section 4): does a measure rank cells
as their generalisation does along each grid axis alone, not only across all cells pooled?

For an axis A (data variant, N1 model, ...), the cells are grouped by every other axis; within a
group they differ in A alone. psi_A is the mean over groups of Kendall's tau-b between the measure
and the target in that group; Psi is the mean of psi_A over the axes that vary. A group in which
the measure or the target takes fewer than two distinct values (a single cell among them) has no
tau: it is skipped and counted. Pure: numbers in, numbers out.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

# The grid axes of a cell (learnjax.grid), as record keys and as the report names them.
AXES = (("variant", "data variant"), ("n1_model", "N1 model"), ("n1_batch_size", "N1 batch size"),
        ("n1_epoch", "N1 snapshot epoch"), ("n2_model", "N2 model"))
_OTHER_KEYS = ("n2_batch_size",)   # fixed within a group too


def kendall_tau(x, y) -> float:
  """Kendall's tau-b of two sequences (ties allowed); NaN where it is undefined."""
  from scipy import stats
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return float(stats.kendalltau(np.asarray(x, float), np.asarray(y, float)).statistic)


@dataclasses.dataclass
class AxisPsi:
  axis: str
  psi: float          # NaN when no group has a tau
  groups: int         # groups with a tau
  skipped: int        # groups with fewer than two distinct values of the measure or the target
                      # (a cell alone in its group among them)


def varying_axes(cells: list[dict]) -> list[str]:
  return [key for key, _ in AXES if len({_hashable(c.get(key)) for c in cells}) > 1]


def _hashable(value):
  return value if not isinstance(value, list) else tuple(value)


def psi(cells: list[dict], measure, target, axis: str) -> AxisPsi:
  """psi for one axis. ``cells``: records with the axis keys; ``measure``, ``target``: one number
  per cell (parallel to ``cells``; NaN where a cell has none, which leaves it out)."""
  others = [k for k, _ in AXES if k != axis] + list(_OTHER_KEYS)
  groups = {}
  for c, m, t in zip(cells, measure, target):
    if np.isfinite(m) and np.isfinite(t):
      groups.setdefault(tuple(_hashable(c.get(k)) for k in others), []).append((m, t))
  taus, skipped = [], 0
  for members in groups.values():
    tau = kendall_tau(*zip(*members)) if len(members) > 1 else float("nan")
    if np.isfinite(tau):
      taus.append(tau)
    else:
      skipped += 1
  return AxisPsi(axis, float(np.mean(taus)) if taus else float("nan"), len(taus), skipped)


def granulated(cells: list[dict], measure, target) -> tuple[list[AxisPsi], float]:
  """(psi of each axis that varies, Psi = their mean over the axes that have one)."""
  per_axis = [psi(cells, measure, target, axis) for axis in varying_axes(cells)]
  defined = [p.psi for p in per_axis if np.isfinite(p.psi)]
  return per_axis, float(np.mean(defined)) if defined else float("nan")
