"""The report's notes: failed, diverged, unfinished and degenerate work, and pending checkpoints."""

from __future__ import annotations

import os

import numpy as np

from learnjax import fields
from learnjax.report.context import DEGENERATE_MARK, Context
from learnjax.report.formatting import cell_label
from learnjax.report.status import diverged_text, is_given, is_oom


def collect_notes(ctx: Context) -> list[str]:
  notes = []
  for c in ctx.cells:
    if is_oom(c):
      notes.append(f"out of memory: {cell_label(c)}: {c.get('error', '')}".rstrip(": "))
    elif c.get("status") == "diverged":
      notes.append(f"{diverged_text(c)}: {cell_label(c)}")
    elif c.get("status") not in (None, "ok"):
      notes.append(f"status {c.get('status')}: {cell_label(c)}")
  for r in ctx.n1s:
    if any(r.get("diverged", [])) and not any(
        c.get("status") == "diverged" and c.get("variant") == r.get("variant")
        and c.get("n1_model") == r.get("model") for c in ctx.cells):
      notes.append(f"N1 {r['n1']} diverged in seeds "
                   f"{[i for i, d in enumerate(r['diverged']) if d]}")
  n2_none = fields.as_list(ctx.block("n2").get("model")) == ["none"]
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
  stop = ctx.stop_error
  max_epochs = ctx.block("train").get("max_epochs")
  def above_target(name, errors):
    errors = np.asarray(errors if errors is not None else [], float)
    above = int((errors >= stop).sum())
    return (name, above, errors.size) if above else None

  unfinished_n1 = [u for r in ctx.n1s if not is_given(r)
                   and (u := above_target(r["n1"], r.get("train_error")))]
  unfinished_n2 = [u for c in ctx.cells
                   if (u := above_target(c["cell"], (c.get("n2") or {}).get("train_error")))]
  limit = f", epoch limit {max_epochs}" if max_epochs else ""
  trained_n1s = sum(not is_given(r) for r in ctx.n1s)
  for who, units, total in (("N1", unfinished_n1, trained_n1s),
                            ("N2", unfinished_n2, len(ctx.cells))):
    if units and len(units) == total:
      above, seeds = sum(u[1] for u in units), sum(u[2] for u in units)
      notes.append(f"{who} stopped above the {100 * stop:g}% training-error target{limit}, in "
                   + ("its only training" if total == 1 else f"all {total} trainings")
                   + f" ({above} of {seeds} seeds)")
    elif units:
      shown = ", ".join(f"{name} ({above} of {n})" for name, above, n in units[:8])
      shown += f" and {len(units) - 8} more" if len(units) > 8 else ""
      notes.append(f"{who} stopped above the {100 * stop:g}% training-error target{limit}, in "
                   f"{len(units)} of {total} trainings (seeds above the target / seeds): {shown}")
  seeds = {c.get("seeds") for c in ctx.cells + ctx.n1s} - {None}
  if len(seeds) > 1:
    notes.append(f"results have different seed counts: {sorted(seeds)}")
  return notes + degenerate_notes(ctx) + ctx.notes


def degenerate_notes(ctx: Context) -> list[str]:
  """One note per cell (or N1 without cells) whose N1 is degenerate, and what that means."""
  notes = []
  for c in ctx.cells:
    why = ctx.degenerate(c)
    if why:
      notes.append(f"degenerate N1 ({DEGENERATE_MARK}) in {cell_label(c)}: it {why}; this "
                   "learnability measures nothing")
  with_cells = {(c.get("variant"), c.get("n1_model"), c.get("n1_batch_size")) for c in ctx.cells}
  for r in ctx.n1s:
    if (r.get("variant"), r.get("model"), r.get("batch_size")) in with_cells:
      continue
    why = ctx.n1_degenerate(r)
    if why:
      notes.append(f"degenerate N1 {r['n1']}: it {why}; what is measured on it measures nothing")
  return notes


def degenerate_warning(ctx: Context) -> str | None:
  """A warning for the top of the report when every cell's N1 is degenerate."""
  cells = [c for c in ctx.cells if not is_oom(c)]
  if cells and all(ctx.degenerate(c) for c in cells):
    return (f"**Warning: every cell's N1 is degenerate** ({DEGENERATE_MARK}: it predicts nearly "
            "one class, or its test accuracy on true data is at chance). A degenerate N1 is "
            "learnt by any N2, so these learnabilities measure nothing; train N1 longer "
            "(see the notes).")
  return None
