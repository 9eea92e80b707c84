r"""The report of an experiment: markdown tables and PNG figures from a workdir's stored results.

  python -m learnjax.report --workdir=DIR [--out=DIR/report] [--reference=FILE.json]

Reads only what :mod:`learnjax.store` holds (``config.json``, ``cells/*``, ``n1/*``); it never
trains and never imports the training engine. Writes ``report.md`` and the figures (PNG) into the
out folder and prints the markdown's path.

The layout follows ``config.json``'s ``experiment`` (docs/protocol.md section 5):

- T1, T4, T5, T6 (and quickstart): rows = N1 model, columns = learnability per data variant and N1's
  test accuracy on true data; a bar chart of the same (learnability_per_variant.png).
- T2, T13, T3: grids, rows = N1, columns = N2, entries = learnability; plus N1's parameter count
  (T3: and its number of parameter tensors, the paper's "layers") and test accuracy; a heatmap
  per data variant (learnability_grid_<variant>.png).
- T7: per (N1, variant), the percentage of D2 that N1 gives to each class (mean over seeds),
  beside the true labels of D2; bars per class, or for more than 20 classes the top 5 classes in
  the table and the distributions sorted by share in the figure (class_distribution.png).
- T8, T9, T10, T11: per cell, the 2x2 table in percent of D3 of [N1 correct] x [N2 agrees with N1].
- T12: N1 model, parameter count, learnability, N1 test accuracy.
- T14: rows = N1 model, columns = N1 batch size, entries = learnability ("OOM" for a cell that ran
  out of accelerator memory); the same for N1's test accuracy; a line plot
  (learnability_vs_batch_size.png).
- F1: learnability and N1 test error (100 - test accuracy) against N1's training epochs, one line
  per N1, error bars = std over seeds, N1's final state drawn at its mean number of epochs; N1's
  training-error history beside them (learnability_vs_epochs.png); and the table.
- D5: per N1, the k x k matrix of the percentage of D3 on which seeds i and j agree, and the
  histogram of the number of distinct predictions the k seeds make per D3 example
  (seed_agreement.png, distinct_predictions.png).

An unknown or missing ``experiment`` gets only the generic table. Every report has a header (data
set, split sizes, seeds, training settings), notes (out-of-memory and diverged cells, grid entries
without a finished cell, networks that did not reach the stop error, N1s without finished cells),
and the generic table of every stored cell. The report shows what is stored; it cannot know which
cells a launch still has to run. Numbers are mean ± std over seeds (the stored population std), in
percent.

Reference numbers (``--reference``) are a JSON file::

  {"source": "Sharma et al., Table 2",
   "cells": [
     {"variant": "true", "n1_model": "shallow_cnn_16", "n2_model": "shallow_cnn_16",
      "n1_batch_size": 64, "n2_batch_size": 64, "n1_epoch": null,
      "learnability": 78.0, "n1_test_accuracy": 55.0, "n2_test_accuracy": 54.0,
      "note": "free text"}]}

Only ``cells`` and each entry's ``n1_model`` are required; other keys are refused (to catch typos).
An entry matches a stored cell when every key it gives among ``variant``, ``n1_model``,
``n2_model``, ``n1_batch_size``, ``n2_batch_size`` equals the cell's (an absent key matches any
value), and its ``n1_epoch`` (absent: null, the final N1) equals the cell's. A number is a plain number or
``{"mean": m, "std": s}``. Matched numbers are shown in the tables as ``ours (ref R)``, and a
comparison section lists every reference entry with ours, the reference and the difference
(ours - reference).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import warnings

import numpy as np

from learnjax.errors import LearnjaxError
from learnjax.store import Store, atomic_write_bytes, read_json

VARIANT_ORDER = ("random_labels", "random_images", "true")
VARIANT_TITLE = {"random_labels": "random labels", "random_images": "random images", "true": "true data"}
METRICS = ("learnability", "n1_test_accuracy", "n2_test_accuracy")
MATCH_KEYS = ("variant", "n1_model", "n2_model", "n1_batch_size", "n2_batch_size")
REFERENCE_KEYS = MATCH_KEYS + ("n1_epoch", "note") + METRICS

TITLES = {
    "T1": "T1: deep networks, learnability per data variant",
    "T2": "T2: shallow CNN width grid (N1 width x N2 width)",
    "T3": "T3: cross-architecture learnability (N1 x N2)",
    "T4": "T4: shallow CNNs, learnability per data variant",
    "T5": "T5: MLPs, learnability per data variant",
    "T6": "T6: shallow CNNs on CIFAR-100, learnability per data variant",
    "T7": "T7: class distribution of N1's predictions on D2",
    "T8": "T8: N1 correct x N2 agrees (shallow CNN)",
    "T9": "T9: N1 correct x N2 agrees (VGG11)",
    "T10": "T10: N1 correct x N2 agrees (ResNet18)",
    "T11": "T11: N1 correct x N2 agrees (MLP)",
    "T8-T11": "T8-T11: N1 correct x N2 agrees",
    "T12": "T12: one-hidden-layer MLPs (N2 fixed)",
    "T13": "T13: MLP depth grid (N1 depth x N2 depth)",
    "T14": "T14: N1 batch size",
    "F1": "F1: learnability and test error along N1's training",
    "D5": "D5: agreement between seeds",
    "quickstart": "quickstart: learnability per data variant",
}


# --------------------------------------------------------------------------------------------
# Loading


@dataclasses.dataclass
class Context:
  """Everything a section needs: the stored results, the reference, and what sections add."""
  workdir: str
  config: dict
  cells: list[dict]
  n1s: list[dict]
  reference: list[dict] = dataclasses.field(default_factory=list)
  reference_source: str = ""
  figures: dict = dataclasses.field(default_factory=dict)   # file name -> matplotlib Figure
  notes: list[str] = dataclasses.field(default_factory=list)
  _arrays: dict = dataclasses.field(default_factory=dict)

  @property
  def experiment(self) -> str:
    return str(self.config.get("experiment") or "")

  def arrays(self, kind: str, unit_id: str) -> dict:
    key = (kind, unit_id)
    if key not in self._arrays:
      self._arrays[key] = Store(self.workdir).load(kind, unit_id)[1]
    return self._arrays[key]

  def block(self, name: str) -> dict:
    """A block of the stored config (data, n1, n2, train), {} where it is missing."""
    value = self.config.get(name)
    return value if isinstance(value, dict) else {}

  @property
  def final_cells(self) -> list[dict]:
    return [c for c in self.cells if c.get("n1_epoch") is None]

  def config_models(self, blocks=("n1", "n2")) -> list[str]:
    """The model names of the config's n1 (and n2) blocks, in the order given there."""
    names = []
    for block in blocks:
      value = self.block(block).get("model", "")
      names += [v.strip() for v in str(value).split(",") if v.strip()]
    return names

  def num(self, cell: dict | None, key: str) -> str:
    """A cell's metric as 'mean ± std', with the matching reference number if there is one."""
    if cell is None:
      return "–"
    if is_oom(cell):
      return "OOM"
    text = fmt(cell.get(key))
    ref = self.reference_for(cell, key)
    return text if ref is None else f"{text} (ref {ref[0]:.1f})"

  def reference_for(self, cell: dict, key: str):
    for entry in self.reference:
      if key in entry and reference_matches(entry, cell):
        return as_mean_std(entry[key])
    return None


