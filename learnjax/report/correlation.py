"""Learnability against generalisation: the paper's main claim as a number, for any sweep.

Three measures that need no labels beyond N1's own (learnability, Cohen's kappa of N1 and N2, and
the GDE accuracy of N1's seeds; learnjax.metrics) are ranked across the cells against N1's test
accuracy and N1's generalisation gap (training accuracy - test accuracy, for cells whose N1 is the
final one: its training error is stored) with Kendall's tau-b (ties allowed), side by side, within
each group of cells that share the N2 setup (N2 model, batch size, |D2|; ``n2.model=same`` is one
setup), since a learnability depends on its N2 as well as on its N1. Each tau carries two kinds of
evidence (:mod:`learnjax.ranking`): a percentile bootstrap over seeds (seed noise: one resample of
seed indices for every cell, the seeds of a grid being paired) and a permutation p-value over the
cells (could the ordering of the cells be chance). A verdict is drawn only where both exclude no
effect; otherwise the line says "no verdict" and why. Along each grid axis a user would name, the
granulated coefficient psi, and Psi over the axes, with seed-bootstrap intervals. Every random
generator is fixed, so a report is reproducible.

Cells out of memory, diverged, or with a degenerate N1 are left out (their numbers measure
nothing); a cell whose measure is undefined for a seed is left out of that measure's tau.
"""

from __future__ import annotations


import numpy as np

from learnjax import fields, metrics, ranking
from learnjax.ranking import kendall_tau  # noqa: F401  (learnjax.report.kendall_tau)
from learnjax.report.context import Context
from learnjax.report.figures import colors, new_figure
from learnjax.report.formatting import md_table, sort_variants, variant_of, variant_title

BOOTSTRAP_DRAWS = ranking.DRAWS
BOOTSTRAP_SEED = ranking.SEED
MIN_VERDICT_SEEDS = ranking.MIN_SEEDS
MIN_CELLS = ranking.MIN_ITEMS
# The measures ranked against generalisation: metric name -> how the section names it.
MEASURES = {"learnability": "learnability", "kappa": "kappa", "gde_accuracy": "GDE accuracy"}
TARGETS = {"acc": "N1 test accuracy", "gap": "N1 generalisation gap"}


def bootstrap_tau(xs: list, ys: list, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED,
                  level: float = 0.95) -> tuple[float, float]:
  """Percentile interval of tau over seed resamples. xs, ys: per cell, the per-seed values."""
  return ranking.bootstrap_interval(xs, ys, "seeds", draws, seed, level)


def _per_seed(stats: dict | None):
  """Per-seed values, or None where absent or undefined for some seed."""
  if not stats:
    return None
  values = metrics.per_seed_values(stats)
  if values is None:
    return np.asarray([stats["mean"]], float) if stats.get("mean") is not None else None
  return values if values.size and np.all(np.isfinite(values)) else None


def points(ctx: Context) -> list[dict]:
  """Per usable cell: its per-seed measures, N1 test accuracy and (final N1) gap, in percent."""
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
    measures = {}
    for name in MEASURES:
      values = _per_seed(c.get(name))
      measures[name] = values if values is not None and len(values) == len(acc) else None
    out.append({"cell": c, "learn": learn, "acc": acc, "gap": gap, **measures})
  return out


def _tau(pts: list[dict], measure: str, target: str) -> ranking.Evidence | None:
  pts = [p for p in pts if p[target] is not None and p[measure] is not None]
  if len(pts) < MIN_CELLS:
    return None
  return ranking.correlate([p[measure] for p in pts], [p[target] for p in pts])


def _tau_text(t: ranking.Evidence | None, cells: int | None = None) -> str:
  """'+0.33 [+0.33, +0.33], p = 0.333' (and '(k cells)' where fewer than the row's)."""
  if t is None:
    return "–"
  text = t.text(with_items=False)[len("τ = "):]
  if cells is not None and t.items != cells:
    text += f" ({t.items} cells)"
  return text


def _row(name: str, pts: list[dict], key: str) -> list[str] | None:
  """One row of the side-by-side table: each measure's tau against ``key`` in ``pts``."""
  base = [p for p in pts if p[key] is not None]
  if len(base) < MIN_CELLS:
    return None
  taus = [_tau(pts, m, key) for m in MEASURES]
  return [name, str(len(base))] + [_tau_text(t, len(base)) for t in taus]


# What a verdict says, per target: (tau > 0, tau < 0).
_CLAIMS = {"acc": ("ranks the cells as N1's test accuracy does",
                   "ranks the cells opposite to N1's test accuracy"),
           "gap": ("is higher where the generalisation gap is larger",
                   "is higher where the generalisation gap is smaller")}


