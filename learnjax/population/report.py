"""A population's report: the ranked table of the measures (Jiang et al. 2020, Table 1's form),
a figure of each measure against the gap, and the tidy table (``population.csv``).

Rows are ranked by K, the score Jiang et al. hold the most telling (it discounts what the
hyper-parameters explain). Every figure and file is written atomically into ``<workdir>/report``.
"""

from __future__ import annotations

import io
import os

import numpy as np

from learnjax import ranking
from learnjax.population import measures as measures_lib, scoring
from learnjax.population.table import Population
from learnjax.report.figures import new_figure
from learnjax.report.formatting import md_table
from learnjax.storage import atomic_write_bytes


def _num(x, digits=2, sign=True) -> str:
  if x is None or not np.isfinite(x):
    return "–"
  return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _ci(ci, digits=2, sign=True) -> str:
  lo, hi = ci
  if not (np.isfinite(lo) and np.isfinite(hi)):
    return ""
  return f" [{_num(lo, digits, sign)}, {_num(hi, digits, sign)}]"


def _p(p) -> str:
  return "p<0.01" if p < 0.01 else f"p={p:.2f}"


def ranked(scores: dict) -> list[str]:
  """Measure names, best K first (undefined K last)."""
  return sorted(scores, key=lambda n: (-scores[n].k if np.isfinite(scores[n].k) else np.inf, n))


def ranked_table(scores: dict, axes: list[str]) -> str:
  header = (["rank", "measure", "sign", "τ [95%] (perm.)"] + [f"ψ {a}" for a in axes]
            + ["Ψ [95%]", "K [95%] (perm.)", "robust sign error: max [95%] / p90 / mean",
               "networks"])
  rows = []
  for i, name in enumerate(ranked(scores), 1):
    s, m = scores[name], measures_lib.REGISTRY[name]
    rows.append([i, m.title, "+" if m.orientation > 0 else "−",
                 f"{_num(s.tau)}{_ci(s.tau_ci)} ({_p(s.tau_p)})"]
                + [_num(s.psi.get(a)) for a in axes]
                + [f"{_num(s.big_psi)}{_ci(s.big_psi_ci)}",
                   f"{_num(s.k, 3, False)}{_ci(s.k_ci, 3, False)} ({_p(s.k_p)})",
                   f"{_num(s.sign_error_max, 2, False)}{_ci(s.sign_error_max_ci, 2, False)} / "
                   f"{_num(s.sign_error_p90, 2, False)} / {_num(s.sign_error_mean, 2, False)}",
                   s.networks])
  return md_table(header, rows)


def scores_csv(scores: dict, axes: list[str]) -> str:
  """The ranked table's numbers, one row per measure, every interval's ends as columns."""
  import csv
  buffer = io.StringIO()
  header = (["rank", "measure", "sign", "networks", "seeds", "tau", "tau_lo", "tau_hi", "tau_p"]
            + [c for a in axes for c in (f"psi_{a}", f"psi_{a}_lo", f"psi_{a}_hi")]
            + ["Psi", "Psi_lo", "Psi_hi", "K", "K_lo", "K_hi", "K_p", "sign_error_max",
               "sign_error_max_lo", "sign_error_max_hi", "sign_error_p90", "sign_error_mean",
               "environments", "verdict"])
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(header)
  for i, name in enumerate(ranked(scores), 1):
    s = scores[name]
    writer.writerow([i, name, measures_lib.REGISTRY[name].orientation, s.networks, s.seeds, s.tau,
                     *s.tau_ci, s.tau_p]
                    + [v for a in axes for v in (s.psi.get(a), *s.psi_ci.get(a, (None, None)))]
                    + [s.big_psi, *s.big_psi_ci, s.k, *s.k_ci, s.k_p, s.sign_error_max,
                       *s.sign_error_max_ci, s.sign_error_p90, s.sign_error_mean,
                       s.environments, s.verdict])
  return buffer.getvalue()


