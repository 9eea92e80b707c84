"""T8-T11: per cell, the 2x2 table of [N1 correct] x [N2 agrees with N1] in percent of D3."""

from __future__ import annotations

import numpy as np

from learnjax.report import analyses
from learnjax.report.context import Context
from learnjax.report.formatting import cell_label, md_table, natural_key, sort_models, variant_rank
from learnjax.report.status import is_oom


def correct_agree_table(n1_preds: np.ndarray, n2_preds: np.ndarray, labels: np.ndarray):
  """Per seed, % of D3 in [[correct & agree, correct & disagree], [wrong & agree, wrong & disagree]].

  Returns an (S, 2, 2) array.
  """
  n1_preds, n2_preds = np.atleast_2d(n1_preds), np.atleast_2d(n2_preds)
  correct = n1_preds == np.asarray(labels)[None]
  agree = n2_preds == n1_preds
  table = np.stack([np.stack([correct & agree, correct & ~agree], -1),
                    np.stack([~correct & agree, ~correct & ~agree], -1)], -2)
  return 100.0 * table.mean(axis=1)


def _one_pair(ctx: Context) -> bool:
  """One N1 architecture and one N2 (per variant): the 2x2 table of each cell is readable."""
  return (analyses.with_cells(ctx) and analyses.count(ctx, "n1_model") == 1
          and analyses.count(ctx, "n2_model") <= 1 and not analyses.with_snapshots(ctx))


@analyses.register("correct_agree", "N1 correct × N2 agrees", _one_pair, order=60)
def section_t8(ctx: Context) -> str:
  cells = [c for c in ctx.final_cells if not is_oom(c)]
  if not cells:
    return "No finished cells with the final N1."
  parts = []
  order = {m: i for i, m in enumerate(sort_models({c.get("n1_model") for c in cells},
                                                  ctx.config_models()))}
  for c in sorted(cells, key=lambda c: (order[c.get("n1_model")], natural_key(c.get("n2_model")),
                                        variant_rank(c.get("variant")))):
    arrays = ctx.arrays("cells", c["cell"])
    if not all(k in arrays for k in ("n1_preds_d3", "n2_preds_d3", "y_d3")):
      ctx.notes.append(f"cell {c['cell']} lacks the D3 predictions or labels for the 2x2 table")
      continue
    if "n1_preds_test" in arrays:   # D3 is the variant's noise (docs/protocol.md section 2)
      parts.append(f"**{cell_label(c)}**: no table: learnability's D3 is the variant's noise, "
                   "whose images have no true label (N1's test accuracy is taken on the real D3).")
      continue
    per_seed = correct_agree_table(arrays["n1_preds_d3"], arrays["n2_preds_d3"], arrays["y_d3"])
    mean, std = per_seed.mean(0), per_seed.std(0)
    cell = lambda i, j: f"{mean[i, j]:.1f} ± {std[i, j]:.1f}"
    rows_total = per_seed.sum(2)
    cols_total = per_seed.sum(1)
    total = lambda a, k: f"{a[:, k].mean():.1f} ± {a[:, k].std():.1f}"
    table = [["N1 correct", cell(0, 0), cell(0, 1), total(rows_total, 0)],
             ["N1 wrong", cell(1, 0), cell(1, 1), total(rows_total, 1)],
             ["total", total(cols_total, 0), total(cols_total, 1), "100"]]
    mean_of = lambda key: (f"{c[key]['mean']:.1f}%" if (c.get(key) or {}).get("mean") is not None
                           else "an undefined share (no such example)")
    parts.append(
        f"**{cell_label(c)}** (% of D3, mean ± std over {per_seed.shape[0]} seeds; row totals = "
        "N1 test accuracy / error, column totals = learnability / disagreement)\n\n"
        + md_table(["", "N2 agrees with N1", "N2 disagrees", "total"], table)
        + f"\n\nN2 agrees with N1 on {mean_of('agreement_n1_correct')} of the examples N1 gets "
        f"right and on {mean_of('agreement_n1_wrong')} of those it gets wrong (mean over the seeds "
        "where N1 has such examples).")
  return "\n\n".join(parts)


