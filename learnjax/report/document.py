"""The report as a whole: the analyses found for the experiment, in order, and writing it out."""

from __future__ import annotations

import io
import os

from learnjax.errors import LearnjaxError
# The families of analyses register themselves: analyses.found imports learnjax's own.
from learnjax.report import analyses, correlation, notes, sections
from learnjax.report.context import DEGENERATE_MARK, Context, load
from learnjax.report.figures import DPI
from learnjax.storage import atomic_write_bytes


def build_report(workdir: str, reference: str | None = None,
                 curve_level: float = 90.0) -> tuple[str, dict]:
  """The report of a workdir: (markdown, {file name: matplotlib Figure}); ``curve_level``: the
  learnability (%) whose first size a learnability curve's n_at gives."""
  ctx = load(workdir, reference)
  ctx.curve_level = float(curve_level)
  return render(ctx), ctx.figures


def render(ctx: Context) -> str:
  parts = [sections.header(ctx)]
  warning = notes.degenerate_warning(ctx)
  if warning:
    parts.append(warning)
  found = analyses.found(ctx)
  for analysis in found:
    parts.append(f"## {analysis.title}\n\n{analysis.section(ctx)}")
  if not found and ctx.experiment:
    parts.append(f"Experiment {ctx.experiment!r} has no special layout; all cells are below.")
  if ctx.cells:
    parts.append("## Learnability against generalisation\n\n" + correlation.section_correlation(ctx))
  collected = notes.collect_notes(ctx)
  text = "\n".join(f"- {n}" for n in dict.fromkeys(collected)) if collected else (
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
    try:   # rendered in memory, then renamed into place: an interruption leaves no partial file
      buffer = io.BytesIO()
      fig.savefig(buffer, dpi=DPI, format=os.path.splitext(name)[1][1:] or "png")
      atomic_write_bytes(os.path.join(out, name), buffer.getvalue())
    except OSError as e:
      raise LearnjaxError(f"cannot write {os.path.join(out, name)}: {e}") from None
  path = os.path.join(out, "report.md")
  try:
    atomic_write_bytes(path, markdown.encode())
  except OSError as e:
    raise LearnjaxError(f"cannot write {path}: {e}") from None
  return path
