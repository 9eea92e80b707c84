"""The granulated Kendall coefficient psi on constructed sweeps."""

import itertools

import numpy as np
import pytest

from learnjax.report import granulated


def sweep(models=8, variants=3, batch_sizes=(32, 64)):
  """A full grid: variant x N1 model x N1 batch size (one N2)."""
  return [{"variant": v, "n1_model": f"m{m}", "n1_batch_size": b, "n2_model": "mlp_1",
           "n1_epoch": None, "n2_batch_size": 64}
          for v, m, b in itertools.product(range(variants), range(models), batch_sizes)]


def test_psi_is_one_for_a_measure_equal_to_the_gap():
  cells = sweep()
  gap = np.random.default_rng(0).normal(size=len(cells))
  per_axis, big_psi = granulated.granulated(cells, gap, gap)
  assert [a.axis for a in per_axis] == ["variant", "n1_model", "n1_batch_size"]
  assert all(a.psi == pytest.approx(1.0) and a.skipped == 0 for a in per_axis)
  # Groups of cells that differ in the axis alone: 8 x 2 for the variant, 3 x 2 for the model.
  assert [a.groups for a in per_axis] == [16, 6, 24]
  assert big_psi == pytest.approx(1.0)


def test_psi_is_about_zero_for_an_independent_measure():
  cells = sweep(models=20, variants=4, batch_sizes=(32, 64, 128))
  rng = np.random.default_rng(1)
  per_axis, big_psi = granulated.granulated(cells, rng.normal(size=len(cells)),
                                            rng.normal(size=len(cells)))
  sizes = {"variant": 4, "n1_model": 20, "n1_batch_size": 3}
  for a in per_axis:
    # Under independence tau over n cells has mean 0 and variance 2(2n + 5) / (9n(n - 1)).
    n = sizes[a.axis]
    sd = np.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)) / a.groups)
    assert abs(a.psi) < 4 * sd, a
  assert abs(big_psi) < 0.15


def test_high_overall_tau_with_psi_about_zero_on_an_axis_the_measure_ignores():
  # The gap depends strongly on the variant and a little on the model; the measure follows the
  # variant and ignores the model (within a variant it is noise).
  cells = sweep(models=20, variants=4, batch_sizes=(64,))
  rng = np.random.default_rng(2)
  variant = np.asarray([c["variant"] for c in cells], float)
  model = np.asarray([int(c["n1_model"][1:]) for c in cells], float)
  gap = 10 * variant + 0.1 * model
  measure = 10 * variant + rng.normal(size=len(cells))
  assert granulated.kendall_tau(measure, gap) > 0.6
  per_axis, _ = granulated.granulated(cells, measure, gap)
  by_axis = {a.axis: a for a in per_axis}
  assert by_axis["variant"].psi == pytest.approx(1.0)
  assert abs(by_axis["n1_model"].psi) < 0.25


def test_groups_without_two_distinct_values_are_skipped_and_counted():
  cells = sweep(models=3, variants=2, batch_sizes=(64,))
  gap = np.arange(len(cells), dtype=float)
  measure = np.asarray([c["variant"] for c in cells], float)   # constant along the model axis
  measure[0] = np.nan                                          # one cell without the measure
  by_axis = {a.axis: a for a in granulated.granulated(cells, measure, gap)[0]}
  assert by_axis["n1_model"].groups == 0 and by_axis["n1_model"].skipped == 2
  assert np.isnan(by_axis["n1_model"].psi)
  # Along the variant: model 0's group has one cell left, so it is skipped; two groups remain.
  assert by_axis["variant"].groups == 2 and by_axis["variant"].skipped == 1
  # Ties are ties (tau-b): a measure with ties in a group of three.
  assert granulated.kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / np.sqrt(6))
