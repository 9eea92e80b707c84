"""Which analyses a report shows, found from what the experiment stored, not from its name.

Each family of report sections registers itself with a predicate on the stored record: which grid
axes the experiment varies (from its ``config.json`` and its stored cells), whether it trains N1
only (``n2.model = none``), whether N1 snapshots were kept. A report shows every analysis whose
predicate holds, by its ``order``; the config's ``experiment`` only names the report (its title).
A new analysis is one :func:`register` call in its own module: learnjax's own are listed in
:data:`BUILTIN`, a researcher's module is a plugin (:mod:`learnjax.plugins`, imported by the
report from the workdir's record), and both register the same way.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

from learnjax import fields, registration
from learnjax.report.context import Context

# A grid axis as a cell record names it -> where the config lists its values (learnjax.fields).
_CONFIG_AXES = {f.column: tuple(f.name.split(".")) for f in fields.grid_axes()}


@dataclasses.dataclass(frozen=True)
class Analysis:
  name: str
  title: str                          # the section's heading
  applies: Callable[[Context], bool]  # from the stored record
  section: Callable[[Context], str]
  order: int                          # place in the report, smallest first


REGISTRY: list[Analysis] = []
# learnjax's own families of sections, each a module of this package that registers itself.
BUILTIN = ("variants", "grids", "curves", "per_n1", "batch_size", "class_distribution",
           "correct_agree", "along_training", "seed_agreement")


def register(name: str, title: str, applies: Callable[[Context], bool], order: int = 100):
  """Decorator: ``section(ctx) -> markdown`` is shown in every report where ``applies(ctx)``."""
  def decorate(section):
    analysis = Analysis(name, title, applies, section, order)
    taken = next((a for a in REGISTRY if a.name == name), None)
    if registration.admit("report analysis", name, taken, analysis, lambda a: a.section):
      REGISTRY.append(analysis)
    return section
  return decorate


def load_builtin() -> None:
  """Imports learnjax's own families (each registers itself once)."""
  for module in BUILTIN:
    importlib.import_module(f"learnjax.report.{module}")


def found(ctx: Context) -> list[Analysis]:
  """The analyses whose predicate holds for ``ctx``: learnjax's own and every plugin's."""
  load_builtin()
  return sorted((a for a in REGISTRY if a.applies(ctx)), key=lambda a: a.order)


# ---- what the record says about the experiment -------------------------------------------------

def values(ctx: Context, axis: str) -> set:
  """The values an axis takes: those the config lists and those of the stored cells."""
  block, field = _CONFIG_AXES[axis]
  listed = {str(v) for v in fields.as_list(ctx.block(block).get(field))}
  stored = {str(c.get(axis)) for c in ctx.cells if c.get(axis) is not None}
  if axis == "n2_model":
    listed.discard("same")      # N2 = N1: one N2 per N1, not an axis of its own
    listed.discard("none")
    if listed or not stored:
      return listed
    stored = stored if any(c.get("n2_model") != c.get("n1_model") for c in ctx.cells) else set()
  return listed | stored


def count(ctx: Context, axis: str) -> int:
  return len(values(ctx, axis))


def n1_only(ctx: Context) -> bool:
  """N1 is trained alone (``n2.model = none``), or only N1s are stored."""
  return (fields.as_list(ctx.block("n2").get("model")) == ["none"]
          or not ctx.cells and bool(ctx.n1s))


def with_snapshots(ctx: Context) -> bool:
  return count(ctx, "n1_epoch") > 0 or any(c.get("n1_epoch") is not None for c in ctx.cells)


def with_cells(ctx: Context) -> bool:
  return bool(ctx.cells) and not n1_only(ctx)