def _verdicts(pts: list[dict]) -> list[str]:
  """One line per measure and target: a verdict where the evidence carries one, else 'no
  verdict' and why."""
  lines = []
  for measure, title in MEASURES.items():
    for target, what in TARGETS.items():
      t = _tau(pts, measure, target)
      if t is None:
        if target == "acc" or any(p["gap"] is not None for p in pts):
          have = sum(p[target] is not None and p[measure] is not None for p in pts)
          lines.append(f"- **{title}** against {what}: no verdict, too few cells with both "
                       f"({have}; {MIN_CELLS} needed).")
        continue
      if t.decided:
        lines.append(f"- **{title}** {_CLAIMS[target][0 if t.sign > 0 else 1]}: {t.text()}.")
      else:
        shown = f" {t.text()}." if np.isfinite(t.tau) else ""
        lines.append(f"- **{title}** against {what}: no verdict, {t.reason}.{shown}")
  return lines


def granulated_keys(pts: list[dict]) -> tuple[list[dict], list[str]]:
  """Each cell's values of the axes a user would name, and those axes in table order.

  With ``n2.model=same`` for every cell, N2's architecture is N1's: the two are one axis, the
  architecture. Otherwise N1 model and N2 model are two (a cell under ``same`` has N2 model
  'same as N1'). Only the axes that vary are scored (:func:`learnjax.ranking.granulated`).
  """
  all_same = all(_same(p["cell"]) for p in pts)
  keys = []
  for p in pts:
    c = p["cell"]
    key = {"data variant": variant_of(c), "N1 batch size": c.get("n1_batch_size"),
           "N1 snapshot epoch": c.get("n1_epoch"), "N2 batch size": c.get("n2_batch_size"),
           "|D2|": c.get("d2")}
    if all_same:
      key[ARCHITECTURE] = c.get("n1_model")
    else:
      key["N1 model"] = c.get("n1_model")
      key["N2 model"] = SAME_AS_N1 if _same(c) else c.get("n2_model")
    keys.append(key)
  order = ["data variant", ARCHITECTURE, "N1 model", "N1 batch size", "N1 snapshot epoch",
           "N2 model", "N2 batch size", "|D2|"]
  return keys, [a for a in order if a in keys[0]]


ARCHITECTURE = "architecture (N1 and N2)"
SAME_AS_N1 = "same as N1"


def _psi_text(a: ranking.AxisPsi | None) -> str:
  if a is None or not np.isfinite(a.psi):
    return "–" if a is None else f"– (0 groups, {a.skipped} skipped)"
  text = f"{a.psi:+.2f}"
  if np.isfinite(a.lo):
    text += f" [{a.lo:+.2f}, {a.hi:+.2f}]"
  return text + (f" ({a.groups} group{'s' * (a.groups != 1)}"
                 + (f", {a.skipped} skipped)" if a.skipped else ")"))


def section_granulated(pts: list[dict]) -> str:
  """psi per varying axis and Psi (with its count of axes and interval), for each measure
  against each target."""
  keys, order = granulated_keys(pts)
  axes = ranking.varying_axes(keys, order)
  if not axes:
    return ""
  parts = []
  for target, what in TARGETS.items():
    columns = []
    for measure in MEASURES:
      usable = [i for i, p in enumerate(pts) if p[target] is not None and p[measure] is not None]
      columns.append(ranking.granulated([keys[i] for i in usable],
                                        [pts[i][measure] for i in usable],
                                        [pts[i][target] for i in usable], axes=order))
    if all(not np.isfinite(g.psi) for g in columns):
      continue
    rows = [[axis] + [_psi_text({a.axis: a for a in g.per_axis}.get(axis)) for g in columns]
            for axis in axes]
    rows.append(["Ψ (mean over the axes with a ψ)"] + [g.text() for g in columns])
    parts.append(f"Against {what}:\n\n" + md_table(
        ["axis"] + [f"{title} ψ [95%]" for title in MEASURES.values()], rows))
  if not parts:
    return ""
  return ("**Granulated coefficient** (Jiang, Neyshabur, Mobahi, Krishnan, Bengio 2020, section "
          "4): for each axis that varies, ψ = the mean over groups of cells that differ in that "
          "axis alone of Kendall's τ-b in the group; a group whose measure or target takes fewer "
          "than two distinct values is skipped (counted). Ψ is the mean of ψ over the axes that "
          "have one (their count in brackets). With n2.model = same the N1 and N2 architecture "
          "change together: one axis. Intervals: 95% percentile bootstrap over seeds (the same "
          "resamples as τ's).\n\n" + "\n\n".join(parts))


