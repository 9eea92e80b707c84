"""T12: one-hidden-layer MLPs of growing width against a fixed N2."""

from __future__ import annotations

from learnjax.report import analyses
from learnjax.report.context import Context
from learnjax.report.formatting import md_table, n1_row_label, sort_models, sort_variants, varies


def _n1_sizes(ctx: Context) -> bool:
  """N1 varies alone: one N2, one variant, one batch size, final N1s."""
  return (analyses.with_cells(ctx) and analyses.count(ctx, "n1_model") > 1
          and analyses.count(ctx, "n2_model") <= 1 and analyses.count(ctx, "variant") <= 1
          and analyses.count(ctx, "n1_batch_size") <= 1 and not analyses.with_snapshots(ctx))


@analyses.register("n1_sizes", "Learnability per N1 (N2 fixed)", _n1_sizes, order=40)
def section_t12(ctx: Context) -> str:
  cells = ctx.final_cells
  if not cells:
    return "No finished cells with the final N1."
  with_n2 = varies(cells, "n2_model") or varies(cells, "variant")
  rows = {}
  for c in cells:
    label = n1_row_label(c, cells)
    if with_n2:
      label += f" → {c.get('n2_model')} ({c.get('variant')})"
    rows[label] = c
  table = [[label, f"{rows[label].get('n1_params', 0):,}" if "n1_params" in rows[label] else "–",
            ctx.num(rows[label], "learnability"), ctx.num(rows[label], "n1_test_accuracy")]
           for label in sort_models(rows, ctx.config_models())]
  n2 = sorted({str(c.get("n2_model")) for c in cells})
  text = md_table(["N1", "N1 params", "learnability %", "N1 test acc %"], table)
  return text + f"\n\nN2: {', '.join(n2)}; data variant: {', '.join(sort_variants(c.get('variant') for c in cells))}."