def load(workdir: str, reference_path: str | None = None) -> Context:
  """The stored results of a workdir; a LearnjaxError when there are none."""
  if not os.path.isdir(workdir):
    raise LearnjaxError(f"workdir {workdir} does not exist")
  config_path = os.path.join(workdir, "config.json")
  config = read_json(config_path) if os.path.exists(config_path) else {}
  if not isinstance(config, dict):
    raise LearnjaxError(f"{config_path} does not hold a config (a JSON object)")
  store = Store(workdir)
  cells, n1s = store.results("cells"), store.results("n1")
  if not cells and not n1s:
    raise LearnjaxError(f"no finished results in {workdir} (no cells/*/result.json or "
                        "n1/*/result.json); run python -m learnjax.main with this workdir first")
  for kind, results, key in (("cells", cells, "cell"), ("n1", n1s, "n1")):
    for r in results:
      if not isinstance(r, dict) or key not in r:
        raise LearnjaxError(f"a {kind}/*/result.json in {workdir} is not a learnjax result "
                            f"(no {key!r} field); delete its folder to recompute it")
  context = Context(workdir, config, cells, n1s)
  if reference_path:
    context.reference, context.reference_source = load_reference(reference_path)
  return context


def load_reference(path: str) -> tuple[list[dict], str]:
  if not os.path.exists(path):
    raise LearnjaxError(f"reference file {path} does not exist")
  data = read_json(path)
  entries = data.get("cells") if isinstance(data, dict) else None
  if not isinstance(entries, list):
    raise LearnjaxError(f"reference file {path} must hold {{\"cells\": [...]}}")
  for i, entry in enumerate(entries):
    where = f"reference file {path}, cells[{i}]"
    if not isinstance(entry, dict) or "n1_model" not in entry:
      raise LearnjaxError(f"{where}: each entry must be an object with at least n1_model")
    unknown = sorted(set(entry) - set(REFERENCE_KEYS))
    if unknown:
      raise LearnjaxError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"known: {', '.join(REFERENCE_KEYS)}")
    for key in METRICS:
      if key in entry and as_mean_std(entry[key]) is None:
        raise LearnjaxError(f"{where}: {key} must be a number or {{\"mean\": m, \"std\": s}}")
  source = data.get("source", "")
  return entries, str(source) if source else ""


def reference_matches(entry: dict, cell: dict) -> bool:
  if any(key in entry and entry[key] != cell.get(key) for key in MATCH_KEYS):
    return False
  return entry.get("n1_epoch") == cell.get("n1_epoch")


def as_mean_std(value):
  """(mean, std or None) from a reference number; None if it is not one."""
  if isinstance(value, bool):
    return None
  if isinstance(value, (int, float)):
    return float(value), None
  if isinstance(value, dict) and isinstance(value.get("mean"), (int, float)):
    std = value.get("std")
    return float(value["mean"]), float(std) if isinstance(std, (int, float)) else None
  return None