# What a cell's N2 side is: cells that share it differ only in N1 (its model, batch size, data
# variant, epoch), so a rank correlation across them compares N1s under one yardstick.
N2_KEYS = ("n2_model", "n2_batch_size", "d2")


SAME = "N1's architecture"   # n2.model=same: each cell's N2 is its N1's model, one rule for all


def _same(cell: dict) -> bool:
  return bool(cell.get("_n2_same")) and cell.get("n2_model") == cell.get("n1_model")


def n2_key(cell: dict) -> tuple:
  model = SAME if _same(cell) else str(cell.get("n2_model"))
  return (model,) + tuple(str(cell.get(k)) for k in N2_KEYS[1:])


def n2_title(cell: dict, pts: list[dict]) -> str:
  """'N2 mlp_1' (or N1's architecture) plus whichever of batch size and |D2| vary in ``pts``."""
  text = f"N2 {n2_key(cell)[0]}"
  for key, what in (("n2_batch_size", "batch"), ("d2", "|D2|")):
    if len({str(p["cell"].get(key)) for p in pts}) > 1:
      text += f", {what} {cell.get(key)}"
  return text


def _gap_missing(pts: list[dict]) -> str:
  """Why no cell has N1's generalisation gap, in one sentence."""
  given = sum(p["cell"].get("n1_source") == "predictions" for p in pts)
  snapshots = sum(p["cell"].get("n1_epoch") is not None for p in pts)
  why = []
  if given:
    why.append(f"{given} cell(s) have an N1 given as predictions without its labels of D1 (add "
               "d1 to the predictions file to give its training error)")
  if snapshots:
    why.append(f"{snapshots} cell(s) learn an N1 snapshot, whose training error is not stored")
  rest = len(pts) - given - snapshots
  if rest > 0:
    why.append(f"{rest} cell(s) lack a finite training error of N1 for every seed")
  return ("The row against N1's generalisation gap is missing: no cell has N1's training error ("
          + "; ".join(why) + ").")


def _which_cells(name: str, members: list[dict]) -> str:
  """The heading of a list of verdicts: which cells it covers."""
  count = f"{len(members)} cell{'s' * (len(members) != 1)}"
  return f"all {count}" if name == "all cells" else f"the {count} with {name}"


