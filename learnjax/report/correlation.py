"""Learnability against generalisation: the paper's main claim as a number, for any sweep.

Across the cells, Kendall's tau (tau-b, ties allowed) between the mean learnability and N1's mean
test accuracy, and between the mean learnability and N1's generalisation gap (training accuracy
- test accuracy, for cells whose N1 is the final one: its training error is stored). The interval
is a percentile bootstrap over seeds: resample the seeds with replacement, recompute each cell's
means, recompute tau. The seeds of a grid are paired (a seed's random keys do not depend on the
cell), so one resample of seed indices serves every cell; cells with other seed counts are
resampled on their own. The bootstrap's random generator is fixed, so a report is reproducible.

Cells out of memory, diverged, or with a degenerate N1 are left out (their numbers measure nothing).
"""

from __future__ import annotations

import warnings

import numpy as np

from learnjax.report.context import Context
from learnjax.report.figures import colors, new_figure
from learnjax.report.formatting import md_table, sort_variants, variant_of, variant_title

BOOTSTRAP_DRAWS = 1000
BOOTSTRAP_SEED = 0
MIN_CELLS = 3


def kendall_tau(x, y) -> float:
  """Kendall's tau-b of two sequences; NaN where it is undefined (a constant sequence)."""
  from scipy import stats
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    tau = stats.kendalltau(np.asarray(x, float), np.asarray(y, float)).statistic
  return float(tau)


def bootstrap_tau(xs: list, ys: list, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED,
                  level: float = 0.95) -> tuple[float, float]:
  """Percentile interval of tau over seed resamples. xs, ys: per cell, the per-seed values."""
  rng = np.random.default_rng(seed)
  xs = [np.asarray(x, float) for x in xs]
  ys = [np.asarray(y, float) for y in ys]
  counts = {len(x) for x in xs}
  taus = []
  for _ in range(draws):
    shared = {n: rng.integers(0, n, n) for n in sorted(counts)}  # one resample per seed count
    mx = [x[shared[len(x)]].mean() for x in xs]
    my = [y[shared[len(x)]].mean() for x, y in zip(xs, ys)]
    taus.append(kendall_tau(mx, my))
  taus = np.asarray(taus)
  taus = taus[np.isfinite(taus)]
  if taus.size == 0:
    return float("nan"), float("nan")
  tail = 100 * (1 - level) / 2
  return float(np.percentile(taus, tail)), float(np.percentile(taus, 100 - tail))


def _per_seed(stats: dict | None):
  if not stats:
    return None
  values = stats.get("per_seed")
  if values is None:
    return np.asarray([stats["mean"]], float) if "mean" in stats else None
  values = np.asarray(values, float)
  return values if values.size and np.all(np.isfinite(values)) else None


def points(ctx: Context) -> list[dict]:
  """Per usable cell: its per-seed learnability, N1 test accuracy and (final N1) gap, in percent."""
  out = []
  for c in ctx.cells:
    if c.get("status") != "ok" or ctx.degenerate(c):
      continue
    learn, acc = _per_seed(c.get("learnability")), _per_seed(c.get("n1_test_accuracy"))
    if learn is None or acc is None or len(learn) != len(acc):
      continue
    gap = None
    errors = np.asarray((c.get("n1") or {}).get("train_error", []), float)
    if c.get("n1_epoch") is None and errors.shape == acc.shape and np.all(np.isfinite(errors)):
      gap = 100.0 * (1.0 - errors) - acc
    out.append({"cell": c, "learn": learn, "acc": acc, "gap": gap})
  return out


def _row(name: str, pts: list[dict], key: str) -> list[str] | None:
  pts = [p for p in pts if p[key] is not None]
  if len(pts) < MIN_CELLS:
    return None
  tau = kendall_tau([p["learn"].mean() for p in pts], [p[key].mean() for p in pts])
  lo, hi = bootstrap_tau([p["learn"] for p in pts], [p[key] for p in pts])
  interval = "–" if not np.isfinite(lo) else f"[{lo:+.2f}, {hi:+.2f}]"
  return [name, str(len(pts)), "–" if not np.isfinite(tau) else f"{tau:+.2f}", interval]