# --------------------------------------------------------------------------------------------
# Formatting


def fmt(stats: dict | None, digits: int = 1) -> str:
  if not stats or "mean" not in stats:
    return "–"
  return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def md_table(header: list[str], rows: list[list]) -> str:
  clean = lambda x: str(x).replace("|", "\\|").replace("\n", " ")
  lines = ["| " + " | ".join(clean(h) for h in header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(clean(x) for x in row) + " |" for row in rows]
  return "\n".join(lines)


def natural_key(name) -> tuple:
  return tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
               for t in re.split(r"(\d+)", str(name)) if t)


def sort_models(names, preferred=()) -> list:
  rank = {name: i for i, name in enumerate(dict.fromkeys(preferred))}
  return sorted(names, key=lambda n: (rank.get(n, len(rank)), natural_key(n)))


def variant_rank(variant) -> int:
  return VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)


def sort_variants(variants) -> list:
  return sorted(set(variants), key=lambda v: (variant_rank(v), str(v)))


def is_oom(cell: dict) -> bool:
  return cell.get("status") == "out_of_memory"


def epochs_text(values) -> str:
  values = np.asarray(values, float)
  if values.size == 0:
    return "–"
  if values.min() == values.max():
    return f"{values[0]:.0f}"
  return f"{values.mean():.0f} ({values.min():.0f}–{values.max():.0f})"


def status_text(cell: dict) -> str:
  if is_oom(cell):
    return "out of memory"
  status = cell.get("status", "–")
  if status != "diverged":
    return status
  parts = []
  for net in ("n1", "n2"):
    summary = cell.get(net) or {}
    seeds = [i for i, d in enumerate(summary.get("diverged", [])) if d]
    if seeds:
      at = summary.get("diverged_epoch", [])
      where = ", ".join(f"seed {i}" + (f" epoch {at[i]}" if i < len(at) else "") for i in seeds)
      parts.append(f"{net.upper()} {where}")
  return "diverged (" + "; ".join(parts) + ")" if parts else "diverged"


def cell_label(cell: dict) -> str:
  epoch = "" if cell.get("n1_epoch") is None else f" after N1 epoch {cell['n1_epoch']}"
  return (f"{cell.get('n1_model')} → {cell.get('n2_model')} ({cell.get('variant')}, "
          f"N1 batch {cell.get('n1_batch_size')}{epoch})")


def varies(cells: list[dict], key: str) -> bool:
  return len({c.get(key) for c in cells}) > 1


def n1_row_label(cell: dict, cells: list[dict], with_n2: bool = False) -> str:
  """The N1 of a cell, with the batch size / N2 only where they vary in ``cells``."""
  label = str(cell.get("n1_model"))
  if varies(cells, "n1_batch_size"):
    label += f" (batch {cell.get('n1_batch_size')})"
  if with_n2:
    label += f" → {cell.get('n2_model')}"
    if varies(cells, "n2_batch_size"):
      label += f" (batch {cell.get('n2_batch_size')})"
  return label


def first_done(cells: list[dict]) -> dict | None:
  done = [c for c in cells if not is_oom(c)]
  return done[0] if done else (cells[0] if cells else None)


# --------------------------------------------------------------------------------------------
# Figures (matplotlib's object API with the Agg canvas: no global pyplot state)


