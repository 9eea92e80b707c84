"""The report as a whole: which sections an experiment gets, in which order, and writing it out."""

from __future__ import annotations

import os

from learnjax.errors import LearnjaxError
from learnjax.report import (correlation, d5, f1, grids, notes, sections, t7, t8_t11, t12, t14,
                             variants)
from learnjax.report.context import DEGENERATE_MARK, Context, load
from learnjax.report.figures import DPI
from learnjax.report.formatting import TITLES
from learnjax.store import atomic_write_bytes

LAYOUTS = {
    "T1": variants.section_variants, "T4": variants.section_variants,
    "T5": variants.section_variants, "T6": variants.section_variants,
    "quickstart": variants.section_variants, "zhang_corruptions": variants.section_variants,
    "T2": grids.section_grid, "T13": grids.section_grid,
    "T3": lambda ctx: grids.section_grid(ctx, layers=True),
    "T7": t7.section_t7,
    "T8": t8_t11.section_t8, "T9": t8_t11.section_t8, "T10": t8_t11.section_t8,
    "T11": t8_t11.section_t8, "T8-T11": t8_t11.section_t8,
    "T12": t12.section_t12, "T14": t14.section_t14, "F1": f1.section_f1, "D5": d5.section_d5,
}


def build_report(workdir: str, reference: str | None = None) -> tuple[str, dict]:
  """The report of a workdir: (markdown, {file name: matplotlib Figure})."""
  ctx = load(workdir, reference)
  return render(ctx), ctx.figures


def render(ctx: Context) -> str:
  parts = [sections.header(ctx)]
  warning = notes.degenerate_warning(ctx)
  if warning:
    parts.append(warning)
  layout = LAYOUTS.get(ctx.experiment)
  if layout is not None:
    parts.append(f"## {TITLES.get(ctx.experiment, ctx.experiment)}\n\n{layout(ctx)}")
  elif ctx.experiment:
    parts.append(f"Experiment {ctx.experiment!r} has no special layout; all cells are below.")
  if ctx.cells:
    parts.append("## Learnability against generalisation\n\n" + correlation.section_correlation(ctx))
  found = notes.collect_notes(ctx)
  text = "\n".join(f"- {n}" for n in dict.fromkeys(found)) if found else (
      "None: every stored cell finished normally.")
  if any(ctx.degenerate(c) for c in ctx.cells):
    text += (f"\n\n{DEGENERATE_MARK} marks a learnability whose N1 is degenerate (it predicts "
             "nearly one class, or is at chance on true data): such a number measures nothing.")
  parts.append("## Notes\n\n" + text)
  if ctx.reference:
    parts.append("## Comparison with the reference\n\n" + sections.section_reference(ctx))
  parts.append("## All cells\n\n" + sections.section_cells(ctx))
  return "\n\n".join(parts) + "\n"


def write_report(markdown: str, figures: dict, out: str) -> str:
  """Writes report.md and the figures into ``out``; returns report.md's path."""
  try:
    os.makedirs(out, exist_ok=True)
  except OSError as e:
    raise LearnjaxError(f"cannot create the out folder {out}: {e}") from None
  for name, fig in figures.items():
    try:
      fig.savefig(os.path.join(out, name), dpi=DPI)
    except OSError as e:
      raise LearnjaxError(f"cannot write {os.path.join(out, name)}: {e}") from None
  path = os.path.join(out, "report.md")
  try:
    atomic_write_bytes(path, markdown.encode())
  except OSError as e:
    raise LearnjaxError(f"cannot write {path}: {e}") from None
  return path
