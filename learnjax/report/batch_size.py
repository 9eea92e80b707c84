"""T14: learnability and N1's test accuracy against N1's batch size (out-of-memory cells shown)."""

from __future__ import annotations

from learnjax.report import analyses
from learnjax.report.context import Context
from learnjax.report.figures import colors, new_figure
from learnjax.report.formatting import md_table, sort_models, varies
from learnjax.report.status import is_oom


@analyses.register("batch_size", "Learnability against N1's batch size",
                   lambda ctx: analyses.with_cells(ctx)
                   and analyses.count(ctx, "n1_batch_size") > 1, order=20)
def section_t14(ctx: Context) -> str:
  cells = ctx.final_cells
  if not cells:
    return "No finished cells with the final N1."
  batches = sorted({c.get("n1_batch_size") for c in cells})
  with_n2 = varies(cells, "n2_model") or varies(cells, "variant")
  rows = {}
  for c in cells:
    label = str(c.get("n1_model")) + (f" → {c.get('n2_model')} ({c.get('variant')})" if with_n2 else "")
    rows.setdefault(label, {})[c.get("n1_batch_size")] = c
  labels = sort_models(rows, ctx.config_models())
  parts = []
  for key, title in (("learnability", "Learnability %"), ("n1_test_accuracy", "N1 test accuracy %")):
    table = [[label] + [ctx.num(rows[label].get(b), key) for b in batches] for label in labels]
    parts.append(f"**{title}** (rows N1, columns N1 batch size; OOM = out of memory)\n\n"
                 + md_table(["N1"] + [f"batch {b}" for b in batches], table))
  for label in labels:
    missing = [str(b) for b in batches if b not in rows[label]]
    if missing:
      ctx.notes.append(f"no finished cell for {label} at N1 batch size {', '.join(missing)}")
  n2 = sorted({f"{c.get('n2_model')} (batch {c.get('n2_batch_size')})" for c in cells})
  parts.append(f"N2: {', '.join(n2)}.")
  ctx.figures["learnability_vs_batch_size.png"] = figure_t14(labels, batches, rows)
  parts.append("![Learnability and N1 test accuracy against N1 batch size]"
               "(learnability_vs_batch_size.png)")
  return "\n\n".join(parts)


def figure_t14(labels, batches, rows):
  fig = new_figure(9.0, 3.6)
  axes = fig.subplots(1, 2)
  for ax, (key, ylabel) in zip(axes, (("learnability", "learnability (%)"),
                                      ("n1_test_accuracy", "N1 test accuracy (%)"))):
    for label, color in zip(labels, colors(len(labels))):
      pts = [(b, rows[label][b][key]) for b in batches
             if b in rows[label] and not is_oom(rows[label][b]) and key in rows[label][b]]
      oom = [b for b in batches if b in rows[label] and is_oom(rows[label][b])]
      if pts:
        xs, stats = zip(*pts)
        ax.errorbar(xs, [s["mean"] for s in stats], yerr=[s["std"] for s in stats], marker="o",
                    capsize=3, color=color, label=label)
      for b in oom:
        ax.plot([b], [0], marker="x", color=color, linestyle="none")
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel("N1 batch size")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
  axes[0].set_title("Learnability (N2 batch fixed)", fontsize=10)
  axes[1].set_title("N1 test accuracy (x at 0: out of memory)", fontsize=10)
  axes[1].legend(title="N1", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
  return fig