def new_figure(width: float, height: float):
  """A figure drawn by the Agg canvas, outside pyplot (no global backend switch, no registry)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(width, height), dpi=150, layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def log_axis(ax, ticks) -> None:
  """A log-scaled x axis labelled with plain numbers at ``ticks``."""
  from matplotlib.ticker import NullFormatter, NullLocator
  ax.set_xscale("log")
  ax.xaxis.set_minor_locator(NullLocator())
  ax.xaxis.set_minor_formatter(NullFormatter())
  ax.set_xticks(ticks, [str(t) for t in ticks])


def colors(n: int) -> list:
  import matplotlib
  cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
  return [cmap(i % cmap.N) for i in range(n)]


# --------------------------------------------------------------------------------------------
# Sections: each returns markdown and may add figures and notes to the context


def header(ctx: Context) -> str:
  cells = ctx.cells
  experiment = ctx.experiment or "(unknown experiment)"
  lines = [f"# Learnability report: {TITLES.get(ctx.experiment, experiment)}", ""]
  datasets = sorted({str(r.get("dataset")) for r in cells + ctx.n1s if r.get("dataset")})
  seeds = sorted({r.get("seeds") for r in cells + ctx.n1s if r.get("seeds") is not None})
  data = ctx.block("data")
  dataset = ", ".join(datasets) or data.get("name", "?")
  lines.append(f"- workdir: `{ctx.workdir}`")
  lines.append(f"- experiment: {experiment}")
  sizes = ""
  sized = [c for c in cells if all(k in c for k in ("d1", "d2", "d3"))]
  if sized:
    sizes = f"; |D1| = {sized[0]['d1']}, |D2| = {sized[0]['d2']}, |D3| = {sized[0]['d3']}"
  elif ctx.n1s:  # N1 only (D5): the sizes of D2 and D3 from N1's stored labels
    arrays = ctx.arrays("n1", ctx.n1s[0]["n1"])
    d2 = next((np.shape(arrays[k])[-1] for k in ("y_d2", "n1_preds_d2") if k in arrays), "?")
    d3 = next((np.shape(arrays[k])[-1] for k in ("y_d3", "n1_preds_d3") if k in arrays), "?")
    d1 = data.get("n1_size") or "first half of the training split"
    sizes = f"; |D1| = {d1}, |D2| = {d2}, |D3| = {d3}"
  classes = {r.get("num_classes") for r in cells + ctx.n1s if r.get("num_classes")}
  classes_text = f"; {', '.join(map(str, sorted(classes)))} classes" if classes else ""
  lines.append(f"- data: {dataset}{sizes}{classes_text}")
  lines.append(f"- seeds: {', '.join(map(str, seeds)) or '?'} per cell (numbers are mean ± std "
               "over seeds, population std, in percent)")
  train = ctx.block("train")
  if train:
    lines.append(f"- training: SGD lr {train.get('learning_rate')}, momentum {train.get('momentum')}, "
                 f"plateau x{train.get('plateau_factor')} after {train.get('plateau_patience')} "
                 f"epochs, stop below {100 * float(train.get('stop_error', 0)):g}% training error "
                 f"or after {train.get('max_epochs')} epochs")
  n_final = len(ctx.final_cells)
  lines.append(f"- stored: {len(cells)} cells ({n_final} with the final N1), {len(ctx.n1s)} trained "
               "N1s; the report shows what is stored, not what a launch still has to run")
  if ctx.reference:
    lines.append(f"- reference numbers: {ctx.reference_source or 'given'} (shown as `ours (ref R)`)")
  return "\n".join(lines)


def section_variants(ctx: Context) -> str:
  """T1, T4, T5, T6: rows N1, columns learnability per variant, N1 test accuracy on true data."""
  cells = ctx.final_cells
  if not cells:
    return "No finished cells with the final N1."
  with_n2 = any(c.get("n2_model") != c.get("n1_model") for c in cells)
  variants = sort_variants(c.get("variant") for c in cells)
  rows = {}
  for c in cells:
    rows.setdefault(n1_row_label(c, cells, with_n2), {})[c.get("variant")] = c
  labels = sort_models(rows, ctx.config_models())
  header_ = ["N1 → N2" if with_n2 else "N1"] + [f"learnability % ({VARIANT_TITLE.get(v, v)})"
                                                for v in variants]
  acc_variant = "true" if "true" in variants else variants[-1]
  header_.append(f"N1 test acc % ({VARIANT_TITLE.get(acc_variant, acc_variant)})")
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
           color=color, label=VARIANT_TITLE.get(variant, variant))
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


def section_grid(ctx: Context, layers: bool = False) -> str:
  """T2, T13 (and T3 with ``layers``): learnability grid, rows N1, columns N2."""
  cells = ctx.final_cells
  if not cells:
    return "No finished cells with the final N1."
  parts = []
  variants = sort_variants(c.get("variant") for c in cells)
  for variant in variants:
    vcells = [c for c in cells if c.get("variant") == variant]
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
    title = f"Learnability % (rows N1, columns N2), N1 trained on {VARIANT_TITLE.get(variant, variant)}"
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
  ax.set_title(title + "\n(mean over seeds)", fontsize=9)
  fig.colorbar(image, ax=ax, label="learnability (%)")
  return fig


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


def class_distribution(preds: np.ndarray, num_classes: int) -> np.ndarray:
  """Percentage of examples predicted as each class, per seed -> mean over seeds. preds: (S, N)."""
  preds = np.atleast_2d(np.asarray(preds))
  counts = np.stack([np.bincount(p, minlength=num_classes)[:num_classes] for p in preds])
  return 100.0 * (counts / preds.shape[1]).mean(axis=0)


def section_t7(ctx: Context) -> str:
  n1s = ctx.n1s
  if not n1s:
    return "No trained N1 stored."
  models = sort_models({r.get("model") for r in n1s}, ctx.config_models())
  num_classes = max(int(r.get("num_classes") or 0) for r in n1s)
  dists, d2_labels = {}, None
  for r in sorted(n1s, key=lambda r: (models.index(r.get("model")), variant_rank(r.get("variant")),
                                      r.get("batch_size") or 0)):
    arrays = ctx.arrays("n1", r["n1"])
    if "n1_preds_d2" not in arrays:
      ctx.notes.append(f"N1 {r['n1']} has no stored predictions on D2 (n1_preds_d2)")
      continue
    dists[r["n1"]] = (r, class_distribution(arrays["n1_preds_d2"], num_classes))
    if d2_labels is None and "y_d2" in arrays:
      d2_labels = class_distribution(arrays["y_d2"][None], num_classes)
  wide = num_classes > 20
  by_batch = varies(n1s, "batch_size")
  label = lambda r: str(r.get("model")) + (f" (batch {r.get('batch_size')})" if by_batch else "")
  if wide:
    header_ = ["N1", "variant", "largest class %", "top 5 classes (%)", "classes predicted",
               "learnability %"]
  else:
    header_ = ["N1", "variant"] + [str(k) for k in range(num_classes)] + ["learnability %"]
  table = []
  for r, dist in dists.values():
    matching = [c for c in ctx.final_cells if c.get("variant") == r.get("variant")
                and c.get("n1_model") == r.get("model") and c.get("n1_batch_size") == r.get("batch_size")]
    learn = ctx.num(matching[0], "learnability") if len(matching) == 1 else (
        "several N2" if matching else "–")
    if wide:
      top = np.argsort(-dist)[:5]
      numbers = [f"{dist.max():.1f}", ", ".join(f"{k}: {dist[k]:.1f}" for k in top),
                 str(int((dist > 0).sum()))]
    else:
      numbers = [f"{d:.1f}" for d in dist]
    table.append([label(r), r.get("variant")] + numbers + [learn])
  if d2_labels is not None:
    if wide:
      top = np.argsort(-d2_labels)[:5]
      numbers = [f"{d2_labels.max():.1f}", ", ".join(f"{k}: {d2_labels[k]:.1f}" for k in top),
                 str(int((d2_labels > 0).sum()))]
    else:
      numbers = [f"{d:.1f}" for d in d2_labels]
    table.append(["(true labels of D2)", "–"] + numbers + ["–"])
  text = ("Percentage of D2 that N1 predicts as each class (mean over seeds); the last row is the "
          "true label distribution of D2.\n\n" + md_table(header_, table))
  if dists:
    ctx.figures["class_distribution.png"] = figure_t7(list(dists.values()), d2_labels,
                                                     num_classes, label)
    text += "\n\n![Class distribution of N1's predictions on D2](class_distribution.png)"
  return text


def figure_t7(dists, d2_labels, num_classes, label):
  groups = {}
  for r, dist in dists:
    groups.setdefault(label(r), []).append((r.get("variant"), dist))
  n = len(groups)
  ncols = min(n, 2)
  nrows = math.ceil(n / ncols)
  fig = new_figure(5.2 * ncols + 1.5, 2.9 * nrows)
  axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharey=True)).ravel()
  variants = sort_variants(v for entries in groups.values() for v, _ in entries)
  palette = dict(zip(variants, colors(len(variants))))
  x = np.arange(num_classes)
  wide = num_classes > 20
  for ax, (name, entries) in zip(axes, groups.items()):
    if wide:  # too many classes for bars: each distribution sorted, largest class first
      for variant, dist in sorted(entries, key=lambda e: variants.index(e[0])):
        ax.step(np.arange(1, num_classes + 1), np.sort(dist)[::-1], where="mid",
                color=palette[variant], label=f"N1 trained on {VARIANT_TITLE.get(variant, variant)}")
      if d2_labels is not None:
        ax.step(np.arange(1, num_classes + 1), np.sort(d2_labels)[::-1], where="mid", color="black",
                linewidth=1, linestyle="--", label="true labels of D2")
      log_axis(ax, [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= num_classes])
      ax.set_title(f"N1 = {name}", fontsize=10)
      ax.set_xlabel("class rank (classes sorted by share)")
      ax.set_ylabel("% of D2")
      ax.grid(alpha=0.3)
      continue
    width = 0.8 / max(len(entries), 1)
    for i, (variant, dist) in enumerate(sorted(entries, key=lambda e: variants.index(e[0]))):
      ax.bar(x + (i - (len(entries) - 1) / 2) * width, dist, width, color=palette[variant],
             label=f"N1 trained on {VARIANT_TITLE.get(variant, variant)}")
    if d2_labels is not None:
      ax.step(np.append(x, num_classes) - 0.5, np.append(d2_labels, d2_labels[-1]), where="post",
              color="black", linewidth=1, label="true labels of D2")
    ax.set_title(f"N1 = {name}", fontsize=10)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("% of D2")
    if num_classes <= 20:
      ax.set_xticks(x)
    ax.grid(axis="y", alpha=0.3)
  for ax in axes[n:]:
    ax.set_visible(False)
  handles, labels = axes[0].get_legend_handles_labels()
  seen = dict(zip(labels, handles))
  for ax in axes[1:n]:
    for h, l in zip(*ax.get_legend_handles_labels()):
      seen.setdefault(l, h)
  fig.legend(list(seen.values()), list(seen.keys()), loc="outside right upper", fontsize=8)
  fig.suptitle("Class distribution of N1's predictions on D2 (mean over seeds)", fontsize=11)
  return fig


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
    per_seed = correct_agree_table(arrays["n1_preds_d3"], arrays["n2_preds_d3"], arrays["y_d3"])
    mean, std = per_seed.mean(0), per_seed.std(0)
    cell = lambda i, j: f"{mean[i, j]:.1f} ± {std[i, j]:.1f}"
    rows_total = per_seed.sum(2)
    cols_total = per_seed.sum(1)
    total = lambda a, k: f"{a[:, k].mean():.1f} ± {a[:, k].std():.1f}"
    table = [["N1 correct", cell(0, 0), cell(0, 1), total(rows_total, 0)],
             ["N1 wrong", cell(1, 0), cell(1, 1), total(rows_total, 1)],
             ["total", total(cols_total, 0), total(cols_total, 1), "100"]]
    with np.errstate(invalid="ignore", divide="ignore"):
      agree_if_correct = 100 * per_seed[:, 0, 0] / rows_total[:, 0]
      agree_if_wrong = 100 * per_seed[:, 1, 0] / rows_total[:, 1]
    parts.append(
        f"**{cell_label(c)}** (% of D3, mean ± std over {per_seed.shape[0]} seeds; row totals = "
        "N1 test accuracy / error, column totals = learnability / disagreement)\n\n"
        + md_table(["", "N2 agrees with N1", "N2 disagrees", "total"], table)
        + f"\n\nN2 agrees with N1 on {np.nanmean(agree_if_correct):.1f}% of the examples N1 gets "
        f"right and on {np.nanmean(agree_if_wrong):.1f}% of those it gets wrong (mean over seeds).")
  return "\n\n".join(parts)


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


def seed_agreement(preds: np.ndarray) -> np.ndarray:
  """(k, k) percentage of examples on which seeds i and j predict the same. preds: (k, N)."""
  preds = np.atleast_2d(preds)
  return 100.0 * (preds[:, None, :] == preds[None, :, :]).mean(-1)


def distinct_counts(preds: np.ndarray) -> np.ndarray:
  """Per example, how many distinct predictions the k seeds make. preds: (k, N) -> (N,)."""
  preds = np.sort(np.atleast_2d(preds), axis=0)
  return 1 + (np.diff(preds, axis=0) != 0).sum(0)


def section_d5(ctx: Context) -> str:
  n1s = sorted(ctx.n1s, key=lambda r: (sort_models({r.get("model") for r in ctx.n1s},
                                                   ctx.config_models()).index(r.get("model")),
                                       str(r.get("variant")), r.get("batch_size")))
  if not n1s:
    return "No trained N1 stored."
  parts, matrices, histograms = [], {}, {}
  for r in n1s:
    arrays = ctx.arrays("n1", r["n1"])
    if "n1_preds_d3" not in arrays:
      ctx.notes.append(f"N1 {r['n1']} has no stored predictions on D3")
      continue
    preds = np.atleast_2d(arrays["n1_preds_d3"])
    k = preds.shape[0]
    matrix = seed_agreement(preds)
    label = f"{r.get('model')} ({r.get('variant')}, batch {r.get('batch_size')})"
    matrices[label] = matrix
    histograms[label] = 100.0 * np.bincount(distinct_counts(preds), minlength=k + 1)[1:] / preds.shape[1]
    table = [[f"seed {i}"] + [f"{v:.1f}" for v in row] for i, row in enumerate(matrix)]
    off = matrix[np.triu_indices(k, 1)]
    summary = (f"mean over seed pairs {off.mean():.1f} ± {off.std():.1f}%" if k > 1
               else "one seed only: nothing to compare")
    parts.append(f"**N1 {label}**: % of D3 on which seed i and seed j agree ({summary})\n\n"
                 + md_table([""] + [f"seed {j}" for j in range(k)], table))
  if not matrices:
    return "\n\n".join(parts) or "No stored predictions."
  k_max = max(len(h) for h in histograms.values())
  table = [[label] + [f"{h[i]:.1f}" if i < len(h) else "–" for i in range(k_max)]
           for label, h in histograms.items()]
  parts.append("**Number of distinct predictions the seeds make per D3 example** (% of D3)\n\n"
               + md_table(["N1"] + [str(i + 1) for i in range(k_max)], table))
  ctx.figures["seed_agreement.png"] = figure_d5_matrices(matrices)
  ctx.figures["distinct_predictions.png"] = figure_d5_histogram(histograms)
  parts.append("![Seed agreement matrices](seed_agreement.png)\n\n"
               "![Distinct predictions per D3 example](distinct_predictions.png)")
  return "\n\n".join(parts)


def figure_d5_matrices(matrices: dict):
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
    for i in range(k):
      for j in range(k):
        ax.text(j, i, f"{matrix[i, j]:.1f}", ha="center", va="center", fontsize=7,
                color="white" if matrix[i, j] < (low + 100) / 2 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("seed j")
    ax.set_ylabel("seed i")
    ax.set_title(label, fontsize=9)
  for ax in axes[n:]:
    ax.set_visible(False)
  fig.colorbar(image, ax=list(axes[:n]), label="agreement on D3 (%)", shrink=0.9)
  fig.suptitle("Agreement between seeds of N1", fontsize=11)
  return fig


def figure_d5_histogram(histograms: dict):
  k_max = max(len(h) for h in histograms.values())
  fig = new_figure(max(6.0, 0.9 * k_max + 3.0), 3.6 + 0.25 * math.ceil(len(histograms) / 3))
  ax = fig.add_subplot()
  width = 0.8 / len(histograms)
  x = np.arange(1, k_max + 1)
  for i, ((label, h), color) in enumerate(zip(histograms.items(), colors(len(histograms)))):
    ax.bar(x[:len(h)] + (i - (len(histograms) - 1) / 2) * width, h, width, color=color, label=label)
  ax.set_xticks(x)
  ax.set_xlabel(f"number of distinct predictions among the {k_max} seeds")
  ax.set_ylabel("% of D3 examples")
  ax.grid(axis="y", alpha=0.3)
  ax.set_title("Distinct predictions of N1's seeds per test example", fontsize=10)
  fig.legend(title="N1", fontsize=8, title_fontsize=8, loc="outside lower center",
             ncols=min(len(histograms), 3))
  return fig


def section_cells(ctx: Context) -> str:
  """The generic table of every stored cell (like sweep.format_table, in markdown)."""
  cells = ctx.cells
  if not cells:
    return "No finished cells (only N1s are stored)."
  cells = sorted(cells, key=lambda c: (
      variant_rank(c.get("variant")), str(c.get("variant")),
      sort_models({x.get("n1_model") for x in cells}, ctx.config_models()).index(c.get("n1_model")),
      c.get("n1_batch_size") or 0, natural_key(c.get("n2_model")), c.get("n2_batch_size") or 0,
      -1 if c.get("n1_epoch") is None else c["n1_epoch"]))
  with_epoch = any(c.get("n1_epoch") is not None for c in cells)
  header_ = ["variant", "N1", "N1 batch", "N2", "N2 batch"] + (["N1 epoch"] if with_epoch else []) + [
      "learnability %", "N1 test acc %", "N2 test acc %", "N1 epochs", "N2 epochs", "status"]
  rows = []
  for c in cells:
    row = [c.get("variant"), c.get("n1_model"), c.get("n1_batch_size"), c.get("n2_model"),
           c.get("n2_batch_size")]
    if with_epoch:
      row.append("final" if c.get("n1_epoch") is None else c["n1_epoch"])
    if is_oom(c):
      row += ["OOM", "OOM", "OOM", "–", "–"]
    else:
      row += [ctx.num(c, k) for k in METRICS]
      row += [epochs_text((c.get(net) or {}).get("epochs", [])) for net in ("n1", "n2")]
    row.append(status_text(c))
    rows.append(row)
  return md_table(header_, rows) + ("\n\nN1/N2 epochs: mean over seeds (min–max where they differ). "
                                    "N1 epochs are those of the final N1.")


def collect_notes(ctx: Context) -> list[str]:
  notes = []
  for c in ctx.cells:
    if is_oom(c):
      notes.append(f"out of memory: {cell_label(c)}: {c.get('error', '')}".rstrip(": "))
    elif c.get("status") == "diverged":
      notes.append(f"{status_text(c)}: {cell_label(c)}")
    elif c.get("status") not in (None, "ok"):
      notes.append(f"status {c.get('status')}: {cell_label(c)}")
  for r in ctx.n1s:
    if any(r.get("diverged", [])) and not any(
        c.get("status") == "diverged" and c.get("variant") == r.get("variant")
        and c.get("n1_model") == r.get("model") for c in ctx.cells):
      notes.append(f"N1 {r['n1']} diverged in seeds "
                   f"{[i for i, d in enumerate(r['diverged']) if d]}")
  n2_none = str(ctx.block("n2").get("model", "")) == "none"
  if not n2_none:
    done = {(c.get("variant"), c.get("n1_model"), c.get("n1_batch_size")) for c in ctx.cells}
    for r in ctx.n1s:
      if (r.get("variant"), r.get("model"), r.get("batch_size")) not in done:
        notes.append(f"N1 {r['n1']} is trained but none of its cells is finished")
  for kind in ("n1", "cells"):  # in-flight checkpoints of units without a result
    root = os.path.join(ctx.workdir, "checkpoints", kind)
    pending = sorted(u for u in (os.listdir(root) if os.path.isdir(root) else [])
                     if not os.path.exists(os.path.join(ctx.workdir, kind, u, "result.json")))
    if pending:
      notes.append(f"{'N1' if kind == 'n1' else 'cell'} training in progress or interrupted "
                   f"(checkpoint, no result yet): {', '.join(pending)}")
  stop = float(ctx.block("train").get("stop_error") or 0.01)
  max_epochs = ctx.block("train").get("max_epochs")
  unfinished_n1 = []
  for r in ctx.n1s:
    errors = np.asarray(r.get("train_error", []), float)
    if errors.size and (errors >= stop).any():
      unfinished_n1.append(f"{r['n1']} ({int((errors >= stop).sum())} of {errors.size})")
  unfinished_n2 = []
  for c in ctx.cells:
    errors = np.asarray((c.get("n2") or {}).get("train_error", []), float)
    if errors.size and (errors >= stop).any():
      unfinished_n2.append(f"{c['cell']} ({int((errors >= stop).sum())} of {errors.size})")
  limit = f", epoch limit {max_epochs}" if max_epochs else ""
  for who, names, total in (("N1", unfinished_n1, len(ctx.n1s)), ("N2", unfinished_n2, len(ctx.cells))):
    if names and len(names) == total:
      notes.append(f"{who} stopped above the {100 * stop:g}% training-error target{limit}, in "
                   + ("its only training" if total == 1 else f"all {total} trainings"))
    elif names:
      shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
      notes.append(f"{who} stopped above the {100 * stop:g}% training-error target{limit}, in "
                   f"{len(names)} of {total} trainings (seeds above the target / seeds): {shown}")
  seeds = {c.get("seeds") for c in ctx.cells + ctx.n1s} - {None}
  if len(seeds) > 1:
    notes.append(f"results have different seed counts: {sorted(seeds)}")
  return notes + ctx.notes


def section_reference(ctx: Context) -> str:
  rows = []
  for entry in ctx.reference:
    matches = [c for c in ctx.cells if reference_matches(entry, c)]
    what = ", ".join(f"{k} {entry[k]}" for k in MATCH_KEYS if k in entry)
    if entry.get("n1_epoch") is not None:
      what += f", N1 epoch {entry['n1_epoch']}"
    if not matches:
      rows.append([what, "–", "no finished cell", "", "", entry.get("note", "")])
      continue
    for c in matches:
      for key in METRICS:
        if key not in entry:
          continue
        ref_mean, ref_std = as_mean_std(entry[key])
        ref_text = f"{ref_mean:.1f}" + (f" ± {ref_std:.1f}" if ref_std is not None else "")
        if is_oom(c) or key not in c:
          rows.append([cell_label(c), key, "OOM" if is_oom(c) else "–", ref_text, "", entry.get("note", "")])
          continue
        ours = c[key]
        rows.append([cell_label(c), key, fmt(ours), ref_text, f"{ours['mean'] - ref_mean:+.1f}",
                     entry.get("note", "")])
  source = f" ({ctx.reference_source})" if ctx.reference_source else ""
  return (f"Reference numbers{source}; difference = ours − reference.\n\n"
          + md_table(["cell", "metric", "ours", "reference", "difference", "note"], rows))


LAYOUTS = {
    "T1": section_variants, "T4": section_variants, "T5": section_variants,
    "T6": section_variants, "quickstart": section_variants,
    "T2": section_grid, "T13": section_grid, "T3": lambda ctx: section_grid(ctx, layers=True),
    "T7": section_t7,
    "T8": section_t8, "T9": section_t8, "T10": section_t8, "T11": section_t8, "T8-T11": section_t8,
    "T12": section_t12, "T14": section_t14, "F1": section_f1, "D5": section_d5,
}


def build_report(workdir: str, reference: str | None = None) -> tuple[str, dict]:
  """The report of a workdir: (markdown, {file name: matplotlib Figure})."""
  ctx = load(workdir, reference)
  return render(ctx), ctx.figures


def render(ctx: Context) -> str:
  parts = [header(ctx)]
  layout = LAYOUTS.get(ctx.experiment)
  if layout is not None:
    parts.append(f"## {TITLES.get(ctx.experiment, ctx.experiment)}\n\n{layout(ctx)}")
  elif ctx.experiment:
    parts.append(f"Experiment {ctx.experiment!r} has no special layout; all cells are below.")
  notes = collect_notes(ctx)
  parts.append("## Notes\n\n" + ("\n".join(f"- {n}" for n in dict.fromkeys(notes))
                                  if notes else "None: every stored cell finished normally."))
  if ctx.reference:
    parts.append("## Comparison with the reference\n\n" + section_reference(ctx))
  parts.append("## All cells\n\n" + section_cells(ctx))
  return "\n\n".join(parts) + "\n"


def write_report(markdown: str, figures: dict, out: str) -> str:
  """Writes report.md and the figures into ``out``; returns report.md's path."""
  try:
    os.makedirs(out, exist_ok=True)
  except OSError as e:
    raise LearnjaxError(f"cannot create the out folder {out}: {e}") from None
  for name, fig in figures.items():
    try:
      fig.savefig(os.path.join(out, name), dpi=150)
    except OSError as e:
      raise LearnjaxError(f"cannot write {os.path.join(out, name)}: {e}") from None
  path = os.path.join(out, "report.md")
  try:
    atomic_write_bytes(path, markdown.encode())
  except OSError as e:
    raise LearnjaxError(f"cannot write {path}: {e}") from None
  return path


