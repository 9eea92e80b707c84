"""Loading a workdir's stored results and the reference numbers they are compared with."""

from __future__ import annotations

import dataclasses
import json
import os

from learnjax import fields, metrics
from learnjax.errors import LearnjaxError
from learnjax.report import degenerate
from learnjax.report.status import DEFAULT_STOP_ERROR, is_oom
from learnjax.storage import read_json
from learnjax.store import Store

MATCH_KEYS = ("variant", "n1_model", "n2_model", "n1_batch_size", "n2_batch_size")
DEGENERATE_MARK = "⚠"


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
  # Every cell of a learnability curve (data.n2_size with several sizes); ``cells`` keeps of them
  # only those whose N2 learned all of D2, so every other section shows the measurement at |D2|.
  curve_cells: list[dict] = dataclasses.field(default_factory=list)
  curve_level: float = 90.0   # a curve's n_at: the first size whose learnability reaches this (%)
  _arrays: dict = dataclasses.field(default_factory=dict)
  _degenerate: dict = dataclasses.field(default_factory=dict)

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
  def stop_error(self) -> float:
    """train.stop_error as stored (0: no early stop); the default where the config lacks it."""
    value = self.block("train").get("stop_error")
    return DEFAULT_STOP_ERROR if value is None else float(value)

  @property
  def final_cells(self) -> list[dict]:
    return [c for c in self.cells if c.get("n1_epoch") is None]

  def config_models(self, blocks=("n1", "n2")) -> list[str]:
    """The model names of the config's n1 (and n2) blocks, in the order given there."""
    return [str(v) for block in blocks for v in fields.as_list(self.block(block).get("model"))]

  def degenerate(self, cell: dict) -> str | None:
    """Why the cell's N1 is degenerate (:mod:`learnjax.report.degenerate`), or None."""
    key = ("cells", cell.get("cell"))
    if key not in self._degenerate:
      arrays = self.arrays("cells", cell["cell"]) if "cell" in cell and not is_oom(cell) else {}
      self._degenerate[key] = degenerate.cell_reason(cell, arrays)
    return self._degenerate[key]

  def n1_degenerate(self, result: dict) -> str | None:
    key = ("n1", result.get("n1"))
    if key not in self._degenerate:
      self._degenerate[key] = degenerate.n1_reason(result, self.arrays("n1", result["n1"]))
    return self._degenerate[key]

  def num(self, cell: dict | None, key: str) -> str:
    """A cell's metric as 'mean ± std', with the matching reference number if there is one.

    A learnability whose N1 is degenerate is marked with ⚠ (it measures nothing).
    """
    if cell is None:
      return "–"
    if is_oom(cell):
      return "OOM"
    text = metrics.fmt_metric(key, cell.get(key))
    ref = self.reference_for(cell, key)
    text = text if ref is None else f"{text} (ref {ref[0]:.1f})"
    if key == "learnability" and self.degenerate(cell):
      text += f" {DEGENERATE_MARK}"
    return text

  def reference_for(self, cell: dict, key: str):
    for entry in self.reference:
      if key in entry and reference_matches(entry, cell):
        return as_mean_std(entry[key])
    return None


def load(workdir: str, reference_path: str | None = None) -> Context:
  """The stored results of a workdir; a LearnjaxError when there are none."""
  if not os.path.isdir(workdir):
    raise LearnjaxError(f"workdir {workdir} is a file, not a learnjax workdir (a folder)"
                        if os.path.exists(workdir) else f"workdir {workdir} does not exist")
  config_path = os.path.join(workdir, "config.json")
  config = read_json(config_path) if os.path.exists(config_path) else {}
  if not isinstance(config, dict):
    raise LearnjaxError(f"{config_path} does not hold a config (a JSON object)")
  store = Store(workdir)
  cells, n1s = store.finished("cells"), store.finished("n1")
  # A cell the machine stopped is no result, but a table marks where memory ran out (OOM).
  cells += [a for a in store.attempts("cells") if is_oom(a) and "cell" in a]
  if not cells and not n1s:
    raise LearnjaxError(f"no finished results in {workdir} (no cells/*/result.json or "
                        "n1/*/result.json); run python -m learnjax.main with this workdir first")
  for kind, results, key in (("cells", cells, "cell"), ("n1", n1s, "n1")):
    for r in results:
      if not isinstance(r, dict) or key not in r:
        raise LearnjaxError(f"a {kind}/*/result.json in {workdir} is not a learnjax result "
                            f"(no {key!r} field); delete its folder to recompute it")
  context = Context(workdir, config, cells, n1s)
  context.cells = [_with_metrics(context, c) for c in cells]
  context.curve_cells = [c for c in context.cells if c.get("n2_size") is not None]
  context.cells = [c for c in context.cells if not _partial_d2(c)]
  if reference_path:
    context.reference, context.reference_source = load_reference(reference_path)
  return context


def _partial_d2(cell: dict) -> bool:
  """A curve's cell whose N2 learned fewer examples than D2 holds."""
  return cell.get("n2_size") is not None and cell["n2_size"] < (cell.get("d2") or 0)


def _with_metrics(ctx: Context, cell: dict) -> dict:
  """The cell with every metric computed from its stored arrays (a workdir stored before a metric
  existed gains it); a stored number that its arrays contradict is kept and noted."""
  if is_oom(cell):
    return cell
  try:
    arrays = ctx.arrays("cells", cell["cell"])
  except LearnjaxError:
    ctx.notes.append(f"cell {cell['cell']}: its arrays cannot be read; only its stored numbers "
                     "are shown")
    return cell
  completed, disagree = metrics.complete(cell, arrays)
  if disagree:
    ctx.notes.append(f"cell {cell['cell']}: the stored {', '.join(disagree)} disagree(s) with its "
                     "stored predictions; the stored numbers are shown (delete its folder to "
                     "recompute it)")
  return completed


def load_reference(path: str) -> tuple[list[dict], str]:
  if not os.path.exists(path):
    raise LearnjaxError(f"reference file {path} does not exist")
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, ValueError) as e:  # the user's own file: say what is wrong, not to delete it
    raise LearnjaxError(f"cannot read reference file {path}: {e}") from None
  entries = data.get("cells") if isinstance(data, dict) else None
  if not isinstance(entries, list):
    raise LearnjaxError(f"reference file {path} must hold {{\"cells\": [...]}}")
  for i, entry in enumerate(entries):
    where = f"reference file {path}, cells[{i}]"
    if not isinstance(entry, dict) or "n1_model" not in entry:
      raise LearnjaxError(f"{where}: each entry must be an object with at least n1_model")
    known = reference_keys()
    unknown = sorted(set(entry) - set(known))
    if unknown:
      raise LearnjaxError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"known: {', '.join(known)}")
    for key in metrics.names():
      if key in entry and as_mean_std(entry[key]) is None:
        raise LearnjaxError(f"{where}: {key} must be a number or {{\"mean\": m, \"std\": s}}")
  source = data.get("source", "")
  return entries, str(source) if source else ""


def reference_keys() -> tuple[str, ...]:
  """The keys a reference entry may give: what it matches, a note, and every metric's name."""
  return MATCH_KEYS + ("n1_epoch", "note") + metrics.names()


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
