"""D5: agreement between the seeds of one N1 (N1 only: no N2 is trained)."""

from __future__ import annotations

import math

import numpy as np

from learnjax import metrics
from learnjax.report import analyses
from learnjax.report.context import Context
from learnjax.report.figures import colors, new_figure, wrapped
from learnjax.report.formatting import md_table, sort_models

MATRIX_TABLE_SEEDS = 12   # up to this many seeds the report shows the full k x k table
ANNOTATE_SEEDS = 12       # ... and the heatmap writes each value in its cell
TICK_EVERY_SEED = 20      # beyond, the axes get a few integer ticks


def seed_agreement(preds: np.ndarray) -> np.ndarray:
  """(k, k) percentage of examples on which seeds i and j predict the same. preds: (k, N)."""
  preds = np.atleast_2d(preds)   # one row at a time: k x k x N booleans need not fit in memory
  return np.stack([100.0 * (preds == row[None]).mean(-1) for row in preds])


def distinct_counts(preds: np.ndarray) -> np.ndarray:
  """Per example, how many distinct predictions the k seeds make. preds: (k, N) -> (N,)."""
  preds = np.sort(np.atleast_2d(preds), axis=0)
  return 1 + (np.diff(preds, axis=0) != 0).sum(0)


@analyses.register("seed_agreement", "Agreement between seeds",
                   lambda ctx: analyses.n1_only(ctx)
                   and any((r.get("seeds") or 0) > 1 for r in ctx.n1s), order=80)
def section_d5(ctx: Context) -> str:
  n1s = sorted(ctx.n1s, key=lambda r: (sort_models({r.get("model") for r in ctx.n1s},
                                                   ctx.config_models()).index(r.get("model")),
                                       str(r.get("variant")), r.get("batch_size")))
  if not n1s:
    return "No trained N1 stored."
  parts, matrices, histograms, seed_counts = [], {}, {}, {}
  for r in n1s:
    arrays = ctx.arrays("n1", r["n1"])
    if "n1_preds_d3" not in arrays:
      ctx.notes.append(f"N1 {r['n1']} has no stored predictions on D3")
      continue
    # The real D3 where the variant's D3 differs per seed (random_images): one set of images.
    preds = np.atleast_2d(arrays.get("n1_preds_test", arrays["n1_preds_d3"]))
    k = preds.shape[0]
    classes = max(int(r.get("num_classes") or 0), int(preds.max()) + 1 if preds.size else 1)
    bins = min(k, classes)   # k seeds make at most min(k, classes) distinct predictions
    matrix = seed_agreement(preds)
    label = f"{r.get('model')} ({r.get('variant')}, batch {r.get('batch_size')})"
    matrices[label] = matrix
    seed_counts[label] = k
    histograms[label] = (100.0 * np.bincount(distinct_counts(preds), minlength=bins + 1)[1:bins + 1]
                         / preds.shape[1])
    off = matrix[np.triu_indices(k, 1)]
    summary = (f"mean over seed pairs {off.mean():.1f} ± {off.std():.1f}%" if k > 1
               else "one seed only: nothing to compare")
    if k <= MATRIX_TABLE_SEEDS:
      table = [[f"seed {i}"] + [f"{v:.1f}" for v in row] for i, row in enumerate(matrix)]
      parts.append(f"**N1 {label}**: % of D3 on which seed i and seed j agree ({summary})\n\n"
                   + md_table([""] + [f"seed {j}" for j in range(k)], table))
    else:   # a k x k table would be unreadable: each seed's agreement with the others
      others = np.where(np.eye(k, dtype=bool), np.nan, matrix)
      table = [[f"seed {i}", f"{np.nanmean(row):.1f}", f"{np.nanmin(row):.1f}",
                f"{np.nanmax(row):.1f}"] for i, row in enumerate(others)]
      parts.append(f"**N1 {label}**: % of D3 on which a seed agrees with each of the other "
                   f"{k - 1} seeds ({summary}; the full matrix is in the figure)\n\n"
                   + md_table(["", "mean", "min", "max"], table))
  if not matrices:
    return "\n\n".join(parts) or "No stored predictions."
  k_max = max(len(h) for h in histograms.values())
  table = [[label] + [f"{h[i]:.1f}" if i < len(h) else "–" for i in range(k_max)]
           for label, h in histograms.items()]
  parts.append("**Number of distinct predictions the seeds make per D3 example** (% of D3; at "
               "most the number of seeds or of classes)\n\n"
               + md_table(["N1"] + [str(i + 1) for i in range(k_max)], table))
  gde = _gde_table(ctx, n1s)
  if gde:
    parts.append(gde)
  ctx.figures["seed_agreement.png"] = figure_d5_matrices(matrices)
  ctx.figures["distinct_predictions.png"] = figure_d5_histogram(histograms, max(seed_counts.values()))
  parts.append("![Seed agreement matrices](seed_agreement.png)\n\n"
               "![Distinct predictions per D3 example](distinct_predictions.png)")
  return "\n\n".join(parts)