def figure(pop: Population, names: list[str], measures: list[str]):
  """One panel per measure: each network's mean measure against its mean gap."""
  cols = 4
  rows = -(-len(measures) // cols)
  fig = new_figure(3.2 * cols, 2.6 * rows)
  axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
  gap = pop.per_seed("gap", names).mean(1)
  for ax, name in zip(axes, measures):
    m = measures_lib.REGISTRY[name]
    values = pop.per_seed(name, names).mean(1)
    keep = np.isfinite(values)
    ax.scatter(gap[keep], values[keep], s=10)
    positive = values[keep] > 0
    if positive.all() and keep.sum() > 1 and values[keep].max() / values[keep].min() > 100:
      ax.set_yscale("log")
    ax.set_title(m.title, fontsize=8)
    ax.set_xlabel("gap (train − test acc, %)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)
  for ax in axes[len(measures):]:
    ax.set_visible(False)
  fig.suptitle("Each measure against the generalisation gap (one point per network, mean over "
               "seeds)", fontsize=9)
  return fig


def write(workdir: str, draws: int = scoring.BOOTSTRAP_DRAWS,
          permutations: int = scoring.PERMUTATIONS) -> str:
  """Writes report.md, measures_vs_gap.png and population.csv into ``<workdir>/report``; returns
  the report's text."""
  pop = Population(workdir)
  folder = os.path.join(workdir, "report")
  atomic_write_bytes(os.path.join(folder, "population.csv"), pop.to_csv().encode())
  names, hparams, seeds = pop.networks()
  total = len({r["network"] for r in pop.rows})
  axes = [a for a in pop.axes if len({repr(h[a]) for h in hparams}) > 1]
  scores = pop.scores(draws, permutations)
  axes_text = ", ".join(f"{a['name']} ({a['field']}) ∈ {a['values']}" for a in pop.record["axes"])
  lines = [f"# Generalisation measures over a population of {total} networks", "",
           f"Axes: {axes_text}. "
           f"{len(names)} of {total} networks reached the stop criterion (training error below "
           f"{pop.stop_error:g}) on all of their {seeds or '–'} seeds and are scored; the others "
           "are left out, as Jiang et al. (2020) leave out networks that do not reach theirs.", "",
           "Each measure is scored against the generalisation gap (N1's accuracy on all of D1 − "
           "its accuracy on D3) after multiplying it by its sign (+: its source claims it grows "
           "with the gap; −: that it shrinks), so that positive τ and ψ mean \"as claimed\". "
           f"Intervals: 95% percentile bootstrap over seeds ({draws} resamples, one set of seed "
           f"indices for every network); perm.: permutation p-value over networks (τ: two-sided, "
           f"every ordering up to {ranking.EXACT_MAX_ITEMS} networks, else {permutations} "
           f"shuffles; K: one-sided, {scoring.K_PERMUTATIONS} shuffles). Ranked by K.", ""]
  if not scores:
    lines.append("No measure has 3 scored networks: nothing to rank.")
  else:
    atomic_write_bytes(os.path.join(folder, "scores.csv"), scores_csv(scores, axes).encode())
    lines += [ranked_table(scores, axes), "", "Every number with its interval: [scores.csv]"
              "(scores.csv).", "", "Verdicts (τ against the gap):", ""]
    for name in ranked(scores):
      lines.append(f"- **{measures_lib.REGISTRY[name].title}**: {scores[name].verdict}.")
    missing = [m.title for n, m in measures_lib.REGISTRY.items() if n not in scores]
    if missing:
      lines += ["", f"Not scored (undefined or absent on fewer than 3 networks): "
                    f"{', '.join(missing)}."]
    envs = next(iter(scores.values())).environments
    lines += ["", f"Robust sign error over {envs} environments (pairs of networks that differ in "
                  "one axis); with few seeds a single environment's sign error is noisy, so the "
                  "maximum is near 1 for most measures: read it with its p90 and mean."]
    fig = figure(pop, names, list(scores))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(os.path.join(folder, "measures_vs_gap.png"), buffer.getvalue())
    lines += ["", "![each measure against the gap](measures_vs_gap.png)"]
  lines += ["", "The tidy table, one row per network and seed: [population.csv](population.csv)."]
  text = "\n".join(lines) + "\n"
  atomic_write_bytes(os.path.join(folder, "report.md"), text.encode())
  return text