# --------------------------------------------------------------------------------------------
# Command line


def _flags():
  from absl import flags
  if "workdir" not in flags.FLAGS:
    flags.DEFINE_string("workdir", None, "Workdir of an experiment (python -m learnjax.main).")
    flags.DEFINE_string("out", None, "Folder for report.md and the figures (default WORKDIR/report).")
    flags.DEFINE_string("reference", None, "Optional JSON of reference numbers (see the module doc).")
  return flags.FLAGS


def _fail(message: str, code: int = 2):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(code)


def _parse_flags(argv):
  from absl import flags
  try:
    return _flags()(argv)
  except flags.Error as e:
    _fail(str(e).splitlines()[0] if str(e) else "bad flags")


def main(argv):
  from absl import logging
  if not _flags()["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # keeps matplotlib's font cache notices off the screen
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  FLAGS = _flags()
  if not FLAGS.workdir:
    _fail("--workdir is required: the folder of an experiment run with python -m learnjax.main")
  try:
    markdown, figures = build_report(FLAGS.workdir, FLAGS.reference)
    path = write_report(markdown, figures, FLAGS.out or os.path.join(FLAGS.workdir, "report"))
  except LearnjaxError as e:
    _fail(str(e))
  print(path)


if __name__ == "__main__":
  from absl import app
  app.run(main, flags_parser=_parse_flags)