def section_correlation(ctx: Context) -> str:
  """Kendall's tau of the three measures side by side, within each group of cells that share N2
  (model, batch size, |D2|); the granulated coefficient, a plain-words line per measure and a
  scatter plot; one sentence when there are too few cells."""
  pts = points(ctx)
  left_out = len(ctx.cells) - len(pts)
  if len(pts) < MIN_CELLS:
    return (f"Not computed: a rank correlation needs at least {MIN_CELLS} cells with a "
            f"learnability and N1's test accuracy, and this report has {len(pts)}"
            + (f" ({left_out} left out: out of memory, diverged or degenerate N1)" if left_out
               else "") + ".")
  variants = sort_variants(variant_of(p["cell"]) for p in pts)
  same = "same" in [str(m) for m in fields.as_list(ctx.block("n2").get("model"))]
  pts = [{**p, "cell": {**p["cell"], "_n2_same": same}} for p in pts]
  by_n2 = {}
  for p in pts:
    by_n2.setdefault(n2_key(p["cell"]), []).append(p)
  several = len(by_n2) > 1
  groups = []
  for members in by_n2.values():
    name = n2_title(members[0]["cell"], pts) if several else "all cells"
    groups.append((name, members))
    member_variants = sort_variants(variant_of(p["cell"]) for p in members)
    if len(member_variants) > 1:
      groups += [(f"{name}; {variant_title(v)}" if several else variant_title(v),
                  [p for p in members if variant_of(p["cell"]) == v]) for v in member_variants]
  rows = []
  for key, what in TARGETS.items():
    for name, group in groups:
      row = _row(f"{what} ({name})", group, key)
      if row:
        rows.append(row)
  measure = ctx.block("train").get("error_measure", "running")
  text = (f"Kendall's τ (tau-b) across cells between each measure's mean (learnability, Cohen's "
          f"kappa of N1 and N2, GDE accuracy of N1's seeds) and N1's mean test accuracy, and "
          f"N1's generalisation gap (training accuracy − test accuracy; final N1 only, training "
          f"error as measured by train.error_measure = {measure}). Interval: 95% percentile "
          f"bootstrap over seeds ({BOOTSTRAP_DRAWS} resamples, the same seed indices for every "
          f"cell, generator seed {BOOTSTRAP_SEED}): seed noise only. p: two-sided permutation "
          f"test over the cells (exact up to {ranking.EXACT_MAX_ITEMS} cells, else "
          f"{ranking.PERMUTATIONS} permutations): could the cells' ordering be chance. The "
          "paper's claim predicts τ > 0 against test accuracy and τ < 0 against the gap. A measure undefined for a cell (kappa with chance "
          "agreement 1, GDE with one seed) leaves that cell out of its τ (its count is shown).")
  if several:
    text += (f" The cells learn with {len(by_n2)} different N2 setups (model, batch size, |D2|):"
             " a learnability depends on its N2 as well as on its N1, so τ is computed within each "
             "group of cells that share the N2 setup and differ only in N1 (" + "; ".join(
                 f"{n2_title(m[0]['cell'], pts)}: {len(m)} cells" for m in by_n2.values())
             + f"), never pooled across N2s; a group needs {MIN_CELLS} cells.")
  if left_out:
    text += (f" {left_out} cell(s) left out: out of memory, diverged, degenerate N1, or no "
             "per-seed numbers.")
  if rows:
    text += "\n\n" + md_table(["against (which cells)", "cells"]
                               + [f"{title} τ [95%], p" for title in MEASURES.values()], rows)
  else:
    text += f"\n\nNo group of cells sharing an N2 setup has {MIN_CELLS} cells: no τ is computed."
  if all(p["gap"] is None for p in pts):
    text += "\n\n" + _gap_missing(pts)
  for name, members in groups:
    if len(members) >= MIN_CELLS and (not several or ";" not in name):
      text += (f"\n\n**Verdicts on {_which_cells(name, members)}** (a verdict needs the "
               f"permutation p < {ranking.ALPHA:g} over cells and the seed interval to exclude 0; "
               f"with 4 cells or fewer no ordering reaches p < {ranking.ALPHA:g}):\n\n"
               + "\n".join(_verdicts(members)))
  granular = section_granulated(pts)
  if granular:
    text += "\n\n" + granular
  ctx.figures["learnability_vs_generalisation.png"] = figure_correlation(pts, variants)
  return text + ("\n\n![Learnability against N1's test accuracy and generalisation gap]"
                 "(learnability_vs_generalisation.png)")


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def figure_correlation(pts: list[dict], variants: list):
  """One point per cell: its colour names the N1 (model, and variant where variants differ),
  its marker the N2 setup; two legends say which."""
  from matplotlib.lines import Line2D
  with_gap = any(p["gap"] is not None for p in pts)
  panels = 2 if with_gap else 1
  fig = new_figure(4.2 * panels + 2.4, 3.8)
  axes = np.atleast_1d(fig.subplots(1, panels))

  def n1_label(c):
    label = str(c.get("n1_model"))
    if len(variants) > 1:
      label += f" ({variant_title(variant_of(c))})"
    if c.get("n1_source") == "predictions":
      label += " [given]"
    return label

  n1_labels = list(dict.fromkeys(n1_label(p["cell"]) for p in pts))
  n2_labels = list(dict.fromkeys(n2_title(p["cell"], pts) for p in pts))
  palette = dict(zip(n1_labels, colors(len(n1_labels))))
  marks = {label: MARKERS[i % len(MARKERS)] for i, label in enumerate(n2_labels)}
  for ax, key, xlabel in zip(axes, ("acc", "gap"), ("N1 test accuracy (%)",
                                                     "N1 generalisation gap (train − test acc, %)")):
    for p in pts:
      if p[key] is None:
        continue
      ax.errorbar([p[key].mean()], [p["learn"].mean()], xerr=[p[key].std()],
                  yerr=[p["learn"].std()], marker=marks[n2_title(p["cell"], pts)], markersize=5,
                  linestyle="none", capsize=2, color=palette[n1_label(p["cell"])])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learnability (%)")
    ax.grid(alpha=0.3)
  axes[0].set_title("Learnability vs N1 test accuracy", fontsize=10)
  if with_gap:
    axes[1].set_title("Learnability vs generalisation gap", fontsize=10)
  n1_handles = [Line2D([], [], color=palette[l], marker="o", linestyle="none") for l in n1_labels]
  n2_handles = [Line2D([], [], color="0.3", marker=marks[l], linestyle="none") for l in n2_labels]
  first = fig.legend(n1_handles, n1_labels, title="N1 (colour)", fontsize=8, title_fontsize=8,
                     loc="outside right upper")
  fig.legend(n2_handles, n2_labels, title="N2 (marker)", fontsize=8, title_fontsize=8,
             loc="outside right lower")
  del first
  fig.suptitle("One point per cell, error bars: std over seeds", fontsize=10)
  return fig
