"""The report's granulated coefficient: the axes a user would name, psi and Psi with intervals."""

import itertools

import numpy as np
import pytest
from scipy import stats

from learnjax import ranking
from learnjax.report import correlation

from test_report import report, save_cell, workdir_for


def _points(cells, measure, target, same):
  return [{"cell": {**c, "_n2_same": same}, "learn": np.asarray(m), "acc": np.asarray(t),
           "gap": None, "kappa": None, "gde_accuracy": None}
          for c, m, t in zip(cells, measure, target)]


def _cell(n1, n2, batch):
  return {"variant": "true", "n1_model": n1, "n2_model": n2, "n1_batch_size": batch,
          "n2_batch_size": 64, "n1_epoch": None, "d2": 100}


def test_under_n2_same_the_n1_and_n2_architecture_are_one_axis():
  # n2.model=same over three architectures and two N1 batch sizes: each cell's N2 is its N1's
  # model. Grouping by N2 as a separate axis would leave every architecture group one cell.
  models = ["mlp_1", "mlp_2", "mlp_3"]
  cells = [_cell(m, m, b) for m, b in itertools.product(models, (32, 64))]
  rng = np.random.default_rng(0)
  target = [rng.normal(size=5) + 10 * i for i in range(len(cells))]
  measure = [t + rng.normal(scale=0.1, size=5) for t in target]
  keys, order = correlation.granulated_keys(_points(cells, measure, target, same=True))
  assert ranking.varying_axes(keys, order) == [correlation.ARCHITECTURE, "N1 batch size"]
  g = ranking.granulated(keys, measure, target, axes=order)
  by_axis = {a.axis: a for a in g.per_axis}
  assert by_axis[correlation.ARCHITECTURE].groups == 2    # one per N1 batch size
  assert by_axis["N1 batch size"].groups == 3             # one per architecture
  # psi by hand: the mean over the groups of tau-b of the cell means.
  m = [v.mean() for v in measure]
  t = [v.mean() for v in target]
  by_batch = [stats.kendalltau([m[i] for i in (b, b + 2, b + 4)],
                               [t[i] for i in (b, b + 2, b + 4)]).statistic for b in (0, 1)]
  assert by_axis[correlation.ARCHITECTURE].psi == pytest.approx(np.mean(by_batch))
  assert g.axes == 2 and g.lo <= g.psi <= g.hi
  # The same grid with one fixed N2: N1 model is an axis of its own and N2 model does not vary.
  fixed = [_cell(m, "mlp_4", b) for m, b in itertools.product(models, (32, 64))]
  keys, order = correlation.granulated_keys(_points(fixed, measure, target, same=False))
  assert ranking.varying_axes(keys, order) == ["N1 model", "N1 batch size"]


def test_the_report_names_the_architecture_axis_and_counts_psi_axes(tmp_path):
  workdir, store = workdir_for(tmp_path, "T5", n2={"model": "same", "batch_size": 64})
  rng = np.random.default_rng(1)
  for i, (model, batch) in enumerate(itertools.product(("mlp_1", "mlp_2", "mlp_3"), (32, 64))):
    acc = 30 + 5 * i + rng.normal(size=5)
    save_cell(store, n1=model, n1_batch=batch, learn=list(acc + 20), acc=list(acc))
  markdown, _ = report.build_report(workdir)
  assert "| architecture (N1 and N2) | +1.00 [+1.00, +1.00] (2 groups) |" in markdown
  assert "| N2 model |" not in markdown and "| N1 model |" not in markdown
  assert "| Ψ (mean over the axes with a ψ) | +1.00 [+1.00, +1.00] (2 axes) |" in markdown
