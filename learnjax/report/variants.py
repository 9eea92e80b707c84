"""T1, T4, T5, T6 (and quickstart): learnability per data variant, one row per N1."""

from __future__ import annotations

import numpy as np

from learnjax.report import analyses
from learnjax.report.context import Context
from learnjax.report.figures import colors, new_figure
from learnjax.report.formatting import (md_table, n1_row_label, reference_variant, sort_models,
                                        sort_variants, variant_of, variant_title)
from learnjax.report.status import is_oom


@analyses.register("variants", "Learnability per data variant",
                   lambda ctx: analyses.with_cells(ctx) and analyses.count(ctx, "variant") > 1,
                   order=50)
def section_variants(ctx: Context) -> str:
  """T1, T4, T5, T6: rows N1, columns learnability per variant, N1 test accuracy on true data."""
  cells = ctx.final_cells
  if not cells:
    return "No finished cells with the final N1."
  with_n2 = any(c.get("n2_model") != c.get("n1_model") for c in cells)
  variants = sort_variants(variant_of(c) for c in cells)
  rows = {}
  for c in cells:
    rows.setdefault(n1_row_label(c, cells, with_n2), {})[variant_of(c)] = c
  labels = sort_models(rows, ctx.config_models())
  header_ = ["N1 → N2" if with_n2 else "N1"] + [f"learnability % ({variant_title(v)})"
                                                for v in variants]
  acc_variant = reference_variant(variants)
  header_.append(f"N1 test acc % ({variant_title(acc_variant)})")
  table = []
  for label in labels:
    by_variant = rows[label]
    table.append([label] + [ctx.num(by_variant.get(v), "learnability") for v in variants]
                 + [ctx.num(by_variant.get(acc_variant), "n1_test_accuracy")])
    missing = [v for v in variants if v not in by_variant]
    if missing:
      ctx.notes.append(f"no finished cell for {label} on {', '.join(missing)}")
  ctx.figures["learnability_per_variant.png"] = figure_variants(labels, variants, rows)
  return (md_table(header_, table) + "\n\n![Learnability per data variant]"
          "(learnability_per_variant.png)")


def figure_variants(labels, variants, rows):
  fig = new_figure(max(5.0, 1.1 * len(labels) + 2.5), 3.6)
  ax = fig.add_subplot()
  width = 0.8 / max(len(variants), 1)
  x = np.arange(len(labels))
  for i, (variant, color) in enumerate(zip(variants, colors(len(variants)))):
    means, stds = [], []
    for label in labels:
      c = rows[label].get(variant)
      ok = c is not None and not is_oom(c) and "learnability" in c
      means.append(c["learnability"]["mean"] if ok else np.nan)
      stds.append(c["learnability"]["std"] if ok else 0.0)
    ax.bar(x + (i - (len(variants) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
           color=color, label=variant_title(variant))
  tilt = len(labels) > 6 or max(len(label) for label in labels) > 16
  ax.set_xticks(x, labels, rotation=30 if tilt else 0, ha="right" if tilt else "center")
  ax.set_ylabel("learnability (%)")
  ax.set_ylim(0, 108)
  ax.set_yticks(range(0, 101, 20))
  ax.set_xlabel("N1 (N2 = N1's architecture unless noted)")
  ax.legend(title="N1 trained on", fontsize=8, title_fontsize=8, loc="upper left",
            bbox_to_anchor=(1.01, 1))
  ax.grid(axis="y", alpha=0.3)
  ax.set_title("Learnability per data variant (mean ± std over seeds)", fontsize=10)
  return fig


