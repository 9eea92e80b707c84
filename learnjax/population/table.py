"""A stored population as one tidy table: one row per N1 and seed, every hyper-parameter and every
measure a column; and its scores. numpy only (pandas for ``to_pandas``).

  pop = learnjax.population.load("/tmp/lj_runs/population")
  frame = pop.to_pandas()          # the tidy table
  scores = pop.scores()            # {measure: Score}
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from learnjax import curves, metrics
from learnjax.errors import LearnjaxError
from learnjax.population import measures as measures_lib, scoring
from learnjax.store import Store
from learnjax.storage import read_json


class Population:
  """The stored numbers of a population's workdir (see :mod:`learnjax.population.run`)."""

  def __init__(self, workdir: str):
    path = os.path.join(workdir, "population.json")
    if not os.path.exists(path):
      raise LearnjaxError(f"{workdir} holds no population (no population.json); run "
                          "python -m learnjax.population --config=... --workdir=... first")
    self.workdir = workdir
    self.record = read_json(path)
    self.axes = [a["name"] for a in self.record["axes"]]
    self.stop_error = float(self.record["config"]["train"]["stop_error"])
    self.rows = self._rows()

  def _cells(self) -> dict:
    """{network: (cell record of D2's full size, code bits or None)}."""
    store = Store(os.path.join(self.workdir, "n2"))
    cells = [c for c in store.finished("cells") if c.get("status", "ok") == "ok"]
    out = {}
    by_net = {}
    for c in cells:
      by_net.setdefault(c["n1_model"], []).append(c)
    for name, group in by_net.items():
      full = max(group, key=lambda c: c.get("n2_size") or c["d2"])
      bits = None
      sized = sorted((c for c in group if c.get("n2_size") is not None),
                     key=lambda c: c["n2_size"])
      if len(sized) > 1:
        arrays = [store.load("cells", c["cell"])[1] for c in sized]
        summary = curves.summarise([c["n2_size"] for c in sized], arrays, full["num_classes"],
                                   full["d2"], curves.DEFAULT_LEVEL)
        bits = summary.code_bits
      out[name] = (full, bits)
    return out

  def _rows(self) -> list[dict]:
    cells = self._cells()
    rows = []
    for net in self.record["networks"]:
      name = net["name"]
      store = Store(os.path.join(self.workdir, "n1", name))
      n1s = store.finished("n1")
      if not n1s:
        continue
      n1, arrays = store.load("n1", n1s[0]["n1"])
      test = np.asarray(metrics.n1_test_accuracy(arrays), np.float64)
      mpath = os.path.join(self.workdir, "measures", f"{name}.json")
      record = read_json(mpath) if os.path.exists(mpath) else {}
      # only values made by today's code of each measure
      stored = measures_lib.current(record.get("values", {}), record.get("definitions", {}))
      cell, bits = cells.get(name, (None, None))
      pred_net = measures_lib.Network(cell=cell, code_bits=bits, seeds=len(test))
      values = {}
      for m in measures_lib.REGISTRY.values():
        v = stored.get(m.name) if m.kind == measures_lib.PARAMETERS else m.compute(pred_net)
        values[m.name] = None if v is None else np.asarray(v, np.float64)
      train_acc = stored.get(measures_lib.TRAIN_ACCURACY)
      errors = np.asarray(n1["train_error"], np.float64)
      for s in range(len(test)):
        row = {"network": name, **net["hparams"], "seed": s, "epochs": int(n1["epochs"][s]),
               "train_error_running": float(errors[s]),
               "converged": bool(errors[s] < self.stop_error),
               "train_accuracy": np.nan if train_acc is None else float(train_acc[s]),
               "test_accuracy": float(test[s])}
        row["gap"] = row["train_accuracy"] - row["test_accuracy"]
        for key, v in values.items():
          row[key] = np.nan if v is None else float(v[s])
        rows.append(row)
    return rows

  @property
  def columns(self) -> list[str]:
    return list(self.rows[0]) if self.rows else []

  def to_csv(self) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
    writer.writeheader()
    for row in self.rows:
      writer.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()

  def to_pandas(self):
    """The tidy table as a DataFrame (needs pandas): one row per N1 and seed."""
    try:
      import pandas as pd
    except ImportError:
      raise ImportError("to_pandas() needs pandas (pip install pandas); to_csv() does not") from None
    return pd.DataFrame(self.rows, columns=self.columns)

  def networks(self) -> tuple[list[str], list[dict], int]:
    """(names, hyper-parameters, seeds) of the networks every seed of which reached the stop
    criterion and has its gap; the others are left out of the scores, as Jiang et al. leave out
    networks that do not reach theirs."""
    by_net = {}
    for r in self.rows:
      by_net.setdefault(r["network"], []).append(r)
    names, hparams, seeds = [], [], None
    for name, rows in by_net.items():
      if all(r["converged"] and np.isfinite(r["gap"]) for r in rows):
        names.append(name)
        hparams.append({a: rows[0][a] for a in self.axes})
        seeds = len(rows)
    return names, hparams, seeds or 0

  def per_seed(self, column: str, names: list[str]) -> np.ndarray:
    """(N, S) the column's values of the networks ``names``."""
    out = []
    for name in names:
      out.append([r[column] for r in self.rows if r["network"] == name])
    return np.asarray(out, np.float64)

  def scores(self, draws: int = scoring.BOOTSTRAP_DRAWS,
             permutations: int = scoring.PERMUTATIONS) -> dict:
    """{measure: Score} for every measure defined on the scored networks (a network whose
    measure is undefined for a seed is left out of that measure's scores)."""
    names, hparams, _ = self.networks()
    gap = self.per_seed("gap", names)
    axes = [a for a in self.axes if len({repr(h[a]) for h in hparams}) > 1]
    out = {}
    for m in measures_lib.REGISTRY.values():
      values = self.per_seed(m.name, names) * m.orientation
      keep = np.all(np.isfinite(values), axis=1)
      if keep.sum() < 3:
        continue
      out[m.name] = scoring.score([h for h, k in zip(hparams, keep) if k], values[keep],
                                  gap[keep], axes, draws=draws, permutations=permutations)
    return out


def load(workdir: str) -> Population:
  """The stored population of ``workdir``."""
  return Population(workdir)