def section_correlation(ctx: Context) -> str:
  """Kendall's tau table and a scatter plot; one sentence when there are too few cells."""
  pts = points(ctx)
  left_out = len(ctx.cells) - len(pts)
  if len(pts) < MIN_CELLS:
    return (f"Not computed: a rank correlation needs at least {MIN_CELLS} cells with a "
            f"learnability and N1's test accuracy, and this report has {len(pts)}"
            + (f" ({left_out} left out: out of memory, diverged or degenerate N1)" if left_out
               else "") + ".")
  variants = sort_variants(variant_of(p["cell"]) for p in pts)
  rows = []
  groups = [("all cells", pts)] + ([(variant_title(v), [p for p in pts
                                                               if variant_of(p["cell"]) == v])
                                    for v in variants] if len(variants) > 1 else [])
  for key, what in (("acc", "N1 test accuracy"), ("gap", "N1 generalisation gap")):
    for name, group in groups:
      row = _row(f"learnability vs {what} ({name})", group, key)
      if row:
        rows.append(row)
  measure = ctx.block("train").get("error_measure", "running")
  text = (f"Kendall's τ (tau-b) across cells between the mean learnability and N1's mean test "
          f"accuracy, and N1's generalisation gap (training accuracy − test accuracy; final N1 "
          f"only, training error as measured by train.error_measure = {measure}). Interval: 95% "
          f"percentile bootstrap over seeds ({BOOTSTRAP_DRAWS} resamples, the same seed "
          f"indices for every cell, generator seed {BOOTSTRAP_SEED}). The paper's claim predicts "
          "τ > 0 against test accuracy and τ < 0 against the gap.")
  if left_out:
    text += (f" {left_out} cell(s) left out: out of memory, diverged, degenerate N1, or no "
             "per-seed numbers.")
  text += "\n\n" + md_table(["pair (which cells)", "cells", "τ", "95% interval"], rows)
  ctx.figures["learnability_vs_generalisation.png"] = figure_correlation(pts, variants)
  return text + ("\n\n![Learnability against N1's test accuracy and generalisation gap]"
                 "(learnability_vs_generalisation.png)")


def figure_correlation(pts: list[dict], variants: list):
  with_gap = any(p["gap"] is not None for p in pts)
  panels = 2 if with_gap else 1
  fig = new_figure(4.2 * panels + 1.8, 3.8)
  axes = np.atleast_1d(fig.subplots(1, panels))
  palette = dict(zip(variants, colors(len(variants))))
  for ax, key, xlabel in zip(axes, ("acc", "gap"), ("N1 test accuracy (%)",
                                                     "N1 generalisation gap (train − test acc, %)")):
    for variant in variants:
      group = [p for p in pts if variant_of(p["cell"]) == variant and p[key] is not None]
      if not group:
        continue
      ax.errorbar([p[key].mean() for p in group], [p["learn"].mean() for p in group],
                  xerr=[p[key].std() for p in group], yerr=[p["learn"].std() for p in group],
                  marker="o", markersize=4, linestyle="none", capsize=2, color=palette[variant],
                  label=variant_title(variant))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learnability (%)")
    ax.grid(alpha=0.3)
  axes[0].set_title("Learnability vs N1 test accuracy", fontsize=10)
  if with_gap:
    axes[1].set_title("Learnability vs generalisation gap", fontsize=10)
  fig.legend(*axes[0].get_legend_handles_labels(), title="N1 trained on", fontsize=8,
             title_fontsize=8, loc="outside right upper")
  fig.suptitle("One point per cell, error bars: std over seeds", fontsize=10)
  return fig
