"""Sections every report has: the header, the table of all cells, the reference comparison."""

from __future__ import annotations

import numpy as np

from learnjax import metrics, plugins
from learnjax.report.context import MATCH_KEYS, Context, as_mean_std, reference_matches
from learnjax.report.formatting import (TITLES, cell_label, epochs_text, fmt, md_table,
                                        natural_key, sort_models, variant_of, variant_rank)
from learnjax.report.status import is_given, is_oom, status_text


def header(ctx: Context) -> str:
  cells = ctx.cells
  experiment = ctx.experiment or "(unknown experiment)"
  given = [r for r in ctx.n1s if is_given(r)]
  every_given = bool(given) and len(given) == len(ctx.n1s)
  title = ("N1s given as predictions: " + ", ".join(sorted(str(r.get("model")) for r in given))
           if every_given else TITLES.get(ctx.experiment, experiment))
  lines = [f"# Learnability report: {title}", ""]
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
               "over seeds, population std, in percent; seeds are numbered from 0, as in the progress "
               "lines and the store)")
  train = ctx.block("train")
  if train:
    lines.append(f"- training: SGD lr {train.get('learning_rate')}, momentum {train.get('momentum')}, "
                 f"plateau x{train.get('plateau_factor')} after {train.get('plateau_patience')} "
                 f"epochs, stop below {100 * float(train.get('stop_error', 0)):g}% training error "
                 f"or after {train.get('max_epochs')} epochs")
  n_final = len(ctx.final_cells)
  n1_text = f"{len(ctx.n1s) - len(given)} trained N1s" + (
      f", {len(given)} N1s given as predictions" if given else "")
  lines.append(f"- stored: {len(cells)} cells ({n_final} with the final N1), {n1_text}; the "
               "report shows what is stored, not what a launch still has to run")
  for r in sorted(given, key=lambda r: str(r.get("model"))):
    sha = str(r.get("predictions_sha256") or "?")
    extra = [w for w, on in (("D1 labels given: training error known", r.get("predictions_d1")),
                             ("one row per seed", r.get("predictions_per_seed"))) if on]
    lines.append(f"- N1 {r.get('model')}: given as predictions, `{r.get('predictions_file')}` "
                 f"(sha256 {sha[:16]}…)" + (f"; {', '.join(extra)}" if extra else ""))
  imported = plugins.recorded(ctx.workdir)
  if imported:
    lines.append("- plugins (the researcher's own modules, imported again for this report): "
                 + ", ".join(f"`{p.get('module') or p['plugin']}`"
                             + (f" ({p['file']})" if p.get("file") else "") for p in imported))
  if ctx.reference:
    lines.append(f"- reference numbers: {ctx.reference_source or 'given'} (shown as `ours (ref R)`)")
  return "\n".join(lines)


def section_cells(ctx: Context) -> str:
  """The generic table of every stored cell (like the console table, in markdown)."""
  cells = ctx.cells
  if not cells:
    return "No finished cells (only N1s are stored)."
  cells = sorted(cells, key=lambda c: (
      variant_rank(variant_of(c)), str(variant_of(c)),
      sort_models({x.get("n1_model") for x in cells}, ctx.config_models()).index(c.get("n1_model")),
      c.get("n1_batch_size") or 0, natural_key(c.get("n2_model")), c.get("n2_batch_size") or 0,
      -1 if c.get("n1_epoch") is None else c["n1_epoch"]))
  with_epoch = any(c.get("n1_epoch") is not None for c in cells)
  header_ = ["variant", "N1", "N1 batch", "N2", "N2 batch"] + (["N1 epoch"] if with_epoch else []) + [
      metrics.REGISTRY[k].header for k in metrics.names()] + ["N1 epochs", "N2 epochs", "status"]
  rows = []
  for c in cells:
    given = is_given(c)
    row = [variant_of(c), c.get("n1_model"), "–" if given else c.get("n1_batch_size"),
           c.get("n2_model"), c.get("n2_batch_size")]
    if with_epoch:
      row.append("final" if c.get("n1_epoch") is None else c["n1_epoch"])
    if is_oom(c):
      row += ["OOM"] * len(metrics.names()) + ["–", "–"]
    else:
      row += [ctx.num(c, k) for k in metrics.names()]
      row += ["given" if given and net == "n1" else epochs_text((c.get(net) or {}).get("epochs", []))
              for net in ("n1", "n2")]
    status = status_text(c, ctx.stop_error)
    if ctx.degenerate(c):
      status += f"; degenerate N1 ({ctx.degenerate(c)})"
    row.append(status)
    rows.append(row)
  return md_table(header_, rows) + ("\n\nN1/N2 epochs: mean over seeds (min–max where they differ). "
                                    "N1 epochs are those of the final N1; \"given\": an N1 given as predictions, trained elsewhere. Status: not converged = training stopped at the epoch "
      "limit above the stop error.")


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
      for key in metrics.names():
        if key not in entry:
          continue
        ref_mean, ref_std = as_mean_std(entry[key])
        ref_text = f"{ref_mean:.1f}" + (f" ± {ref_std:.1f}" if ref_std is not None else "")
        if is_oom(c) or key not in c:
          rows.append([cell_label(c), key, "OOM" if is_oom(c) else "–", ref_text, "", entry.get("note", "")])
          continue
        ours = c[key]
        diff = "–" if ours.get("mean") is None else f"{ours['mean'] - ref_mean:+.1f}"
        rows.append([cell_label(c), key, fmt(ours), ref_text, diff, entry.get("note", "")])
  source = f" ({ctx.reference_source})" if ctx.reference_source else ""
  return (f"Reference numbers{source}; difference = ours − reference.\n\n"
          + md_table(["cell", "metric", "ours", "reference", "difference", "note"], rows))


