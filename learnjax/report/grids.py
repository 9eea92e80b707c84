"""T2, T13, T3: learnability grids (rows N1, columns N2), one table and heatmap per data variant."""

from __future__ import annotations

import numpy as np

from learnjax.report import analyses
from learnjax.report.context import Context
from learnjax.report.figures import new_figure, wrapped
from learnjax.report.formatting import (md_table, n1_row_label, sort_models,
                                        sort_variants, variant_of, variant_title, varies)
from learnjax.report.status import first_done, is_oom


@analyses.register("grid", "Learnability grid (rows N1, columns N2)",
                   lambda ctx: analyses.with_cells(ctx) and analyses.count(ctx, "n2_model") > 1,
                   order=30)
def section_grid(ctx: Context, layers: bool | None = None) -> str:
  """T2, T13, T3: learnability grid, rows N1, columns N2; with ``layers`` (default: where the N1s
  differ in their number of parameter tensors) N1's layer count too."""
  cells = ctx.final_cells
  if not cells:
    return "No finished cells with the final N1."
  if layers is None:
    layers = len({c.get("n1_param_tensors") for c in cells if "n1_param_tensors" in c}) > 1
  parts = []
  variants = sort_variants(variant_of(c) for c in cells)
  for variant in variants:
    vcells = [c for c in cells if variant_of(c) == variant]
    grid = {}
    for c in vcells:
      col = str(c.get("n2_model")) + (f" (batch {c.get('n2_batch_size')})"
                                      if varies(vcells, "n2_batch_size") else "")
      grid.setdefault(n1_row_label(c, vcells), {})[col] = c
    rows = sort_models(grid, ctx.config_models())
    cols = sort_models({col for r in grid.values() for col in r}, ctx.config_models(("n2", "n1")))
    header_ = ["N1 \\ N2"] + cols + ["N1 params"] + (["N1 layers"] if layers else []) + [
        "N1 test acc %"]
    table = []
    for row in rows:
      some = first_done(list(grid[row].values()))
      extra = [f"{some['n1_params']:,}" if "n1_params" in some else "–"]
      if layers:
        extra.append(str(some.get("n1_param_tensors", "–")))
      table.append([row] + [ctx.num(grid[row].get(col), "learnability") for col in cols]
                   + extra + [ctx.num(some, "n1_test_accuracy")])
      for col in cols:
        if col not in grid[row]:
          ctx.notes.append(f"grid entry without a finished cell: N1 {row}, N2 {col} ({variant})")
    title = f"Learnability % (rows N1, columns N2), N1 trained on {variant_title(variant)}"
    name = f"learnability_grid_{variant}.png"
    ctx.figures[name] = figure_grid(rows, cols, grid, title)
    parts.append(f"**{title}**\n\n" + md_table(header_, table) + f"\n\n![{title}]({name})")
  if layers:
    parts.append("N1 layers = number of parameter tensors of N1 (the paper's layer count).")
  return "\n\n".join(parts)


def figure_grid(rows, cols, grid, title):
  values = np.full((len(rows), len(cols)), np.nan)
  for i, r in enumerate(rows):
    for j, col in enumerate(cols):
      c = grid[r].get(col)
      if c is not None and not is_oom(c) and "learnability" in c:
        values[i, j] = c["learnability"]["mean"]
  fig = new_figure(max(4.0, 0.75 * len(cols) + 2.8), max(3.0, 0.45 * len(rows) + 1.8))
  ax = fig.add_subplot()
  image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
  for i in range(len(rows)):
    for j in range(len(cols)):
      if np.isfinite(values[i, j]):
        ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=8,
                color="white" if values[i, j] < 60 else "black")
      else:
        ax.text(j, i, "–", ha="center", va="center", fontsize=8)
  ax.set_xticks(range(len(cols)), cols, rotation=30 if len(cols) > 3 else 0,
                ha="right" if len(cols) > 3 else "center", fontsize=8)
  ax.set_yticks(range(len(rows)), rows, fontsize=8)
  ax.set_xlabel("N2 (learner)")
  ax.set_ylabel("N1 (learnt network)")
  # The title spans the figure and wraps to its width (a small grid's figure is narrow).
  fig.suptitle(wrapped(title + " (mean over seeds)", fig.get_figwidth() - 0.4, 9), fontsize=9)
  fig.colorbar(image, ax=ax, label="learnability (%)")
  return fig


