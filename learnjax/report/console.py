"""The plain-text summary ``python -m learnjax.main`` prints at the end of a run.

Each cell's status (out of memory, diverged, not converged, degenerate N1) reads as in the
markdown report, so a failed cell never looks like a result. N1-only experiments
(``n2.model = none``, D5) get a table of their N1s.
"""

from __future__ import annotations

import numpy as np

from learnjax import fields, metrics, stored_arrays
from learnjax.errors import LearnjaxError
from learnjax.report import degenerate
from learnjax.report.formatting import variant_of
from learnjax.report.status import DEFAULT_STOP_ERROR, is_given, is_oom, status_text
from learnjax.store import Store

EPOCHS_NOTE = "Epochs: mean over seeds."


def _text_table(header: list[str], rows: list[list[str]]) -> str:
  widths = [max(len(x) for x in col) for col in zip(header, *rows)]
  line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
  return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _mean_epochs(summary: dict | None) -> str:
  epochs = (summary or {}).get("epochs") or []
  return f"{np.mean(epochs):.0f}" if len(epochs) else "–"


def _arrays(store: Store | None, kind: str, unit_id: str) -> dict:
  if store is None:
    return {}
  try:
    return store.load(kind, unit_id)[1]
  except LearnjaxError:   # a summary never fails on an unreadable array file
    return {}


def format_table(results: list[dict], stop_error: float | None = DEFAULT_STOP_ERROR,
                 workdir: str | None = None, columns=None) -> str:
  """A plain-text table of cells: the axes that vary, the numbers, each cell's status.

  ``workdir`` (optional) lets the degenerate-N1 check read the stored D3 predictions, and fills
  in the metrics a cell's record lacks from its stored arrays. ``columns``: the metric names shown
  (default: those :mod:`learnjax.metrics` marks for the console).
  """
  if not results:
    return "(no finished cells)"
  store = Store(workdir) if workdir else None
  axes = [(f.column, f.header) for f in fields.grid_axes()]
  shown = [(k, h) for k, h in axes if k in ("variant", "n1_model", "n2_model")
           or len({r.get(k) for r in results}) > 1]
  columns = metrics.console_names() if columns is None else tuple(columns)
  header = [h for _, h in shown] + [metrics.REGISTRY[k].header for k in columns] + [
      "N1 epochs", "N2 epochs", "status"]
  def value(r, k):
    if k == "n1_batch_size" and is_given(r):
      return "–"   # trained elsewhere: no batch size of learnjax's
    return "final" if r.get(k, "") is None else str(variant_of(r) if k == "variant" else r.get(k, ""))
  rows = []
  for r in results:
    arrays = {} if is_oom(r) else _arrays(store, "cells", r.get("cell", ""))
    if is_oom(r):
      numbers = ["OOM"] * len(columns) + ["–", "–"]
    else:
      r = metrics.complete(r, arrays)[0]
      numbers = [metrics.fmt_metric(k, r.get(k)) for k in columns]
      numbers += ["given" if is_given(r) else _mean_epochs(r.get("n1")),
                  _mean_epochs(r.get("n2"))]
    status = status_text(r, stop_error)
    why = None if is_oom(r) else degenerate.cell_reason(r, arrays)
    if why:
      status += f"; degenerate N1 ({why}): learnability measures nothing"
    rows.append([value(r, k) for k, _ in shown] + numbers + [status])
  return _text_table(header, rows) + f"\n{EPOCHS_NOTE}"


def format_n1_table(workdir: str, stop_error: float | None = DEFAULT_STOP_ERROR) -> str:
  """The stored N1s of an N1-only experiment: test accuracy, epochs, status."""
  store = Store(workdir)
  results = sorted(store.finished("n1"), key=lambda r: str(r.get("n1")))
  if not results:
    return "(no trained N1 stored)"
  # The metrics an N1's own record allows (its D3 predictions and labels, no N2).
  columns = [m for m in metrics.REGISTRY.values() if set(m.needs) <= set(stored_arrays.N1)]
  header = ["variant", "N1", "N1 batch", "seeds"] + [m.header for m in columns] + [
      "N1 epochs", "status"]
  rows = []
  for r in results:
    arrays = _arrays(store, "n1", r["n1"])
    numbers = [metrics.fmt_metric(m.name, metrics.compute(arrays, r).get(m.name)) for m in columns]
    cell = {"status": "diverged" if any(r.get("diverged", [])) else "ok", "n1": r,
            **({"n1_source": r["source"]} if "source" in r else {})}
    status = status_text(cell, stop_error)
    why = degenerate.n1_reason(r, arrays)
    if why:
      status += f"; degenerate N1 ({why})"
    given = is_given(r)
    rows.append([str(variant_of(r)), str(r.get("model")),
                 "–" if given else str(r.get("batch_size")), str(r.get("seeds"))] + numbers
                + ["given" if given else _mean_epochs(r), status])
  return (_text_table(header, rows) + f"\n{EPOCHS_NOTE} N1 only (n2.model = none): no "
          f"learnability is measured; python -m learnjax.report --workdir={workdir} shows "
          "the experiment's tables.")


def summary(config, workdir: str, results: list[dict]) -> str:
  """What main prints at the end: the cells of this task, or the N1s of an N1-only experiment."""
  stop_error = float(config.train.stop_error)
  if fields.as_list(config.n2.model) == ["none"]:   # N1 only
    return format_n1_table(workdir, stop_error)
  return format_table(results, stop_error, workdir)
