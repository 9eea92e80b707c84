"""What became of a stored cell: finished, out of memory, diverged, or short of the stop error.

Shared by the markdown report and the console table, so a failed cell reads the same in both.
Seeds are numbered from 0, as they are stored.
"""

from __future__ import annotations

import numpy as np

from learnjax.report.formatting import seeds_text

DEFAULT_STOP_ERROR = 0.01


def is_oom(cell: dict) -> bool:
  return cell.get("status") == "out_of_memory"


def is_given(record: dict) -> bool:
  """A cell (``n1_source``) or N1 record (``source``) of an N1 given as predictions: trained
  elsewhere, so no epochs, batch size or convergence of its own."""
  return "predictions" in (record.get("n1_source"), record.get("source"))


def first_done(cells: list[dict]) -> dict | None:
  done = [c for c in cells if not is_oom(c)]
  return done[0] if done else (cells[0] if cells else None)


def diverged_seeds(summary: dict) -> list[int]:
  return [i for i, d in enumerate(summary.get("diverged", [])) if d]


def unconverged_seeds(summary: dict, stop_error: float) -> list[int]:
  """Seeds whose final training error is not below the stop error (they hit max_epochs)."""
  errors = np.asarray(summary.get("train_error", []), float)
  return [i for i, e in enumerate(errors) if np.isfinite(e) and e >= stop_error]


def diverged_text(cell: dict) -> str:
  """'diverged (N1 seed 0 epoch 4; N2 seed 1 epoch 3)'."""
  where = []
  for net in ("n1", "n2"):
    summary = cell.get(net) or {}
    seeds = diverged_seeds(summary)
    if seeds:
      at = summary.get("diverged_epoch", [])
      where.append(f"{net.upper()} " + ", ".join(
          f"seed {i}" + (f" epoch {at[i]}" if i < len(at) else "") for i in seeds))
  return "diverged (" + "; ".join(where) + ")" if where else "diverged"


def status_text(cell: dict, stop_error: float | None = DEFAULT_STOP_ERROR) -> str:
  """'ok', 'out of memory', 'diverged (N2 seed 1 epoch 3)', 'not converged (N1 seeds 0, 1 ...)'.

  ``stop_error=None`` leaves out the convergence check (the stop error is unknown);
  ``stop_error=0`` (no early stop: every seed trains ``max_epochs``) says so instead of it.
  """
  if is_oom(cell):
    return "out of memory"
  status = cell.get("status", "–")
  parts = []
  if status == "diverged":
    parts.append(diverged_text(cell))
  elif status != "ok":
    parts.append(str(status))
  if stop_error is not None and stop_error <= 0:
    if status == "ok" and no_early_stop_text(cell):   # a diverged seed stopped early: said above
      parts.append(no_early_stop_text(cell))
  elif stop_error is not None:
    where = []
    for net in _trained_here(cell):
      summary = cell.get(net) or {}
      seeds = unconverged_seeds(summary, stop_error)
      if seeds:
        total = len(summary.get("train_error", []))
        where.append(f"{net.upper()} " + ("all seeds" if len(seeds) == total else seeds_text(seeds)))
    if where:
      parts.append(f"not converged ({'; '.join(where)} ≥ {100 * stop_error:g}% training error)")
  return "; ".join(parts) if parts else str(status)


def _trained_here(cell: dict) -> list[str]:
  """The nets of a cell trained to learnjax's stop criterion: a snapshot N1 is stopped on
  purpose, a given one was trained elsewhere."""
  skip_n1 = cell.get("n1_epoch") is not None or is_given(cell)
  return [net for net in ("n1", "n2") if not (net == "n1" and skip_n1)]


def no_early_stop_text(cell: dict) -> str:
  """'trained all 30 epochs (train.stop_error=0: no early stop)', or per net where N1's and
  N2's epochs differ; '' where the cell stores no epochs."""
  spans = {}
  for net in _trained_here(cell):
    epochs = [e for e in (cell.get(net) or {}).get("epochs", []) if e is not None]
    if epochs:
      spans[net.upper()] = int(max(epochs))
  if not spans:
    return ""
  if len(set(spans.values())) == 1:
    text = f"trained all {next(iter(spans.values()))} epochs"
  else:
    text = "trained all epochs (" + ", ".join(f"{net} {n}" for net, n in spans.items()) + ")"
  return f"{text} (train.stop_error=0: no early stop)"