def _gde_table(ctx: Context, n1s: list[dict]) -> str:
  """Per N1, its test accuracy beside the one its seeds' disagreement predicts (learnjax.metrics)."""
  names = ("n1_test_accuracy", "gde_accuracy", "gde_error", "n1_cace")
  rows = []
  for r in n1s:
    values = metrics.compute(ctx.arrays("n1", r["n1"]), r)
    if "gde_accuracy" in values:
      rows.append([f"{r.get('model')} ({r.get('variant')}, batch {r.get('batch_size')})"]
                  + [metrics.fmt_metric(k, values.get(k)) for k in names])
  if not rows:
    return ""
  return ("**Test accuracy predicted from seed disagreement** (GDE, Jiang et al. 2022; "
          "docs/protocol.md section 7)\n\n"
          + md_table(["N1"] + [metrics.REGISTRY[k].header for k in names], rows))


def figure_d5_matrices(matrices: dict):
  """One heatmap per N1, of a fixed size; values written in the cells only while they fit."""
  n = len(matrices)
  ncols = min(n, 3)
  nrows = math.ceil(n / ncols)
  fig = new_figure(3.6 * ncols + 1.0, 3.3 * nrows)
  axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
  low = min(float(m.min()) for m in matrices.values())
  image = None
  for ax, (label, matrix) in zip(axes, matrices.items()):
    k = matrix.shape[0]
    image = ax.imshow(matrix, cmap="viridis", vmin=min(low, 99.0), vmax=100)
    if k <= ANNOTATE_SEEDS:
      for i in range(k):
        for j in range(k):
          ax.text(j, i, f"{matrix[i, j]:.1f}", ha="center", va="center",
                  fontsize=7 if k <= 6 else 5,
                  color="white" if matrix[i, j] < (low + 100) / 2 else "black")
    if k <= TICK_EVERY_SEED:
      ax.set_xticks(range(k))
      ax.set_yticks(range(k))
    else:
      from matplotlib.ticker import MaxNLocator
      ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))
      ax.yaxis.set_major_locator(MaxNLocator(8, integer=True))
    ax.set_xlabel("seed j")
    ax.set_ylabel("seed i")
    ax.set_title(wrapped(label, 3.4, 9), fontsize=9)
  for ax in axes[n:]:
    ax.set_visible(False)
  fig.colorbar(image, ax=list(axes[:n]), label="agreement on D3 (%)", shrink=0.9)
  fig.suptitle("Agreement between seeds of N1", fontsize=11)
  return fig


def figure_d5_histogram(histograms: dict, seeds: int):
  bins = max(len(h) for h in histograms.values())
  fig = new_figure(min(max(6.0, 0.5 * bins + 3.0), 14.0),
                   3.6 + 0.25 * math.ceil(len(histograms) / 3))
  ax = fig.add_subplot()
  width = 0.8 / len(histograms)
  x = np.arange(1, bins + 1)
  for i, ((label, h), color) in enumerate(zip(histograms.items(), colors(len(histograms)))):
    ax.bar(x[:len(h)] + (i - (len(histograms) - 1) / 2) * width, h, width, color=color, label=label)
  if bins <= TICK_EVERY_SEED:
    ax.set_xticks(x)
  else:
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(12, integer=True))
  ax.set_xlim(0.4, bins + 0.6)
  ax.set_xlabel(f"number of distinct predictions among the {seeds} seeds")
  ax.set_ylabel("% of D3 examples")
  ax.grid(axis="y", alpha=0.3)
  ax.set_title("Distinct predictions of N1's seeds per test example", fontsize=10)
  fig.legend(title="N1", fontsize=8, title_fontsize=8, loc="outside lower center",
             ncols=min(len(histograms), 3))
  return fig
