"""Learnability curves: learnability and N2's fit against N2's training-set size, and their
summaries (area under the curve over log n, n_at, the prequential code length of N1's labels)."""

from __future__ import annotations

from learnjax import curves, metrics, train_sizes
from learnjax.report import analyses
from learnjax.report.context import Context
from learnjax.report.figures import colors, log_axis, new_figure
from learnjax.report.formatting import md_table, n1_row_label, natural_key, variant_rank, varies


def with_curves(ctx: Context) -> bool:
  return bool(ctx.curve_cells) and not analyses.n1_only(ctx)


def _planned_sizes(ctx: Context) -> list | None:
  try:
    return train_sizes.parse(ctx.block("data").get("n2_size"))
  except Exception:  # noqa: BLE001  a damaged record: the stored sizes alone
    return None


def _level(ctx: Context) -> float:
  return float(ctx.curve_level)


def _label(cell: dict, cells: list[dict]) -> str:
  with_n2 = varies(cells, "n2_model") or any(c.get("n2_model") != c.get("n1_model") for c in cells)
  label = n1_row_label(cell, cells, with_n2)
  if varies(cells, "variant"):
    label += f" ({cell.get('variant')})"
  if cell.get("n1_epoch") is not None:
    label += f" after epoch {cell['n1_epoch']}"
  return label


def _fmt(stats: dict | None, digits: int) -> str:
  return metrics.fmt(stats, digits)


@analyses.register("curves", "Learnability curves: agreement as D2 grows", with_curves, order=15)
def section_curves(ctx: Context) -> str:
  cells = [c for c in ctx.curve_cells if "learnability" in c]
  if not cells:
    return "No finished cells of a curve."
  planned = _planned_sizes(ctx)
  level = _level(ctx)
  groups = curves.group(cells)
  order = sorted(groups, key=lambda k: (variant_rank(k[0]), str(k[0]), natural_key(k[1]),
                                        str(k[2:])))
  summaries, rows, points, predates = {}, [], [], 0
  for key in order:
    group = groups[key]
    label = _label(group[0], cells)
    sizes = [c["n2_size"] for c in group]
    arrays = [ctx.arrays("cells", c["cell"]) for c in group]
    d2 = int(group[0].get("d2") or sizes[-1])
    summary = curves.summarise(sizes, arrays, int(group[0]["num_classes"]), d2, level)
    if planned and planned != [None] and sizes != planned:
      summary.code_bits = None   # an unfinished curve: its blocks are not the planned ones
      summary.code_missing = summary.code_missing or "incomplete"
    summaries[label] = summary
    stats = summary.stats()
    if "code_bits" in stats:
      code = _fmt(stats["code_bits"], 0)
    elif summary.code_missing == "predates":
      code = "– (stored before code models †)"
      predates += 1
    else:
      code = f"– ({len(sizes)} of {len(planned or sizes)} sizes)"
    ratio = _fmt(stats["compression"], 2) if "compression" in stats else "–"
    rows.append([label, f"{sizes[0]}–{sizes[-1]} ({len(sizes)})", _fmt(stats["auc"], 3),
                 curves.n_at_text(summary.n_at, sizes[-1]), code,
                 f"{summary.uniform_bits:.0f}", ratio])
    for n, c in zip(sizes, group):
      points.append([label, str(n), ctx.num(c, "learnability"),
                     ctx.num(c, "n2_train_agreement"), ctx.num(c, "n2_test_accuracy")])
  ctx.figures["learnability_curves.png"] = figure(summaries)
  summary_table = md_table(
      ["curve", "N2 sizes n (count)", "AUC over log n", f"n_at({level:g} %)",
       "prequential code (bits)", "uniform code (bits)", "compression ×"], rows)
  point_table = md_table(["curve", "n", "learnability %", "N2 train agreement %",
                          "N2 test acc %"], points)
  return (summary_table + "\n\n" + point_table
          + "\n\n![Learnability and N2's agreement with N1 on its own training examples against "
          "n](learnability_curves.png)\n\n"
          "n = the number of D2's first examples N2 learned (the sizes nest; D3 is the same for "
          "every n). AUC: area under learnability / 100 over log n, divided by log(n_max / n_min). "
          f"n_at({level:g} %): the smallest n whose learnability reaches {level:g} % "
          "(python -m learnjax.report --curve_level), per seed in brackets, '> n_max' for a seed "
          "whose curve never does (censored); before the brackets the median over seeds, only "
          "where more than half of them reach it (the larger middle value for an even count). "
          "Prequential code (Blier & Ollivier 2018; Voita & Titov 2020): N1's first n_1 labels "
          "of D2 at log2 K bits each, then each block (n_j, n_j+1] coded by a code model fitted "
          "to the first n_j examples (N2's architecture and training settings without the "
          "training-error stop, early stopping on the last tenth of them; docs/protocol.md "
          "section 8), −log2 p(N1's label); uniform code: |D2| log2 K; compression = uniform / "
          "prequential. N2 train agreement: N2 against N1 on "
          "the examples it learned (low: N2 underfit, and low learnability there is no evidence "
          "of complexity). Values: mean ± std over seeds. The other sections show each curve's "
          "largest size, the N2 that learned all of D2."
          + ("\n\n† These curves' cells were stored before learnjax fitted a code model to each "
             "prefix: they hold only the learnability N2s' probabilities, and those N2s stop at "
             "the protocol's training-error target, so their code is no prequential code; it is "
             "not shown. Measure the curve again in a new workdir to get it." if predates else ""))


def figure(summaries: dict):
  fig = new_figure(10.5, 3.8)
  axes = fig.subplots(1, 2)
  palette = dict(zip(summaries, colors(len(summaries))))
  ticks = sorted({n for s in summaries.values() for n in s.sizes})
  for label, s in summaries.items():
    for ax, values in ((axes[0], s.learnability), (axes[1], s.train_agreement)):
      if values is None:
        continue
      ax.errorbar(s.sizes, values.mean(0), yerr=values.std(0), marker="o", markersize=4,
                  capsize=3, color=palette[label], label=label)
  axes[0].set_ylabel("learnability on D3 (%)")
  axes[0].set_title("Learnability against N2's training-set size", fontsize=10)
  axes[1].set_ylabel("agreement on its training examples (%)")
  axes[1].set_title("N2's fit of the examples it learned", fontsize=10)
  shown = [t for i, t in enumerate(ticks) if i % max(1, len(ticks) // 6) == 0 or t == ticks[-1]]
  for ax in axes:
    ax.set_xlabel("n (first examples of D2 that N2 learned)")
    log_axis(ax, shown)
    ax.grid(alpha=0.3)
  handles, names = axes[0].get_legend_handles_labels()
  fig.legend(handles, names, title="curve", loc="outside right upper", fontsize=8,
             title_fontsize=8)
  return fig
