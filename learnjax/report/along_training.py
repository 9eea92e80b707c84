"""F1: learnability and N1's test error along N1's training (snapshots after given epochs)."""

from __future__ import annotations

import warnings

import numpy as np

from learnjax.report import analyses
from learnjax.report.context import Context
from learnjax.report.figures import colors, log_axis, new_figure
from learnjax.report.formatting import md_table, n1_row_label, sort_models, varies
from learnjax.report.status import is_oom


@analyses.register("epochs", "Learnability and test error along N1's training",
                   lambda ctx: analyses.with_cells(ctx) and analyses.with_snapshots(ctx),
                   order=10)
def section_f1(ctx: Context) -> str:
  cells = [c for c in ctx.cells if not is_oom(c) and "learnability" in c]
  if not cells:
    return "No finished cells."
  groups = {}
  with_variant = varies(cells, "variant")
  with_n2 = any(c.get("n2_model") != c.get("n1_model") for c in cells)
  for c in cells:
    label = n1_row_label(c, cells, with_n2) + (f" ({c.get('variant')})" if with_variant else "")
    groups.setdefault(label, []).append(c)
  labels = sort_models(groups, ctx.config_models())
  series = {label: f1_points(groups[label]) for label in labels}
  table = []
  for label in labels:
    for epoch, final, c in series[label]:
      acc = c["n1_test_accuracy"]
      epoch_text = f"final (≈{epoch:.0f})" if final else f"{epoch:.0f}"
      table.append([label, epoch_text, ctx.num(c, "learnability"),
                    f"{100 - acc['mean']:.1f} ± {acc['std']:.1f}", ctx.num(c, "n2_test_accuracy")])
  histories = {}
  for label in labels:
    c = groups[label][0]
    matches = [r for r in ctx.n1s if r.get("variant") == c.get("variant")
               and r.get("model") == c.get("n1_model") and r.get("batch_size") == c.get("n1_batch_size")]
    if matches:
      arrays = ctx.arrays("n1", matches[0]["n1"])
      if "n1_history_train_error" in arrays:
        histories[label] = 100.0 * np.asarray(arrays["n1_history_train_error"], float)
  ctx.figures["learnability_vs_epochs.png"] = figure_f1(labels, series, histories)
  return (md_table(["N1", "N1 epoch", "learnability %", "N1 test error %", "N2 test acc %"], table)
          + "\n\n![Learnability and N1 test error against N1's training epochs]"
          "(learnability_vs_epochs.png)\n\nN1 epoch = the N1 after that many epochs of training "
          "(a seed that stopped earlier counts as its final self); final = N1 at its stop, drawn "
          "at its mean number of epochs over seeds. Error bars: std over seeds.")


def f1_points(cells: list[dict]) -> list[tuple[float, bool, dict]]:
  """(epoch, is_final, cell) sorted by epoch; the final N1 at its mean number of epochs."""
  points = []
  for c in cells:
    if c.get("n1_epoch") is None:
      epochs = (c.get("n1") or {}).get("epochs")
      if epochs:
        points.append((float(np.mean(epochs)), True, c))
    else:
      points.append((float(c["n1_epoch"]), False, c))
  return sorted(points, key=lambda p: (p[0], p[1]))


def figure_f1(labels, series, histories):
  panels = 3 if histories else 2
  fig = new_figure(4.0 * panels + 1.6, 3.6)
  axes = fig.subplots(1, panels)
  palette = dict(zip(labels, colors(len(labels))))
  all_epochs = [e for label in labels for e, _, _ in series[label]] + [
      h.shape[1] for h in histories.values()]
  log_x = bool(all_epochs) and max(all_epochs) / max(min(all_epochs), 1) > 8
  for label in labels:
    points = series[label]
    if not points:
      continue
    xs = [p[0] for p in points]
    learn = [p[2]["learnability"] for p in points]
    acc = [p[2]["n1_test_accuracy"] for p in points]
    color = palette[label]
    axes[0].errorbar(xs, [s["mean"] for s in learn], yerr=[s["std"] for s in learn], marker="o",
                     markersize=4, capsize=3, color=color, label=label)
    axes[1].errorbar(xs, [100 - s["mean"] for s in acc], yerr=[s["std"] for s in acc], marker="o",
                     markersize=4, capsize=3, color=color, label=label)
    for ax, values in ((axes[0], learn), (axes[1], [{"mean": 100 - s["mean"]} for s in acc])):
      finals = [(x, v["mean"]) for (x, final, _), v in zip(points, values) if final]
      if finals:
        ax.plot(*zip(*finals), marker="*", markersize=12, color=color, linestyle="none")
  if histories:
    for label, history in histories.items():
      epochs = np.arange(1, history.shape[1] + 1)
      with warnings.catch_warnings():  # epochs after every seed stopped are all-NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(history, 0), np.nanstd(history, 0)
      axes[2].plot(epochs, mean, color=palette[label], label=label)
      axes[2].fill_between(epochs, mean - std, mean + std, color=palette[label], alpha=0.2)
    axes[2].set_ylabel("N1 training error (%)")
    axes[2].set_title("N1 training error (running, per epoch)", fontsize=10)
  axes[0].set_ylabel("learnability (%)")
  axes[0].set_title("Learnability of N1 after each epoch", fontsize=10)
  axes[1].set_ylabel("N1 test error (%)")
  axes[1].set_title("N1 test error (100 − test accuracy)", fontsize=10)
  from matplotlib.lines import Line2D
  ticks = []   # the snapshot epochs (thinned), and the end of training if it lies well beyond
  for e in sorted({round(e) for label in labels for e, final, _ in series[label] if not final}):
    if e >= 1 and (not ticks or e / ticks[-1] >= 1.6):
      ticks.append(e)
  end = round(max(all_epochs)) if all_epochs else 0
  if end >= 1 and (not ticks or end / ticks[-1] >= 2.5):
    ticks.append(end)
  for ax in axes:
    ax.set_xlabel("N1 training epoch")
    if log_x:
      log_axis(ax, ticks)
    ax.grid(alpha=0.3)
  handles, names = axes[0].get_legend_handles_labels()
  handles.append(Line2D([], [], marker="*", markersize=10, color="gray", linestyle="none"))
  names.append("final N1 (mean epochs)")
  fig.legend(handles, names, title="N1", loc="outside right upper", fontsize=8, title_fontsize=8)
  return fig


